#!/bin/bash
# run_testbed.sh: the Horovod + PyTorch trainer (train_fmnist.py, unchanged) on the
# emulated cluster (test/cluster): 4 nodes x 2 ranks, 2 rails shaped to QTOPO_RATE Mbit/s
# each (default 200, as examples/train/run_experiments.sh), one run per setting:
#   ompi       Open MPI's own allreduce (tuned's default choice)
#   qtopo-8    qtopo, 8 bits
#   qtopo-4ef  qtopo, 4 bits with error feedback
#   hvd-fp16   Open MPI with Horovod's own fp16 compression (hvd.Compression.fp16)
# Each run: QTOPO_HVD_EPOCHS epochs (default 1) of QTOPO_HVD_TRAIN images (default 15360,
# 60 steps of the global batch 256), 2000 test images; the same seed everywhere.
#
#   examples/horovod/run_testbed.sh [--out DIR]      (default DIR: docs/results/horovod)
#
# Logs: DIR/<setting>.log (the trainer's output, qtopo's verbose summary); a table of
# final accuracy, training seconds and qtopo's calls goes to stdout and DIR/summary.md.
# Needs root, the build (make), the venv of examples/horovod/setup.sh and Fashion-MNIST.
# Holds /tmp/qtopo-testbed.lock from bringing the cluster up to taking it down.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${QTOPO_BUILDDIR:-$TOP}
CLUSTER=$TOP/test/cluster/cluster.sh
RUN=$TOP/test/cluster/run.sh
VENV=${QTOPO_HVD_VENV:-/var/cache/qtopo/hvd-venv}
DATA=${QTOPO_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
RATE=${QTOPO_RATE:-200}
out=$TOP/docs/results/horovod

while (($#)); do
    case $1 in
        --out) out=${2:?}; shift 2 ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ -f $VENV/.qtopo-hvd-ready ]] || { echo "run_testbed: no venv; run examples/horovod/setup.sh" >&2; exit 1; }
[[ -r $DATA/train-images-idx3-ubyte.gz ]] || { echo "run_testbed: apt-get install dataset-fashion-mnist" >&2; exit 1; }

Q=(--mca coll_qtopo_priority 40 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT"
   --mca coll_qtopo_verbose 1)
declare -A ARGS=(
    [ompi]=""
    [qtopo-8]="${Q[*]} --mca coll_qtopo_bits 8"
    [qtopo-4ef]="${Q[*]} --mca coll_qtopo_bits 4 --mca coll_qtopo_error_feedback 1"
    [hvd-fp16]=""
)
ORDER=(ompi qtopo-8 qtopo-4ef hvd-fp16)
TRAIN=(--epochs "${QTOPO_HVD_EPOCHS:-1}" --limit-train "${QTOPO_HVD_TRAIN:-15360}"
       --limit-test 2000 --data "$DATA")

run_all() {
    local name extra
    "$CLUSTER" down >/dev/null 2>&1 || true
    trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
    "$CLUSTER" up 4 2 "${RATE}mbit" >&2
    for name in "${ORDER[@]}"; do
        extra=()
        [[ $name != hvd-fp16 ]] || extra=(--fp16)
        echo "run_testbed: $name" >&2
        # shellcheck disable=SC2086
        "$RUN" --timeout 1200 ${ARGS[$name]} -x OMP_NUM_THREADS=1 -- "$VENV/bin/python" \
            "$HERE/train_fmnist.py" "${TRAIN[@]}" "${extra[@]}" >"$out/$name.log" 2>&1 ||
            echo "run_testbed: $name FAILED (see $out/$name.log)" >&2
    done
    "$CLUSTER" down >/dev/null
    trap - EXIT
}

summary() {
    local name final handled
    echo "Horovod + PyTorch on the test bed: 4 nodes x 2 ranks, 2 rails at ${RATE} Mbit/s;"
    echo "train_fmnist.py ${TRAIN[*]}"
    echo
    echo "| setting | final test acc | training s | speed-up vs ompi | qtopo calls (quantized) / handed on |"
    echo "|---|---|---|---|---|"
    local base
    base=$(sed -n 's/^final .*seconds=\([0-9.]*\).*/\1/p' "$out/ompi.log")
    for name in "${ORDER[@]}"; do
        final=$(grep '^final' "$out/$name.log" || echo "final test_acc=- seconds=-")
        handled=$(sed -n 's/.*summary for .*: \([0-9]*\) calls handled (\([0-9]*\) quantized), \([0-9]*\) handed on.*/\1 (\2) \/ \3/p' \
            "$out/$name.log" | sort -t' ' -k1,1n | tail -n 1)
        awk -v n="$name" -v f="$final" -v b="$base" -v h="${handled:--}" 'BEGIN {
            split(f, w, /[ =]/); acc = w[3]; s = w[7]
            printf "| %s | %s | %s | %s | %s |\n", n, acc, s,
                   (s > 0 && b > 0) ? sprintf("%.2fx", b / s) : "-", h }'
    done
}

mkdir -p "$out"
exec 9>/tmp/qtopo-testbed.lock
flock 9
run_all
flock -u 9
summary | tee "$out/summary.md"
