#!/bin/bash
# qtopo's GPU code on a CPU: a fake CUDA driver (test/gpu/emu: "device memory" is host
# memory it allocated, kernels run as coroutines from coll_qtopo_codec_cuda.cu compiled
# by the C++ compiler) stands in for libcuda.so.1, and the unchanged GPU tests run on
# it: test_cuda_kernels (the kernels against the CPU codec, bit for bit; the counts up
# to 4099; the benchmark's code path on a small buffer), test_gpu_allreduce on 2 ranks
# (device buffers staged through host memory in MPI_Allreduce, every layout against the
# host call) and on 3 ranks with coll_qtopo_cuda 0 (every rank hands every layout on,
# said once). This checks the kernels' logic and the host paths, not a GPU's arithmetic
# or speed (test/gpu/run.sh on a GPU does). QTOPO_ELEM_GPU_NAN: the kernels take the
# GPU's branch of qtopo_elem_add (NaN bits rebuilt as the CPU makes them) here too.
# SKIP (77) when qtopo was configured without CUDA or no C++ compiler is found.
set -u

builddir=${QTOPO_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
mpirun=${MPIRUN:-mpirun}
emu="$builddir/test/gpu/emu"
cxx=${CXX:-}

skip() {
    echo "SKIP: $*"
    exit 77
}

grep -q '^QTOPO_HAVE_CUDA = yes' "$builddir/Makefile" 2>/dev/null ||
    skip "qtopo was configured without CUDA (the GPU test programs need cuda.h)"
for c in g++ clang++; do
    [ -z "$cxx" ] && command -v "$c" >/dev/null 2>&1 && cxx=$c
done
[ -n "$cxx" ] || skip "no C++ compiler for the fake CUDA driver (apt-get install g++)"
mkdir -p "$emu"
"$cxx" -std=c++17 -O2 -ffp-contract=off -fPIC -shared -Wl,-soname,libcuda.so.1 \
    -DQTOPO_ELEM_GPU_NAN=1 \
    -I"$srcdir/ompi/mca/coll/qtopo" -o "$emu/libcuda.so.1" "$srcdir/test/gpu/emu/fake_driver.cpp" ||
    { echo "FAIL: building the fake CUDA driver"; exit 1; }
make -s -C "$builddir" test/gpu/test_cuda_kernels test/gpu/test_gpu_allreduce ||
    { echo "FAIL: building the GPU tests"; exit 1; }

status=0
echo "== test_cuda_kernels on the fake driver"
QTOPO_GPU_EMULATED=1 LD_LIBRARY_PATH="$emu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    timeout 900 "$builddir/test/gpu/test_cuda_kernels" || status=1
mpi_run() {
    # mpi_run NP [mpirun args and program args...]
    local np=$1
    shift
    timeout 300 "$mpirun" --allow-run-as-root --oversubscribe -np "$np" \
        -x "OMPI_MCA_mca_base_component_path=$builddir/.libs:SYS_DEFAULT" \
        -x "LD_LIBRARY_PATH=$emu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        --mca btl self,vader,tcp --mca mpi_yield_when_idle 1 --mca coll_qtopo_priority 40 "$@"
}
echo "== test_gpu_allreduce np=2 on the fake driver"
mpi_run 2 "$builddir/test/gpu/test_gpu_allreduce" || status=1
# coll_qtopo_cuda 0: device buffers are handed on by every rank (agreed), said once
echo "== test_gpu_allreduce np=3 --handed-on, coll_qtopo_cuda 0"
log="$builddir/test/gpu/emu/handed_on.log"
mpi_run 3 --mca coll_qtopo_cuda 0 "$builddir/test/gpu/test_gpu_allreduce" --handed-on \
    >"$log" 2>&1 || status=1
cat "$log"
[ "$(grep -c 'GPU buffer that qtopo cannot run' "$log")" = 1 ] ||
    { echo "FAIL: the GPU buffer that cannot run is not reported exactly once"; status=1; }
exit $status
