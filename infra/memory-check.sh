#!/usr/bin/env bash
# Memory regression check: transform a generated 1,000,000-row export (about 330 MB) under a
# hard address-space limit. Buffering the file, its rows or its batches would exceed the limit
# and fail; nothing here is timed.
set -euo pipefail
cd "$(dirname "$0")/.."

limit_mib=${MEMORY_LIMIT_MIB:-256}
rows=${MEMORY_CHECK_ROWS:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release -p catalog-sync
bin=${CARGO_TARGET_DIR:-target}/release/catalog-sync
"$bin" generate --rows "$rows" "$work/products.csv" 2>/dev/null
size=$(stat -c %s "$work/products.csv")

# ulimit -v counts virtual memory; the binary's own mapping and threads fit well inside.
if ! ( ulimit -v $((limit_mib * 1024)); "$bin" transform --out "$work/batches" "$work/products.csv" >"$work/out.txt" ); then
  echo "memory-check: FAILED: transform of $rows rows ($size bytes) did not finish within ${limit_mib} MiB of address space" >&2
  tail -n 5 "$work/out.txt" >&2 || true
  exit 1
fi
grep -q "$rows rows read, $rows valid" "$work/out.txt" || { echo "memory-check: FAILED: unexpected output" >&2; tail -n 3 "$work/out.txt" >&2; exit 1; }
echo "memory-check: 1 passed, 0 failed ($rows rows, $size bytes, under ${limit_mib} MiB)"
