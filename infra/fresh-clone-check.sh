#!/usr/bin/env bash
# Fresh-clone check: clone the repository into a temporary folder and run the README's two
# commands there, exactly as README.md writes them under "The two commands", checking that
# both succeed. This is what a newcomer does first; it catches files that exist only in a
# working tree, steps that rely on something already being built or installed, and a README
# that drifted from the code.
#
#   infra/fresh-clone-check.sh              # clone the committed HEAD (what CI and newcomers get)
#   infra/fresh-clone-check.sh --worktree   # copy the working tree's tracked and untracked,
#                                           # not ignored files instead (to try uncommitted work)
#
# By default only the committed HEAD is checked: uncommitted changes are not in the clone.
#
# To keep it from doubling CI time and from recursing:
# - The nested `make test` runs with CATALOG_SYNC_NESTED=1, which makes the Makefile skip this
#   step inside the clone.
# - It builds into this repository's target folder (CARGO_TARGET_DIR, default <repo>/target),
#   so third-party dependencies are not compiled again. The workspace's own crates are
#   compiled again, as they must be (they are the clone's files). Built side by side with this
#   tree's, they would overwrite its artifacts while cargo still believes them fresh (the
#   workspace-relative paths match), and this tree's next build would silently run the clone's
#   code. A cargo configuration beside the clone (not in it) therefore gives the clone's own
#   crates a profile override (line-tables-only debug info, which strip removes from release
#   binaries anyway; debug builds stripped of debug information and not incremental, so the
#   second set of artifacts stays small): their artifacts get other hashes and coexist with
#   this tree's. The un-hashed copies target/{debug,release}/<binary> are the clone's until
#   this tree's next cargo build relinks them.
# - It uses this repository's pinned tools: .tools is linked into the clone and TOOLS_DIR set.
# - The nested `make sam-local` is skipped when this commit already passed it in the outer run
#   from a clean working tree (a stamp in <target>/sam-local/proved/; see
#   infra/sam-local-check.py): the clone holds the same files, and its `sam build` would
#   recompile every crate of the workspace for nothing.
# - The nested `make test` is not run at all when the `make test` that runs this step started
#   from a clean checkout of this same commit and the tree is still clean (the Makefile passes
#   that commit as MAKE_TEST_CLEAN_HEAD). Such a run has just
#   tested exactly the files the clone holds: the only difference is ignored files, and those
#   (the target folder, .tools) the nested run shares anyway. That is the case in CI, which
#   runs on a fresh clone. The README's first command still runs in the clone. The nested run
#   earns its time when the outer tree has changes that are not committed: then it tests HEAD.
#
# Prints the time each command took. On failure, names the command, prints the end of its log
# and keeps the temporary folder for a look (FRESH_CLONE_KEEP=1 keeps it in any case). Needs
# git, python3 and what `make test` needs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

mode=clone
case "${1:-}" in
  "") ;;
  --worktree) mode=worktree ;;
  *) echo "usage: $0 [--worktree]" >&2; exit 2 ;;
esac

die() { echo "fresh-clone: $*" >&2; exit 1; }
command -v git >/dev/null 2>&1 || die "git is needed to clone the repository"
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || die "$root is not a git repository"

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
mkdir -p "$target" "$root/.tools"

work="$(mktemp -d "${TMPDIR:-/tmp}/catalog-sync-fresh-clone.XXXXXX")"
keep="${FRESH_CLONE_KEEP:-0}"
cleanup() {
  if [ "$keep" = 1 ]; then
    echo "fresh-clone: kept $work for a look" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
clone="$work/catalog-sync"

if [ "$mode" = clone ]; then
  head="$(git -C "$root" rev-parse --short HEAD)"
  echo "fresh-clone: cloning the committed HEAD ($head) into $clone"
  git clone --quiet "$root" "$clone"
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=normal 2>/dev/null)" ]; then
    echo "fresh-clone: note: this working tree has uncommitted changes; they are not in the clone (use --worktree to try them)"
  fi
else
  echo "fresh-clone: copying the working tree's tracked and untracked (not ignored) files into $clone"
  mkdir -p "$clone"
  # Files deleted in the working tree are still listed by --cached; tar skips them. The copies
  # get the current time (-m), as a clone's files do: with their old times, cargo would take
  # the previous check's artifacts as fresh, and those embed that clone's (deleted) paths.
  (cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    tar -C "$root" --null --ignore-failed-read -T - -cf - 2>/dev/null |
    tar -C "$clone" -xmf -
fi

# The pinned tools of this repository, not a second install.
ln -s "$root/.tools" "$clone/.tools"
export TOOLS_DIR="$root/.tools"
export CARGO_TARGET_DIR="$target"
export CATALOG_SYNC_NESTED=1

# Profile overrides for the clone's own crates, in a cargo configuration above the clone (cargo
# reads .cargo/config.toml in every ancestor of the working folder), so the clone stays as
# committed. See the header for why.
members="$(cd "$clone" && cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))')" ||
  die "cannot list the workspace members of the clone (cargo metadata failed)"
mkdir -p "$work/.cargo"
{
  echo "# Written by infra/fresh-clone-check.sh: keeps the clone's crates apart from the outer tree's."
  for profile in dev release test bench; do
    for member in $members; do
      printf '[profile.%s.package."%s"]\ndebug = "line-tables-only"\n' "$profile" "$member"
      # Debug test binaries carry every dependency's debug information (hundreds of MB each);
      # a second set of them would double the target folder. Symbols stay for backtraces.
      case "$profile" in
        dev | test) printf 'strip = "debuginfo"\nincremental = false\n' ;;
      esac
    done
  done
} >"$work/.cargo/config.toml"

# The commands, as README.md writes them: the first ```sh block under "## The two commands",
# one command per line, comments removed.
mapfile -t commands < <(awk '
  /^## The two commands/ { section = 1; next }
  section && /^## / { exit }
  section && /^```sh/ { block = 1; next }
  block && /^```/ { exit }
  block { sub(/[[:space:]]+#.*$/, ""); if (length($0) > 0) print }
' "$clone/README.md")
[ "${#commands[@]}" -eq 2 ] ||
  die "expected two commands under \"## The two commands\" in README.md, found ${#commands[@]}: ${commands[*]:-none}"

# True when the `make test` running this step started from a clean checkout of HEAD, and the
# tree is still clean: that run tested what the clone holds (see the header).
tested_by_this_run() {
  [ "$mode" = clone ] && [ -n "${MAKE_TEST_CLEAN_HEAD:-}" ] || return 1
  [ "$MAKE_TEST_CLEAN_HEAD" = "$(git -C "$root" rev-parse HEAD)" ] || return 1
  [ -z "$(git -C "$root" status --porcelain --untracked-files=all)" ]
}

total_start=$(date +%s)
ran=0
for i in "${!commands[@]}"; do
  command="${commands[$i]}"
  log="$work/command-$((i + 1)).log"
  if [ "$command" = "make test" ] && tested_by_this_run; then
    echo "fresh-clone: \$ $command: not run again: the make test running this check started from a clean checkout of $head (nothing modified or untracked), the files this clone holds"
    continue
  fi
  ran=$((ran + 1))
  echo "fresh-clone: \$ $command"
  start=$(date +%s)
  if ! (cd "$clone" && bash -c "$command") >"$log" 2>&1; then
    keep=1
    echo "fresh-clone: FAILED: \`$command\` in a fresh clone (exit status above); last lines of $log:" >&2
    tail -n 40 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
  echo "fresh-clone:   ok in $(($(date +%s) - start)) s"
done

# The demo must also have left its folder with what "Meta" holds.
shopt -s nullglob
demo_catalogs=("$clone"/catalog-sync-demo-*/emulator-catalog.json)
[ "${#demo_catalogs[@]}" -ge 1 ] || {
  keep=1
  die "the demo ran but left no catalog-sync-demo-*/emulator-catalog.json in the clone"
}

echo "fresh-clone: $ran passed, 0 failed, $((${#commands[@]} - ran)) already proved by this run (the README's two commands in a fresh clone, $(($(date +%s) - total_start)) s)"
