#!/bin/bash
# notax_bench.sh: qtopo's exact (lossless) allreduce against Open MPI's tuned (its default
# choice) per layout, rank count and size: the measurements behind coll_qtopo_exact auto
# and the check that it costs nothing.
#
#   examples/notax_bench.sh [--local] [--cluster]      (default: both)
#
# --local runs QTOPO_NPS (default "2 4 8") ranks on this host (one node); --cluster the
# emulated cluster (test/cluster, needs root; holds /tmp/qtopo-testbed.lock): 2 nodes x 1
# and 4 nodes x 1 rank (flat ring across nodes), 2 x 2 and 4 x 2 (split-rail), 2 rails of
# QTOPO_RATE Mbit/s (default 500). Each run is examples/qtopo_bench: qtopo and tuned on
# the same ranks, alternating, QTOPO_ROUNDS rounds (default 5) per size of QTOPO_SIZES
# (default 256K,1M,4M,16M,64M). QTOPO_STAT=best (default) keeps each side's best round;
# QTOPO_STAT=median reports the median of the rounds' own ratios (qtopo_bench --median),
# steadier on a shared machine.
#
# QTOPO_EXACT (default always) is passed as coll_qtopo_exact: "always" gives the raw
# ratios the table in coll_qtopo_policy.c is made of; "auto" what users get, where the
# "ran" column says "prev" for the calls handed on. Prints one row per size:
#   where layout ranks bytes tuned_us qtopo_us speedup(tuned/qtopo) ran
# QTOPO_KEEP=DIR keeps each run's CSV output.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
BUILD=${QTOPO_BUILDDIR:-$TOP}
BENCH=$BUILD/examples/qtopo_bench
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
EXACT=${QTOPO_EXACT:-always}
SIZES=${QTOPO_SIZES:-256K,1M,4M,16M,64M}
ROUNDS=${QTOPO_ROUNDS:-5}
STAT=${QTOPO_STAT:-best}
RATE=${QTOPO_RATE:-500}
Q=(--mca coll_qtopo_priority 40 --mca coll_qtopo_exact "$EXACT"
   --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT")
ARGS=(--csv --bits 32 --sizes "$SIZES" -r "$ROUNDS")
case $STAT in
    best) ;;
    median) ARGS+=(--median) ;;
    *) echo "notax_bench: QTOPO_STAT must be best or median" >&2; exit 2 ;;
esac

# Runs "$@" (a launcher and the benchmark) and prints its CSV rows prefixed with $1 $2
# (where, layout); the whole output on failure.
bench_rows() {
    local where=$1 layout=$2 out
    shift 2
    out=$(mktemp)
    if ! "$@" >"$out" 2>&1; then
        echo "notax_bench: $where $layout failed:" >&2
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    [[ -z ${QTOPO_KEEP:-} ]] || cp "$out" "$QTOPO_KEEP/$where-$layout.csv"
    awk -F, -v w="$where" -v l="$layout" '/^[0-9]+,/ {
        printf "%-7s %-6s %5d %10d %11.1f %11.1f %8.2f  %s\n", w, l, $15, $1, $9, $2, $11, $12
    }' "$out"
    rm -f "$out"
}

run_local() {
    local np
    for np in ${QTOPO_NPS:-2 4 8}; do
        bench_rows host 1x$np mpirun --allow-run-as-root --oversubscribe -np "$np" \
            --mca btl self,vader,tcp --mca mpi_yield_when_idle 1 "${Q[@]}" "$BENCH" "${ARGS[@]}"
    done
}

# A hostfile of the first $1 nodes of the cluster with $2 slots each.
hostfile() {
    local f=/run/qtopo-cluster/hostfile.$1x$2
    head -n "$1" /run/qtopo-cluster/hostfile | awk -v s="$2" '{ print $1, "slots=" s }' >"$f"
    echo "$f"
}

cluster_runs() {
    local layout nodes ppn
    "$CLUSTER" down >/dev/null 2>&1 || true
    trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
    "$CLUSTER" up 4 2 "${RATE}mbit" >&2
    for layout in 2x1 4x1 2x2 4x2; do
        nodes=${layout%x*}
        ppn=${layout#*x}
        bench_rows bed "$layout" "$RUN" --timeout 600 --hostfile "$(hostfile "$nodes" "$ppn")" \
            "${Q[@]}" -- "$BENCH" "${ARGS[@]}"
    done
    "$CLUSTER" down >/dev/null
    trap - EXIT
}

run_cluster() {
    exec 9>/tmp/qtopo-testbed.lock
    flock 9
    cluster_runs
    flock -u 9
}

local_on=0
cluster_on=0
while (($#)); do
    case $1 in
        --local) local_on=1 ;;
        --cluster) cluster_on=1 ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
    shift
done
if ((!local_on && !cluster_on)); then
    local_on=1
    cluster_on=1
fi
[[ -x $BENCH ]] || { echo "notax_bench: build first (make)" >&2; exit 1; }
echo "# coll_qtopo_exact=$EXACT sizes=$SIZES rounds=$ROUNDS ($STAT) rate=${RATE}mbit $(date -u '+%F %T UTC')"
printf '%-7s %-6s %5s %10s %11s %11s %8s  %s\n' where layout ranks bytes tuned_us qtopo_us \
    speedup ran
((!local_on)) || run_local
((!cluster_on)) || run_cluster
