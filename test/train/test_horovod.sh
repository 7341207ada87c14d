#!/bin/bash
# Smoke test of Horovod + PyTorch over qtopo (examples/horovod): 2 ranks, one epoch of
# 2560 Fashion-MNIST images (10 steps) with hidden 256, Horovod's gradients reduced by
# qtopo at 8 bits.  Passes when training ends with a test accuracy above 0.4 (chance:
# 0.1) and qtopo's verbose summary shows quantized calls.  SKIP (77) without the cached
# venv (examples/horovod/setup.sh: a 2.5 GB download and a C++ build) or the data set.
set -u

builddir=${QTOPO_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
mpirun=${MPIRUN:-mpirun}
venv=${QTOPO_HVD_VENV:-/var/cache/qtopo/hvd-venv}
data=${QTOPO_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
log_dir="$builddir/test/train/logs"
log="$log_dir/horovod.log"

if [ ! -f "$venv/.qtopo-hvd-ready" ] || [ ! -x "$venv/bin/python" ]; then
    echo "SKIP: no Horovod venv in $venv (examples/horovod/setup.sh builds it: ~10 min, 2.5 GB)"
    exit 77
fi
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
    echo "SKIP: Fashion-MNIST not found in $data (apt-get install dataset-fashion-mnist)"
    exit 77
fi
mkdir -p "$log_dir"
timeout 600 "$mpirun" --allow-run-as-root --oversubscribe -np 2 \
    --mca mca_base_component_path "$builddir/.libs:SYS_DEFAULT" \
    --mca btl self,vader,tcp --mca mpi_yield_when_idle 1 \
    --mca coll_qtopo_priority 40 --mca coll_qtopo_bits 8 --mca coll_qtopo_verbose 1 \
    -x OMP_NUM_THREADS=1 \
    "$venv/bin/python" "$srcdir/examples/horovod/train_fmnist.py" --data "$data" \
    --epochs 1 --hidden 256 --limit-train 2560 --limit-test 1000 >"$log" 2>&1
status=$?
acc=$(sed -n 's/^final test_acc=\([0-9.]*\) .*/\1/p' "$log")
# qtopo's verbose summary: "summary for <comm>: N calls handled (Q quantized), ..."
quantized=$(sed -n 's/.*calls handled (\([0-9]*\) quantized).*/\1/p' "$log" | sort -n | tail -n 1)
if [ $status -eq 0 ] && [ -n "$acc" ] && awk -v a="$acc" 'BEGIN { exit !(a > 0.4) }' &&
    [ "${quantized:-0}" -gt 0 ]; then
    echo "PASS: Horovod + PyTorch over qtopo 8-bit: test_acc=$acc, $quantized quantized calls"
    exit 0
fi
echo "FAIL: Horovod smoke test (status $status, test_acc=${acc:-none}," \
    "quantized=${quantized:-none})"
tail -n 30 "$log"
exit 1
