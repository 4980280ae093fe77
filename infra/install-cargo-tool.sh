#!/usr/bin/env bash
# Install one pinned cargo subcommand into .tools/cargo/bin (git-ignored), unless that exact
# version is already there.
#
#   infra/install-cargo-tool.sh cargo-deny 0.20.2
#   infra/install-cargo-tool.sh cargo-fuzz 0.13.2
#
# `cargo install --locked` builds the tool with the versions of its own Cargo.lock, so the same
# pin gives the same tool everywhere. The installed version is read back from the binary
# (`<tool> --version`), so changing the pin reinstalls. Quiet on success; the build log goes to
# .tools/cargo/<tool>.install.log and its end is printed on failure. Needs the crates.io index
# the first time; after that no network is used.
#
# Environment: CARGO (default cargo), TOOLS_DIR (default <repo>/.tools).
set -euo pipefail

[ "$#" -eq 2 ] || {
  echo "usage: $0 TOOL VERSION" >&2
  exit 2
}
tool="$1"
version="$2"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
tools_dir="${TOOLS_DIR:-$root/.tools}"
cargo="${CARGO:-cargo}"
prefix="$tools_dir/cargo"
log="$prefix/$tool.install.log"

installed() {
  [ -x "$prefix/bin/$tool" ] && [ "$("$prefix/bin/$tool" --version 2>/dev/null)" = "$tool $version" ]
}

mkdir -p "$prefix"
install() {
  installed && return 0
  echo "install-cargo-tool: building $tool $version into ${prefix#"$root/"} (once; see $tool.install.log)" >&2
  local started=$SECONDS
  if ! "$cargo" install --locked --force --version "=$version" --root "$prefix" "$tool" >"$log" 2>&1; then
    echo "install-cargo-tool: installing $tool $version failed; last lines of $log:" >&2
    tail -n 20 "$log" | sed 's/^/    /' >&2
    return 1
  fi
  installed || {
    echo "install-cargo-tool: $prefix/bin/$tool does not report version $version" >&2
    return 1
  }
  echo "install-cargo-tool: $tool $version installed in $((SECONDS - started))s" >&2
}

# Serialise concurrent installs into the same root (cargo install rewrites its metadata files).
if command -v flock >/dev/null 2>&1; then
  (
    flock 9
    install
  ) 9>"$prefix/install.lock"
else
  install
fi
