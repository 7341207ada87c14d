#!/bin/bash
# run_experiments.sh: the paper's two experiments with examples/train/qtopo_train on the
# emulated cluster (test/cluster): 4 nodes x 2 ranks, 2 rails shaped to QTOPO_RATE Mbit/s
# each (default 200), one training run per setting, the same seed everywhere.
#
# Why 200 Mbit/s: on a quiet 2-core machine one training step of this MLP computes in
# about 40 ms across the 8 ranks, while Open MPI's allreduce of its 7.45 MB of gradients
# takes 170 ms at 500 Mbit/s and 850 ms at 100 Mbit/s (measured, 40 steps each). At
# 200 Mbit/s communication is about 85% of an Open MPI step, the regime of large models
# on commodity networks that gradient quantization is for, and the whole set still fits
# in about an hour.
#
#   examples/train/run_experiments.sh [--quick] [--groups G1,G2,...] [--out DIR] [--resume]
#   examples/train/run_experiments.sh --plot-only [--quick] [--out DIR]
#
# Groups (default: all):
#   ompi      Open MPI's own allreduce: tuned's default choice, and tuned's ring
#             (coll_tuned_use_dynamic_rules 1, coll_tuned_allreduce_algorithm 4)
#   ratio     qtopo at 8 bits, share of quantized calls 0, 0.25, 0.5, 0.75, 1 (paper Fig. 3)
#   bits      qtopo at 32 (exact), 16, 8, 4, 2, 1 bits, nearest rounding
#   ef        the same at 16 ... 1 bits with error feedback
#   rounding  stochastic rounding at 8, 4, 2 bits
# Full: 3 epochs of all 60000 images (702 steps), test accuracy every 78 steps (about an
# hour; QTOPO_EPOCHS changes the epochs).
# --quick: 1 epoch of 15360 images, 2000 test images, accuracy every 15 steps (minutes).
#
# Logs go to DIR/logs/<setting>.log (default DIR: docs/results/full or docs/results/quick);
# then plot_results.py writes DIR/summary.md, DIR/results.csv and the PNG plots.  A later
# call with --groups adds or replaces settings in the same directory; --resume skips the
# settings whose log there is complete (after an interrupted run).  Needs root (network
# namespaces), the build (make) and Fashion-MNIST (apt-get install dataset-fashion-mnist);
# plots need python3-matplotlib (Debian's, run with /usr/bin/python3 or $PYTHON).  Holds
# /tmp/qtopo-testbed.lock (flock) from bringing the cluster up to taking it down.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${QTOPO_BUILDDIR:-$TOP}
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
TRAINER=$BUILD/examples/train/qtopo_train
PYTHON=${PYTHON:-/usr/bin/python3}
RATE=${QTOPO_RATE:-200}
LOCK=/tmp/qtopo-testbed.lock

mode=full
groups=ompi,ratio,bits,ef,rounding
out=""
plot_only=0
resume=0
while (($#)); do
    case $1 in
        --quick) mode=quick; shift ;;
        --groups) groups=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --plot-only) plot_only=1; shift ;;
        --resume) resume=1; shift ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
out=${out:-$TOP/docs/results/$mode}
if [[ $mode == quick ]]; then
    train_args=(--epochs 1 --limit-train 15360 --limit-test 2000 --eval-every 15)
    timeout_s=600
else
    train_args=(--epochs "${QTOPO_EPOCHS:-3}" --eval-every 78)
    timeout_s=1800
fi

Q=(--mca coll_qtopo_priority 40 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT")
declare -A ARGS=(
    [ompi-tuned]=""
    [ompi-ring]="--mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm 4"
)
declare -a ORDER=(ompi-tuned ompi-ring)
add() {
    ARGS[$1]="${Q[*]} $2"
    ORDER+=("$1")
}
for r in 0 0.25 0.5 0.75 1; do
    add "ratio-$r" "--mca coll_qtopo_bits 8 --mca coll_qtopo_ratio $r"
done
for b in 32 16 8 4 2 1; do add "bits-$b" "--mca coll_qtopo_bits $b"; done
for b in 16 8 4 2 1; do
    add "ef-$b" "--mca coll_qtopo_bits $b --mca coll_qtopo_error_feedback 1"
done
for b in 8 4 2; do
    add "stoch-$b" "--mca coll_qtopo_bits $b --mca coll_qtopo_rounding stochastic"
done
# Settings that run exactly the same calls as another one: ratio 0 quantizes nothing
# (= 32 bits), ratio 1 everything (= 8 bits). The second one to come gets a copy of the
# first one's log (marked as such) instead of a run of its own.
declare -A SAME=([bits-32]=ratio-0 [ratio-0]=bits-32 [bits-8]=ratio-1 [ratio-1]=bits-8)

group_of() {
    case $1 in
        ompi-*) echo ompi ;;
        ratio-*) echo ratio ;;
        bits-*) echo bits ;;
        ef-*) echo ef ;;
        stoch-*) echo rounding ;;
    esac
}

plot() {
    "$PYTHON" "$HERE/plot_results.py" "$out" ||
        echo "run_experiments: plotting failed (apt-get install python3-matplotlib)" >&2
}

run_all() {
    local name failed=0 start
    "$CLUSTER" down >/dev/null
    trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM
    "$CLUSTER" up 4 2 "${RATE}mbit" >&2
    for name in "${ORDER[@]}"; do
        [[ ,$groups, == *,$(group_of "$name"),* ]] || continue
        start=$(date +%s)
        if ((resume)) && grep -q '^final' "$out/logs/$name.log" 2>/dev/null; then
            continue
        fi
        echo "run_experiments: $name" >&2
        if [[ -n ${SAME[$name]:-} ]] && grep -q '^final' "$out/logs/${SAME[$name]}.log" 2>/dev/null; then
            { echo "# same configuration as ${SAME[$name]}: its log, copied"
              cat "$out/logs/${SAME[$name]}.log"; } >"$out/logs/$name.log"
            echo "run_experiments: $name: copied from ${SAME[$name]}" >&2
            continue
        fi
        # shellcheck disable=SC2086
        if ! "$RUN" --timeout "$timeout_s" ${ARGS[$name]} -- "$TRAINER" "${train_args[@]}" \
            >"$out/logs/$name.log" 2>&1; then
            echo "run_experiments: $name FAILED (see $out/logs/$name.log)" >&2
            failed=$((failed + 1))
        fi
        echo "run_experiments: $name: $(grep '^final' "$out/logs/$name.log" || echo none)" \
            "($(($(date +%s) - start)) s)" >&2
    done
    "$CLUSTER" down >/dev/null
    trap - EXIT INT TERM
    return $((failed > 0))
}

mkdir -p "$out/logs"
if ((plot_only)); then
    plot
    exit 0
fi
[[ -x $TRAINER ]] || { echo "run_experiments: build first (make)" >&2; exit 1; }
[[ -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]] ||
    { echo "run_experiments: apt-get install dataset-fashion-mnist" >&2; exit 1; }
{
    echo "mode=$mode rate=${RATE}mbit nodes=4 ranks_per_node=2 rails=2"
    echo "trainer args: ${train_args[*]}"
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC') groups: $groups"
} >>"$out/runs.txt"
exec 9>"$LOCK"
flock 9
status=0
run_all || status=$?
flock -u 9
echo "finished: $(date -u '+%Y-%m-%d %H:%M:%S UTC') status=$status" >>"$out/runs.txt"
plot
exit $status
