#!/bin/bash
# Tests of the trainer examples/train/qtopo_train at 2 ranks on a small part of
# Fashion-MNIST (hidden 256, 2560 training and 1000 test images; ~10 s in all):
#   1. one epoch on Open MPI's allreduce: the test loss falls, the ranks agree;
#   2. lossless qtopo and Open MPI give bit-identical parameters after 20 steps (with two
#      ranks every sum is a + b either way), and qtopo really carried the gradients;
#   3. 8-bit qtopo trains too (loss falls, ranks agree, parameters differ from exact);
#   4. a missing data directory gives a message naming the file and exit status != 0.
# SKIP (77) when the data set is missing: apt-get install dataset-fashion-mnist.
set -u

# qtopo's exact algorithms are what these tests check: exact calls run in qtopo
# (coll_qtopo_exact always) unless a case asks for auto on its command line.
export OMPI_MCA_coll_qtopo_exact=${OMPI_MCA_coll_qtopo_exact:-always}

builddir=${QTOPO_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mpirun=${MPIRUN:-mpirun}
data=${QTOPO_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
trainer="$builddir/examples/train/qtopo_train"
log_dir="$builddir/test/train/logs"
passed=0
failed=0

if [ ! -r "$data/train-images-idx3-ubyte.gz" ] || [ ! -r "$data/t10k-labels-idx1-ubyte.gz" ]; then
    echo "SKIP: Fashion-MNIST not found in $data (apt-get install dataset-fashion-mnist)"
    exit 77
fi
if [ ! -x "$trainer" ]; then
    if grep -q 'S\["QTOPO_HAVE_TRAINER_TRUE"\]="#"' "$builddir/config.status" 2>/dev/null; then
        echo "SKIP: the trainer is not built here (configure found no zlib or OpenBLAS)"
        exit 77
    fi
    echo "FAIL: $trainer not built (make)"
    exit 1
fi
mkdir -p "$log_dir"

train() {
    # train LOG [mpirun args...] -- [trainer args...]
    local log=$1 args=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        args+=("$1")
        shift
    done
    shift
    timeout 300 "$mpirun" --allow-run-as-root --oversubscribe -np 2 \
        --mca mca_base_component_path "$builddir/.libs:SYS_DEFAULT" \
        --mca btl self,vader,tcp --mca mpi_yield_when_idle 1 "${args[@]}" \
        "$trainer" --data "$data" --hidden 256 --limit-train 2560 --limit-test 1000 "$@" \
        >"$log_dir/$log.log" 2>&1
}

check() {
    # check NAME CONDITION-STATUS LOG
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (log: $log_dir/$3.log)"
        tail -n 20 "$log_dir/$3.log"
    fi
}

field() {
    # field LOG LINE-PREFIX KEY: value of KEY=... on the first line starting with PREFIX
    sed -n "s/^$2 .*$3=\([^ ]*\).*/\1/p" "$log_dir/$1.log" | head -n 1
}

loss_falls() {
    # the test loss after epoch 1 is below 80% of the loss before training
    local before after
    before=$(field "$1" "epoch 0" test_loss)
    after=$(field "$1" "epoch 1" test_loss)
    [ -n "$before" ] && [ -n "$after" ] &&
        awk -v a="$after" -v b="$before" 'BEGIN { exit !(a < 0.8 * b) }'
}

agree() {
    grep -q "ranks_agree=yes" "$log_dir/$1.log" &&
        grep -q "^final test_acc=0\.[0-9]* epochs=1 " "$log_dir/$1.log"
}

train ompi_epoch -- --epochs 1
st=$?
[ $st -eq 0 ] && loss_falls ompi_epoch && agree ompi_epoch
check "1 epoch, Open MPI allreduce: test loss falls, ranks agree" $? ompi_epoch

train ompi_steps -- --steps 20
st1=$?
train qtopo_steps --mca coll_qtopo_priority 40 -- --steps 20
st2=$?
h1=$(sed -n 's/^params_fnv=\([0-9a-f]*\).*/\1/p' "$log_dir/ompi_steps.log")
h2=$(sed -n 's/^params_fnv=\([0-9a-f]*\).*/\1/p' "$log_dir/qtopo_steps.log")
calls=$(sed -n 's/.*qtopo_calls=\([0-9]*\).*/\1/p' "$log_dir/qtopo_steps.log")
[ $st1 -eq 0 ] && [ $st2 -eq 0 ] && [ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "${calls:-0}" -ge 20 ]
check "20 steps: lossless qtopo ($h2, $calls calls) = Open MPI ($h1) bit for bit" $? qtopo_steps

train qtopo8_epoch --mca coll_qtopo_priority 40 --mca coll_qtopo_bits 8 -- --epochs 1
st=$?
h8=$(sed -n 's/^params_fnv=\([0-9a-f]*\).*/\1/p' "$log_dir/qtopo8_epoch.log")
h32=$(sed -n 's/^params_fnv=\([0-9a-f]*\).*/\1/p' "$log_dir/ompi_epoch.log")
[ $st -eq 0 ] && loss_falls qtopo8_epoch && agree qtopo8_epoch && [ "$h8" != "$h32" ]
check "1 epoch, qtopo 8-bit: test loss falls, ranks agree, parameters differ from exact" $? \
    qtopo8_epoch

train missing -- --data /nonexistent/fmnist --epochs 1
st=$?
[ $st -ne 0 ] && grep -q "/nonexistent/fmnist/train-images-idx3-ubyte.gz: cannot open" \
    "$log_dir/missing.log"
check "missing data set: clear message, failure status" $? missing

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
