#!/usr/bin/env bash
# mailroom queue-listing benchmark (see bench/listing.py): builds a release binary, fills a store
# through SMTP and times the HTTP queue listing at a small and a large size in the same run.
#
#   bench/listing.sh [--messages 1000000] [--reference 1000] [--samples 40]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "== cargo build --release"
    cargo build --release
fi
exec python3 "$repo/bench/listing.py" --repo "$repo" "$@"
