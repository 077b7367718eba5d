#!/usr/bin/env bash
# Intake and the store without the network (examples/intakebench): the realistic mail registered
# in process through `Intake::register` and the writer's group commit, into a fresh data dir,
# with N messages in flight on one tokio thread. CPU per message by thread, messages per commit,
# bytes written per message, at several numbers in flight (so several batch sizes), best of 3
# alternating passes. Much steadier than bench/run.sh's ratio on shared cores: use it to A/B a
# change to intake or the store. Writes bench/results/intake.md.
#
#   bench/intake.sh [--mix 10k|full] [--messages 20000] [--config FILE]
#                   (INTAKE_CONCURRENCY="8 32 256" to choose the numbers in flight)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
binary="${INTAKEBENCH:-$repo/target/release/examples/intakebench}"
if [[ -z "${BENCH_NO_BUILD:-}" && -z "${INTAKEBENCH:-}" ]]; then
    echo "== cargo build --release --example intakebench"
    cargo build --release --example intakebench
fi
out="$repo/bench/results/intake.md"
header='| mix | in flight | messages | msg/s | msgs/commit | total µs/msg | session thread (prepare) µs/msg | writer µs/msg | other threads µs/msg | written KB/msg |'
rule='|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
rows=()
for concurrency in ${INTAKE_CONCURRENCY:-8 32 256}; do
    best="" best_total=""
    for pass in 1 2 3; do
        row="$("$binary" --concurrency "$concurrency" --data-dir "$repo/target/bench-data/intakebench" "$@")"
        total="$(awk -F'|' '{gsub(/ /, "", $7); print $7}' <<<"$row")"
        if [[ -z "$best" ]] || awk -v a="$total" -v b="$best_total" 'BEGIN { exit !(a < b) }'; then
            best="$row" best_total="$total"
        fi
        echo "   pass $pass, $concurrency in flight: $row" >&2
    done
    rows+=("$best")
done
{
    echo "# Intake and store CPU per message, in process (\`bench/intake.sh${*:+ $*}\`), $(date -u +%Y-%m-%d)"
    echo
    echo "$(nproc) CPUs; mailroom $(git rev-parse --short HEAD 2>/dev/null || echo '?'). No network, no load generator:"
    echo "\`Intake::register\` on one tokio thread (the server's session thread does the same work"
    echo "after DATA), the writer thread's group commit (SQLite WAL, synchronous=FULL, encryption on),"
    echo "the server's background checkpoint every 200 ms (\"other threads\"). Best of 3 passes by total."
    echo
    echo "$header"
    echo "$rule"
    printf '%s\n' "${rows[@]}"
} | tee "$out"
