#!/usr/bin/env bash
# Intake's record extraction on the realistic mixes (examples/extractbench): µs per message for
# each kind, now (header block + MIME structure walk) against mail-parser's full parse, measured
# in the same run. Writes bench/results/extract.md.
#
#   bench/extract.sh [--messages 20000] [--seed 1]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    echo "== cargo build --release --example extractbench"
    cargo build --release --example extractbench
fi
out="$repo/bench/results/extract.md"
{
    echo "# Record extraction per message (\`bench/extract.sh${*:+ $*}\`), $(date -u +%Y-%m-%d)"
    echo
    echo "Before: the header block alone for a single inline text body, mail-parser's full parse"
    echo "for anything else. Now: the header block, then the MIME structure walk (src/intake/structure.rs);"
    echo "\"walked\" counts the messages the walk answered (the others fall back to the full parse)."
    echo "Best of 5 alternating passes, one thread."
    for mix in 10k full; do
        echo
        echo "## --mix $mix"
        echo
        "$repo/target/release/examples/extractbench" --mix "$mix" "$@"
    done
} | tee "$out"
