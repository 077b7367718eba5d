#!/usr/bin/env bash
# mailroom on SQLite vs PostgreSQL (one node, two nodes) under the same smtp-source load, in one
# run: prints a table and writes bench/results/pg-latest.md.
#
#   bench/pg.sh [--messages N] [--sessions 32] [--size 10240] [--modes sink,sqlite,pg1,pg2] ...
#
# Builds mailroom in release mode (BENCH_NO_BUILD=1 skips it), starts its own throwaway
# PostgreSQL cluster (fsync and synchronous_commit on) and removes it at the end. See bench/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
    exec python3 "$repo/bench/pg.py" --help
fi

for tool in smtp-source smtp-sink; do
    if [[ ! -x "/usr/sbin/$tool" ]] && ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench: $tool not found; install Debian's postfix package (see .ci/run)" >&2
        exit 2
    fi
done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    echo "bench: PostgreSQL not found; install Debian's postgresql package (see .ci/run)" >&2
    exit 2
fi

if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "== cargo build --release"
    cargo build --release
fi

exec python3 "$repo/bench/pg.py" --repo "$repo" "$@"
