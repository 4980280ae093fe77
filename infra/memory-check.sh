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

# A sync with change detection's state: the same number of products synced four times as a
# full snapshot (first, unchanged, 1% changed, 1% removed), each sync in its own process under
# the same limit. glibc reserves address space per malloc arena and thread; two arenas are what
# a Lambda's two vCPUs would use at most.
if ! ( ulimit -v $((limit_mib * 1024)); MALLOC_ARENA_MAX=2 "$bin" bench --changes "$rows" --dir "$work/changes" >"$work/changes.txt" 2>&1 ); then
  echo "memory-check: FAILED: a sync with state of $rows products did not finish within ${limit_mib} MiB of address space" >&2
  tail -n 8 "$work/changes.txt" >&2 || true
  exit 1
fi
grep -q "^removed" "$work/changes.txt" || { echo "memory-check: FAILED: unexpected bench output" >&2; tail -n 8 "$work/changes.txt" >&2; exit 1; }
echo "memory-check: 2 passed, 0 failed ($rows rows, $size bytes: the transform, and four syncs with state, each under ${limit_mib} MiB)"
