#!/usr/bin/env bash
# Install the pinned Python tools the tests and deploys use, one virtualenv per tool.
#
#   infra/install-tools.sh               # every infra/requirements-*.txt
#   infra/install-tools.sh moto sam      # only these (names are the <tool> in requirements-<tool>.txt)
#
# Each tool goes to .tools/<tool>/ (git-ignored) from infra/requirements-<tool>.txt, so pins of
# different tools never conflict. A venv is rebuilt only when its requirements file (or the
# Python interpreter) changed: the hash of both is stored in .tools/<tool>/.requirements.sha256,
# written last, so an interrupted install is redone next time. Once installed, re-running needs
# no network. Quiet on success; on failure, names the tool, prints the end of pip's log and
# exits non-zero.
#
# Environment: PYTHON (interpreter for the venvs, default python3, needs >= 3.10 for the SAM CLI),
# TOOLS_DIR (default <repo>/.tools).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools_dir="${TOOLS_DIR:-$root/.tools}"
python="${PYTHON:-python3}"

die() { echo "install-tools: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || die "no Python interpreter '$python' (set PYTHON=...)"
py_version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" \
  || die "'$python' does not run"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "Python >= 3.10 needed (the SAM CLI requires it); '$python' is $py_version"
"$python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "'$python' lacks the venv/ensurepip modules (Debian: apt-get install python3-venv)"

if [ "$#" -eq 0 ]; then
  set --
  for f in "$here"/requirements-*.txt; do
    [ -e "$f" ] || continue
    t="${f##*/requirements-}"
    set -- "$@" "${t%.txt}"
  done
  [ "$#" -gt 0 ] || die "no infra/requirements-*.txt found"
fi

for t in "$@"; do
  [ -f "$here/requirements-$t.txt" ] || {
    known=""
    for f in "$here"/requirements-*.txt; do
      k="${f##*/requirements-}"
      known="$known ${k%.txt}"
    done
    die "unknown tool '$t' (no infra/requirements-$t.txt); known:$known"
  }
done

mkdir -p "$tools_dir"

hash_of() {
  { cat "$here/requirements-$1.txt"; echo "python $py_version"; } | sha256sum | cut -d' ' -f1
}

# install_one TOOL: (re)build .tools/TOOL if its stamp does not match. Output goes to a log file.
install_one() {
  local t="$1" venv="$tools_dir/$1" log="$tools_dir/$1.install.log"
  local want stamp
  want="$(hash_of "$t")"
  stamp="$venv/.requirements.sha256"
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  {
    echo "== $(date -u +%FT%TZ) installing $t from infra/requirements-$t.txt with Python $py_version"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$here/requirements-$t.txt"
    echo "$want" >"$stamp"
    echo "== done"
  } >"$log" 2>&1
}

# Serialise concurrent runs for the same tool (make test and a Rust test may both call this).
with_lock() {
  local t="$1"
  if command -v flock >/dev/null 2>&1; then
    (
      flock 9
      install_one "$t"
    ) 9>"$tools_dir/$t.lock"
  else
    install_one "$t"
  fi
}

# Install the requested tools in parallel; report every failure, not just the first.
pids=()
for t in "$@"; do
  with_lock "$t" &
  pids+=("$!")
done

failed=0
i=0
for t in "$@"; do
  if ! wait "${pids[$i]}"; then
    failed=1
    echo "install-tools: installing '$t' from infra/requirements-$t.txt failed." >&2
    echo "install-tools: last lines of $tools_dir/$t.install.log:" >&2
    tail -n 20 "$tools_dir/$t.install.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    echo "install-tools: pip needs the package index the first time; after that no network is used." >&2
  fi
  i=$((i + 1))
done
exit "$failed"
