#!/bin/bash
# Runs the component under AddressSanitizer/UBSan and under valgrind memcheck:
# builds an instrumented copy of qtopo in _build/asan, then runs the MPI test with
# that copy first in the component path. Not part of every CI run (slow); run it after
# changes to the component:  test/sanitize.sh [asan|valgrind|all]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-all}
build=$top/_build/asan
np=${QTOPO_SANITIZE_NP:-3}

san_flags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
-fno-sanitize-recover=undefined -ffp-contract=off -std=gnu11"

# A sanitized copy of the DSO and the tests, compiled directly (the source tree may
# already be configured, which rules out a second autotools build directory).
build_instrumented() {
    local src=$top/ompi/mca/coll/qtopo
    mkdir -p "$build/.libs"
    # shellcheck disable=SC2046,SC2086
    gcc $san_flags -shared -fPIC -o "$build/.libs/mca_coll_qtopo.so" "$src"/*.c \
        $(mpicc --showme:compile) -I"$src" -DQTOPO_HELP_DIR="\"/usr/share/openmpi\"" \
        $(mpicc --showme:link) -lopen-rte -lopen-pal $(pkg-config --libs hwloc) -lm
    # shellcheck disable=SC2086
    gcc $san_flags -pthread -I"$src" -o "$build/test_ring" "$top"/test/unit/test_ring.c \
        "$top"/test/unit/mock_xport.c "$src"/coll_qtopo_ring.c -lm
    # shellcheck disable=SC2086
    gcc $san_flags -pthread -I"$src" -o "$build/test_ebound" "$top"/test/unit/test_ebound.c \
        "$top"/test/unit/mock_xport.c "$src"/coll_qtopo_sra.c "$src"/coll_qtopo_hier.c \
        "$src"/coll_qtopo_ring.c "$src"/coll_qtopo_codec.c "$src"/coll_qtopo_codec_avx2.c -lm
    # shellcheck disable=SC2086
    mpicc $san_flags -o "$build/test_allreduce" "$top/test/mpi/test_allreduce.c" \
        "$top/test/mpi/mpit.c" -lm
    # shellcheck disable=SC2086
    mpicc $san_flags -o "$build/test_ebound_mpi" "$top/test/mpi/test_ebound.c" \
        "$top/test/mpi/mpit.c" -lm
}

mpi_args=(--allow-run-as-root --oversubscribe -np "$np" --mca btl self,vader,tcp
    --mca mpi_yield_when_idle 1 --mca coll_qtopo_priority 40 --mca coll_qtopo_min_bytes 0
    --mca coll_qtopo_segment_size 4096)

run_asan() {
    local libasan
    libasan=$(gcc -print-file-name=libasan.so)
    echo "== unit tests under ASan/UBSan"
    "$build/test_ring" | tail -n 1
    "$build/test_ebound" | tail -n 1
    echo "== MPI tests, $np ranks, component under ASan/UBSan (leak check off: Open MPI's own)"
    for prog in "$build/test_allreduce --expect on" "$build/test_ebound_mpi"; do
        # shellcheck disable=SC2086
        mpirun "${mpi_args[@]}" --mca mca_base_component_path "$build/.libs:SYS_DEFAULT" \
            -x LD_PRELOAD="$libasan" -x ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
            -x UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $prog
    done
}

# Open MPI itself leaks at finalize and trips memcheck in places, also below calls
# that qtopo makes into it; count a report as qtopo's when the first stack frame
# outside valgrind's allocator and libc is in qtopo's DSO.
run_valgrind() {
    local logs=$build/valgrind bad
    echo "== MPI test, $np ranks, under valgrind memcheck (uninstrumented build)"
    rm -rf "$logs" && mkdir -p "$logs"
    mpirun "${mpi_args[@]}" --mca mca_base_component_path "$top/.libs:SYS_DEFAULT" \
        --mca mca_base_component_disable_dlclose 1 \
        valgrind -q --keep-debuginfo=yes --log-file="$logs/vg.%p" --leak-check=full \
        --suppressions=/usr/share/openmpi/openmpi-valgrind.supp \
        "$top/test/mpi/test_allreduce" --expect on
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
