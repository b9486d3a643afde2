#!/usr/bin/env bash
# Copies the golden files the tests use (Tests/RuntimeTests/Fixtures/golden-files.txt) from
# ../shared/golden (or $KILN_SHARED_GOLDEN) into Tests/RuntimeTests/Fixtures/golden, and removes
# fixtures no longer listed. Run after ../shared/golden changes or after listing a new file.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
source_dir="${KILN_SHARED_GOLDEN:-$repo/../shared/golden}"
fixtures="$repo/Tests/RuntimeTests/Fixtures/golden"
list="$repo/Tests/RuntimeTests/Fixtures/golden-files.txt"
if [ ! -d "$source_dir" ]; then
    echo "sync-fixtures: no golden directory at $source_dir (set KILN_SHARED_GOLDEN)" >&2
    exit 1
fi
mapfile -t files < <(grep -v -e '^#' -e '^[[:space:]]*$' "$list")
for f in "${files[@]}"; do
    if [ ! -f "$source_dir/$f" ]; then
        echo "sync-fixtures: $source_dir/$f is listed in $list but does not exist" >&2
        exit 1
    fi
done
rm -rf "$fixtures"
for f in "${files[@]}"; do
    mkdir -p "$(dirname "$fixtures/$f")"
    # install, not cp: the shared files are read-only and the copies should not be.
    install -m 644 "$source_dir/$f" "$fixtures/$f"
done
echo "sync-fixtures: copied ${#files[@]} files from $source_dir to $fixtures"
