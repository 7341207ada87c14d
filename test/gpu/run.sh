#!/bin/bash
# qtopo's GPU tests, one command (under 5 minutes on one GPU): the CUDA codec kernels
# against the CPU codec, bit for bit (test_cuda_kernels: widths 16/8/4/2/1, nearest and
# stochastic, several counts incl. non-multiples of the block), their throughput as a
# ratio to cuMemcpyDtoD of the same buffer, and MPI_Allreduce on device buffers on 2 and
# 4 ranks (test_gpu_allreduce: every buffer layout bit-identical to the host call, error
# bound). Where there is no GPU (nvidia-smi missing or failing, the driver library not
# loading) or qtopo was configured without CUDA, it prints "SKIP: <reason>" and exits 77,
# automake's skip status (make check shows SKIP).
set -u

builddir=${QTOPO_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mpirun=${MPIRUN:-mpirun}
log_dir="$builddir/test/gpu/logs"
passed=0
failed=0

skip() {
    echo "SKIP: $*"
    exit 77
}

command -v nvidia-smi >/dev/null 2>&1 || skip "no GPU here (nvidia-smi not found)"
nvidia-smi -L >/dev/null 2>&1 || skip "no GPU here (nvidia-smi -L failed: no driver or device)"
ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' ||
    skip "the CUDA driver library libcuda.so.1 is not in the loader's cache"
grep -q '^QTOPO_HAVE_CUDA = yes' "$builddir/Makefile" 2>/dev/null ||
    skip "qtopo was configured without CUDA (configure --with-cuda, nvcc not found)"
make -s -C "$builddir" test/gpu/test_cuda_kernels test/gpu/test_gpu_allreduce ||
    { echo "FAIL: building the GPU tests"; exit 1; }
mkdir -p "$log_dir"
nvidia-smi -L

record() {
    # record NAME STATUS LOGFILE
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS: $1"
    elif [ "$2" -eq 77 ]; then
        cat "$3"
        skip "$1: $(grep -m1 '^SKIP' "$3")"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (log: $3)"
        tail -n 30 "$3"
    fi
}

log="$log_dir/kernels.log"
timeout 240 "$builddir/test/gpu/test_cuda_kernels" >"$log" 2>&1
st=$?
cat "$log"
record "CUDA kernels vs CPU codec, bit identity and throughput" $st "$log"

for np in 2 4; do
    log="$log_dir/allreduce_np$np.log"
    timeout 120 "$mpirun" --allow-run-as-root --oversubscribe -np "$np" \
        -x "OMPI_MCA_mca_base_component_path=$builddir/.libs:SYS_DEFAULT" \
        --mca btl self,vader,tcp --mca coll_qtopo_priority 40 \
        "$builddir/test/gpu/test_gpu_allreduce" >"$log" 2>&1
    st=$?
    tail -n 3 "$log"
    record "np=$np MPI_Allreduce on device buffers" $st "$log"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
