#!/bin/bash
# cluster_bench.sh: qtopo against Open MPI's allreduce algorithms on the emulated cluster
# (test/cluster), the reference setup of the README's *Benchmarks*: 4 nodes x 2 ranks x 2 rails,
# each rail shaped to 500 Mbit/s. Needs root (network namespaces).
#
#   examples/cluster_bench.sh            (after make check, or at least make)
#   examples/cluster_bench.sh --table F  (print the table again from a kept CSV file)
#
# Every qtopo configuration (flat/hier x lossless/8-bit) is run once against each Open MPI
# variant (tuned's default choice, tuned's ring, han), qtopo and the variant side by side
# in the same run (examples/qtopo_bench). Printed per size: each variant's time, each
# qtopo configuration's time (median over its three runs), effective busbw, the speedup
# over the best Open MPI variant, and the share of the wire-rate bound reached: a node
# must move 2(M-1)/M of the buffer over the network, so with M nodes and R rails at
# RATE each the bound is 2(M-1)/M * bytes * 8 / (R * RATE) seconds (divided by the
# compression ratio when quantized).
#
# Environment: QTOPO_RATE (Mbit/s per rail, default 500), QTOPO_SIZES (default
# 1M,16M,64M), QTOPO_ROUNDS (default 2), QTOPO_KEEP (directory for the raw CSV rows).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench_variants.sh
. "$HERE/bench_variants.sh"
TOP=$(cd "$HERE/.." && pwd)
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
RATE=${QTOPO_RATE:-500}
SIZES=${QTOPO_SIZES:-1M,16M,64M}
ROUNDS=${QTOPO_ROUNDS:-2}
NODES=4
RAILS=2
ROWS=$(mktemp /tmp/qtopo-cluster-bench.XXXXXX)

cleanup() {
    "$CLUSTER" down >/dev/null 2>&1 || true
    rm -f "$ROWS"
}
trap cleanup EXIT

declare -A CONFIG=(
    [flat-32]="--mca coll_qtopo_algorithm flat --mca coll_qtopo_bits 32"
    [hier-32]="--mca coll_qtopo_algorithm hier --mca coll_qtopo_bits 32"
    [flat-8]="--mca coll_qtopo_algorithm flat --mca coll_qtopo_bits 8"
    [hier-8]="--mca coll_qtopo_algorithm hier --mca coll_qtopo_bits 8"
)

# One benchmark run; appends "variant,config,<qtopo_bench csv row>" lines to $ROWS.
# qtopo runs above han (bench_variants.sh), which then takes only the twin communicator.
run_pair() {
    local variant=$1 config=$2 out
    local -a args
    read -r -a args <<<"${QT_VARIANT[$variant]} ${CONFIG[$config]}"
    out=$(mktemp)
    echo "cluster_bench: $variant vs qtopo $config" >&2
    if ! "$RUN" --timeout 900 --mca coll_qtopo_priority "$QT_BENCH_PRIORITY" "${args[@]}" -- \
        "$HERE/qtopo_bench" --csv --sizes "$SIZES" -r "$ROUNDS" >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    grep -E '^[0-9]+,' "$out" | sed "s/^/$variant,$config,/" >>"$ROWS"
    rm -f "$out"
}

print_table() {
    awk -F, -v M="$NODES" -v R="$RAILS" -v rate="$RATE" '
        # fields: variant,config,bytes,qtopo_us,eff_busbw,wire,code,maxabs,meanabs,maxrel,
        #         ompi_us,ompi_busbw,speedup,ran,bits,rounding,ranks
        function median3(a, b, c) { return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b)) }
        { key = $2 SUBSEP $3; q[key, ++nq[key]] = $4; ompi[$1, $3] += $11; no[$1, $3]++
          sizes[$3] = 1; ran[key] = $14; bits[key] = $15; ranks = $17 }
        END {
            nc = split("flat-32 hier-32 flat-8 hier-8", cfg, " ")
            nv = split("tuned ring han", var, " ")
            printf "# %d nodes x %d ranks x %d rails at %d Mbit/s; times in ms\n", M, ranks / M, R, rate
            printf "%10s %8s %8s %8s | %-8s %9s %9s %8s %8s %6s\n", "size", "tuned", "ring",
                   "han", "qtopo", "time", "eff_busbw", "vs_best", "of_bound", "ran"
            for (s in sizes) order[++n] = s + 0
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (order[j] < order[i]) { x = order[i]; order[i] = order[j]; order[j] = x }
            for (i = 1; i <= n; i++) {
                s = order[i]; best = 1e30
                for (v = 1; v <= nv; v++) {
                    tv[var[v]] = no[var[v], s] ? ompi[var[v], s] / no[var[v], s] / 1000 : 0
                    if (tv[var[v]] > 0 && tv[var[v]] < best) best = tv[var[v]]
                }
                for (c = 1; c <= nc; c++) {
                    key = cfg[c] SUBSEP s
                    if (nq[key] < 3) continue
                    tq = median3(q[key, 1], q[key, 2], q[key, 3]) / 1000
                    bound = 2 * (M - 1) / M * s * 8 / (R * rate * 1e6) * 1000 * bits[key] / 32
                    printf "%10d %8.1f %8.1f %8.1f | %-8s %9.1f %9.3f %7.2fx %7.0f%% %6s\n",
                           s, tv["tuned"], tv["ring"], tv["han"], cfg[c], tq,
                           2 * (ranks - 1) / ranks * s / (tq / 1000) / 1e9, best / tq,
                           100 * bound / tq, ran[key]
                }
            }
        }' "$ROWS"
}

if [[ ${1:-} == --table ]]; then
    ROWS=$2
    trap - EXIT
    print_table
    exit 0
fi
[[ -x $HERE/qtopo_bench ]] || { echo "build first: make examples/qtopo_bench" >&2; exit 1; }
"$CLUSTER" down >/dev/null
"$CLUSTER" up "$NODES" "$RAILS" "${RATE}mbit" >&2
for config in flat-32 hier-32 flat-8 hier-8; do
    for variant in "${QT_VARIANT_ORDER[@]}"; do
        run_pair "$variant" "$config"
    done
done
[[ -z ${QTOPO_KEEP:-} ]] || cp "$ROWS" "$QTOPO_KEEP/cluster_bench.csv"
print_table
