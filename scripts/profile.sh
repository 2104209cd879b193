#!/usr/bin/env bash
# Samples where the CPU goes while a drainer catches up after a sysbench workload
# (`bench replication`): every process on the machine (the drainer, the target and
# upstream mariadbd, the kernel), 499 times a second, for the first seconds of the
# drainer's catch-up. Needs perf (Debian: apt-get install linux-perf) and the release
# binaries (cargo build --release -p drainer -p integration).
#
#   bash scripts/profile.sh [WORKLOAD] [SECONDS] [BENCH OPTIONS…]   (default: oltp_write_only 6)
#
# e.g. `bash scripts/profile.sh oltp_insert 6 --txn-batch 1`.
#
# Writes target/profile/WORKLOAD.data and prints the CPU share per command, then the
# drainer's hottest symbols; `perf report -i target/profile/WORKLOAD.data` shows more.
set -euo pipefail
workload=${1:-oltp_write_only}
seconds=${2:-6}
shift $(( $# < 2 ? $# : 2 ))
cd "$(dirname "$0")/.."
command -v perf >/dev/null || { echo "perf is not installed: apt-get install linux-perf" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
bench="$target/release/bench"
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p drainer -p integration" >&2; exit 2; }
out=target/profile
mkdir -p "$out"
log="$out/$workload.bench.log"
: > "$log"
(
  until grep -q "drainer catching up" "$log"; do sleep 0.1; done
  perf record -a -g -F 499 -e cpu-clock -o "$out/$workload.data" -- sleep "$seconds" \
    > "$out/$workload.perf.log" 2>&1
) &
recorder=$!
"$bench" replication --workloads "$workload" --seconds 10 "$@" > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
wait "$recorder"
tail -n 2 "$log"
echo
echo "CPU share per command (all CPUs; swapper = idle):"
perf report -i "$out/$workload.data" --stdio --sort comm -g none --no-children 2>/dev/null \
  | grep '%' | head -n 8
echo
echo "the drainer's hottest symbols (its threads are drainer and tokio-rt-worker):"
perf report -i "$out/$workload.data" --stdio --comm drainer,tokio-rt-worker --sort dso,sym \
  -g none --no-children 2>/dev/null | grep '%' | head -n 25
