#!/bin/bash
# test_qtopo_cluster.sh: coll/qtopo on the emulated cluster (network namespaces as nodes,
# two bridged rails). On 4 nodes x 2 ranks qtopo must find the real node layout (from
# Open MPI's locality, no coll_qtopo_node_size), run split-rail, and give exact
# lossless and model-exact quantized results, bit-identical on every rank; on an uneven
# layout (2,2,2,1 ranks) it must detect the unevenness and run flat.
# Uses the installed component and the test programs built by `make check`.
# Prints "N passed, M failed"; exit 1 on failure, 77 when the test bed cannot run here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=check_env.sh
. "$HERE/check_env.sh"
qt_start_test qtopo-cluster-test

CLUSTER=$HERE/cluster.sh
ON=(--mca coll_qtopo_priority 40 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT")

[[ -x $BUILD/test/mpi/test_allreduce && -x $BUILD/test/mpi/test_quantized ]] ||
    { echo "test programs missing: run make check first" >&2; exit 1; }
"$CLUSTER" down >/dev/null

qt_check "up 4 nodes x 2 rails" "$CLUSTER" up 4 2
qt_check "4x2: topology found from the real layout" qt_run_expect \
    "topology of MPI_COMM_WORLD, rank 0: 4 nodes x 2 ranks; node 0 = ranks 0,1; rail 0 = ranks 0,2,4,6" \
    "${ON[@]}" --mca coll_qtopo_verbose 1 -- "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "4x2: lossless exact, runs split-rail" qt_run_expect "MPI_COMM_WORLD: hier" \
    "${ON[@]}" --mca coll_qtopo_hier_min_bytes 0 --mca coll_qtopo_verbose 2 -- \
    "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "4x2: 8-bit split-rail equals the model, ratio/rules/EF" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_bits 8 -- "$BUILD/test/mpi/test_quantized"
qt_check "4x2: 2-bit stochastic, flat forced" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_bits 2 --mca coll_qtopo_rounding stochastic \
    --mca coll_qtopo_algorithm flat -- "$BUILD/test/mpi/test_quantized" --quick
qt_check "hostfile 2,2,2,1" "$CLUSTER" hostfile 2,2,2,1 "$WORK/hosts7"
qt_check "2,2,2,1: uneven layout detected" qt_run_expect "4 nodes of 1..2 ranks (uneven)" \
    --hostfile "$WORK/hosts7" "${ON[@]}" --mca coll_qtopo_verbose 2 -- \
    "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "2,2,2,1: uneven runs flat" grep -q "MPI_COMM_WORLD: flat" "$WORK/out"
qt_check "2,2,2,1: 4-bit equals the model" qt_run_expect " 0 failed" \
    --hostfile "$WORK/hosts7" "${ON[@]}" --mca coll_qtopo_bits 4 -- \
    "$BUILD/test/mpi/test_quantized" --quick
qt_check "down" "$CLUSTER" down

qt_summary
