#!/usr/bin/env bash
# mailroom queue-counts benchmark (see bench/counts.py): builds a release binary, fills a store
# through SMTP and times GET /api/queues and the "My queues" page at a small and a large size.
#
#   bench/counts.sh [--messages 1000000] [--reference 1000] [--samples 200]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "== cargo build --release"
    cargo build --release
fi
exec python3 "$repo/bench/counts.py" --repo "$repo" "$@"
