#!/bin/bash
# Runs qtopo under AddressSanitizer/UBSan and under valgrind memcheck: builds an
# instrumented copy of the component in _build/asan (every ompi/mca/coll/qtopo/*.c, so
# new files are picked up) and of the algorithm unit tests, then runs the unit tests
# (mock transport, lifetime modes included) and the MPI tests with that copy first in
# the component path, over every path: exact flat, quantized 8-bit and 2-bit with
# stochastic rounding, error feedback (and the ratio/rules changes of test_quantized),
# split-rail lossless and quantized (coll_qtopo_node_size=2 on 4 ranks); valgrind runs
# fewer and shorter ones (see the run lists below).
# Part of make check; needs the build's test/mpi programs and examples/qtopo_bench.
#   test/sanitize.sh [asan|valgrind|all]
set -euo pipefail

# qtopo's exact algorithms are what these tests check: exact calls run in qtopo
# (coll_qtopo_exact always) unless a case asks for auto on its command line.
export OMPI_MCA_coll_qtopo_exact=${OMPI_MCA_coll_qtopo_exact:-always}

top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-all}
build=$top/_build/asan
np=${QTOPO_SANITIZE_NP:-3}
src=$top/ompi/mca/coll/qtopo
unit=$top/test/unit

san_flags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
-fno-sanitize-recover=undefined -ffp-contract=off -std=gnu11"

# A sanitized copy of the DSO and the tests, compiled directly (the source tree may
# already be configured, which rules out a second autotools build directory). The unit
# tests take the component files that need no Open MPI (no ompi_config.h).
build_instrumented() {
    local core unit_test
    mkdir -p "$build/.libs"
    core=$(grep -L ompi_config.h "$src"/*.c)
    # shellcheck disable=SC2046,SC2086
    gcc $san_flags -shared -fPIC -o "$build/.libs/mca_coll_qtopo.so" "$src"/*.c \
        $(mpicc --showme:compile) -I"$src" -DQTOPO_HELP_DIR="\"/usr/share/openmpi\"" \
        $(mpicc --showme:link) -lopen-rte -lopen-pal $(pkg-config --libs hwloc) -lm
    for unit_test in test_ring test_sra test_hier test_ebound; do
        # shellcheck disable=SC2046,SC2086
        gcc $san_flags -pthread -I"$src" -I"$unit" -o "$build/$unit_test" \
            "$unit/$unit_test.c" "$unit/mock_xport.c" "$unit/sra_model.c" $core \
            $(pkg-config --cflags --libs hwloc) -lm
    done
    # shellcheck disable=SC2086
    mpicc $san_flags -o "$build/test_allreduce" "$top/test/mpi/test_allreduce.c" \
        "$top/test/mpi/mpit.c" -lm
    # shellcheck disable=SC2046,SC2086
    mpicc $san_flags -I"$src" -I"$unit" -o "$build/test_quantized" \
        "$top/test/mpi/test_quantized.c" "$top/test/mpi/mpit.c" "$unit/sra_model.c" $core \
        $(pkg-config --cflags --libs hwloc) -lm
    # shellcheck disable=SC2086
    mpicc $san_flags -o "$build/test_ebound_mpi" "$top/test/mpi/test_ebound.c" \
        "$top/test/mpi/mpit.c" -lm
}

# shellcheck disable=SC2054 # "self,vader,tcp" is one argument
mpi_args=(--allow-run-as-root --oversubscribe --mca btl self,vader,tcp
    --mca mpi_yield_when_idle 1 --mca coll_qtopo_priority 40 --mca coll_qtopo_min_bytes 0
    --mca coll_qtopo_segment_size 4096)

# The MPI runs, as "NP | mca settings | program and arguments". Every path once under
# ASan: exact flat and split-rail, 2-bit stochastic flat (quick), and the full
# test_quantized on 8-bit stochastic split-rail (model and bound, ratio, rules, error
# feedback over 2 x 100 calls). Valgrind is far slower: exact flat, quantized split-rail
# (8-bit, quick; its rail phase is the flat quantized algorithm), error feedback through
# qtopo_bench (2-bit split-rail, two sizes; a memory check only, results not checked).
q8=(--mca coll_qtopo_bits 8 --mca coll_qtopo_rounding stochastic)
q2=(--mca coll_qtopo_bits 2 --mca coll_qtopo_rounding stochastic)
hier_exact=(--mca coll_qtopo_node_size 2 --mca coll_qtopo_hier_min_bytes 0)
# shellcheck disable=SC2034 # used through a nameref
asan_runs=(
    "$np | | $build/test_allreduce --expect on"
    "4 | ${hier_exact[*]} | $build/test_allreduce --expect on"
    "$np | ${q2[*]} | $build/test_quantized --quick"
    "4 | --mca coll_qtopo_node_size 2 ${q8[*]} | $build/test_quantized"
    "3 | | $build/test_ebound_mpi"
)
# shellcheck disable=SC2034 # used through a nameref
valgrind_runs=(
    "$np | | $top/test/mpi/test_allreduce --expect on"
    "4 | --mca coll_qtopo_node_size 2 ${q8[*]} | $top/test/mpi/test_quantized --quick"
    "4 | --mca coll_qtopo_node_size 2 --mca coll_qtopo_error_feedback 1 ${q2[*]} \
| $top/examples/qtopo_bench --sizes 4K,256K -r 1"
)

# mpi_runs LABEL RUNS [mpirun arguments...] [-- wrapper...]: every run of the array
# named RUNS, its program under the wrapper.
mpi_runs() {
    local label=$1 spec n settings t0
    local -n list=$2
    local pre=() wrap=() prog=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        pre+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    wrap=("$@")
    for spec in "${list[@]}"; do
        IFS='|' read -r n settings prog <<<"$spec"
        read -r -a prog <<<"$prog"
        t0=$SECONDS
        # shellcheck disable=SC2086
        mpirun "${mpi_args[@]}" -np $n "${pre[@]}" $settings "${wrap[@]}" "${prog[@]}" \
            | tail -n 1
        echo "   ($label: np=${n// /} ${settings# }${prog[*]##*/}: $((SECONDS - t0)) s)"
    done
}

run_asan() {
    local libasan t
    libasan=$(gcc -print-file-name=libasan.so)
    for t in test_ring test_sra test_hier test_ebound; do
        echo "== unit test $t under ASan/UBSan"
        "$build/$t" 2>/dev/null | tail -n 1
    done
    echo "== MPI tests, component under ASan/UBSan (leak check off: Open MPI's own)"
    mpi_runs asan asan_runs --mca mca_base_component_path "$build/.libs:SYS_DEFAULT" \
        -x LD_PRELOAD="$libasan" -x ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        -x UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
}

# Open MPI itself leaks at finalize and trips memcheck in places, also below calls
# that qtopo makes into it; count a report as qtopo's when the first stack frame
# outside valgrind's allocator and libc is in qtopo's DSO.
run_valgrind() {
    local logs=$build/valgrind bad
    echo "== MPI tests under valgrind memcheck (uninstrumented build)"
    rm -rf "$logs" && mkdir -p "$logs"
    mpi_runs valgrind valgrind_runs --mca mca_base_component_path "$top/.libs:SYS_DEFAULT" \
        --mca mca_base_component_disable_dlclose 1 -- \
        valgrind -q --keep-debuginfo=yes --log-file="$logs/vg.%p" --leak-check=full \
        --suppressions=/usr/share/openmpi/openmpi-valgrind.supp
    bad=$(awk '/^==[0-9]+== [^ ]/ { head = $0; seen = 0; next }
               /^==[0-9]+== +(at|by) 0x/ && !seen && !/vgpreload|libc\.so|strdup/ {
                   seen = 1; if (/coll_qtopo/) print head }' "$logs"/vg.* | sort -u)
    if [ -n "$bad" ]; then
        echo "valgrind reports through qtopo (logs in $logs):"
        echo "$bad"
        return 1
    fi
}

case $mode in
    asan) build_instrumented; run_asan ;;
    valgrind) run_valgrind ;;
    all) build_instrumented; run_asan; run_valgrind ;;
    *) echo "usage: $0 [asan|valgrind|all]" >&2; exit 2 ;;
esac
echo "sanitize: $mode clean"
