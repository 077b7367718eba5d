#!/usr/bin/env bash
# mailroom ingest benchmark: one command, prints a table and writes bench/results/latest.md.
#
#   bench/run.sh [--messages N] [--sessions 32] [--size 10240] [--half-sessions K] ...
#
# Builds mailroom in release mode, then in ONE run measures Postfix's smtp-sink (discard-only
# ceiling) and mailroom (durable, encrypted) under the same smtp-source load. See bench/README.md.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ " $* " == *" --help "* || " $* " == *" -h "* ]]; then
    exec python3 "$repo/bench/bench.py" --help
fi

for tool in smtp-sink; do
    if [[ ! -x "/usr/sbin/$tool" ]] && ! command -v "$tool" >/dev/null 2>&1; then
        echo "bench: $tool not found; install Debian's postfix package (see .ci/run)" >&2
        exit 2
    fi
done

if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "== cargo build --release --bins --example loadgen"
    cargo build --release --bins --example loadgen
fi

exec python3 "$repo/bench/bench.py" --repo "$repo" "$@"
