#!/bin/bash
# test_qtopo_rails.sh: qtopo's own UCX rails on the emulated cluster (4 nodes x 2 ranks,
# two rails). Lossless results exact and quantized ones equal to the model, identical on
# every rank, for flat and split-rail with the policies stripe and aligned, with 4
# threads on 4 communicators (MPI_THREAD_MULTIPLE) and on an uneven layout; no leak
# when communicators with rails are created and freed (valgrind); the bytes
# each rail carried (the interfaces' tx counters in the node namespaces) follow the rail
# weights within 10%, and so do the MPI_T counters rail_bytes_sent; a rail of weight 0
# carries no allreduce bytes; transport pml leaves the rails unused. Then, on unequal
# rails (400 and 100 Mbit/s), the adaptive weights (auto) move from equal towards 4:1.
# Uses the component and test programs built by `make check`.
# Prints "N passed, M failed"; exit 1 on failure, 77 when the test bed or UCX is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=check_env.sh
. "$HERE/check_env.sh"
qt_start_test qtopo-rails-test ucx

CLUSTER=$HERE/cluster.sh
RUN=$HERE/run.sh
BASE=(--mca coll_qtopo_priority 40 --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT"
      --mca coll_qtopo_rails rail0,rail1)
ON=("${BASE[@]}" --mca coll_qtopo_transport ucx)
NODES=4
MIB16=4194304 # floats

# rail_bytes WEIGHTS [run.sh args]: 5 calls of 16 MiB through qtopo's rails with these
# weights, the PML on rail0 only; sets TX0 and TX1 (bytes each rail sent meanwhile).
rail_bytes() {
    local weights=$1 b0 b1
    shift
    b0=$(qt_tx_bytes rail0)
    b1=$(qt_tx_bytes rail1)
    "$RUN" --timeout 300 --rails rail0 "${ON[@]}" --mca coll_qtopo_rail_weights "$weights" \
        "$@" -- "$WORK/mpi_probe" "$MIB16" 5 >"$WORK/out" 2>&1 || { cat "$WORK/out"; return 1; }
    grep -q "probe summary: OK" "$WORK/out" || { cat "$WORK/out"; return 1; }
    TX0=$(($(qt_tx_bytes rail0) - b0))
    TX1=$(($(qt_tx_bytes rail1) - b1))
    echo "weights $weights: rail0 sent $TX0 bytes, rail1 $TX1"
}

# rail0's share over rail1's is WANT (a ratio) within 10%.
ratio_within() {
    local want=$1
    shift
    rail_bytes "$@" || return 1
    awk -v a="$TX0" -v b="$TX1" -v w="$want" \
        'BEGIN { r = a / (b > 0 ? b : 1); print "ratio", r, "want", w; exit !(r > 0.9 * w && r < 1.1 * w) }'
}

# The MPI_T counter rail_bytes_sent of rank 0 (examples/qtopo_pvars) splits 3:1 within
# 10% with weights 3,1.
pvar_ratio() {
    qt_run_expect "rail_bytes_sent\[1\]" "${ON[@]}" --mca coll_qtopo_rail_weights 3,1 -- \
        "$BUILD/examples/qtopo_pvars" "$MIB16" || return 1
    awk '$1 ~ /rail_bytes_sent\[0\]/ { a = $2 } $1 ~ /rail_bytes_sent\[1\]/ { b = $2 }
         END { r = a / (b > 0 ? b : 1); print "pvar ratio", r; exit !(r > 2.7 && r < 3.3) }' \
        "$WORK/out"
}

# On 400 + 100 Mbit/s rails the weights start equal (the emulated links report the
# same speed) and are re-estimated every 2 calls: after 40 calls rail0's weight is 2.5-6
# times rail1's (the link ratio is 4; without adaptation it stays 1). How fast it gets
# there depends on the load: the measured send times include the time a busy process
# takes to notice a completion, which is the same on both rails and slows the approach
# (the estimate's fixed point is still the balanced split). Seen here after 24 calls:
# 3.2-3.9 at a load average of 10 on 2 cores, 2.35 once at 20 (which is why the run has
# 40 calls).
adapts_to_4_to_1() {
    qt_run_expect "rail weights at call 40" "${ON[@]}" --mca coll_qtopo_verbose 1 \
        --mca coll_qtopo_rail_adapt_calls 2 -- "$WORK/mpi_probe" "$MIB16" 40 || return 1
    grep "rail weights at call 40" "$WORK/out" |
        sed -E 's/.*rail0 ([0-9]+) .*rail1 ([0-9]+) .*/\1 \2/' |
        awk '{ r = $1 / ($2 > 0 ? $2 : 1); print "weights", $1, $2, "ratio", r;
               exit !(r >= 2.5 && r <= 6) }'
}

# Communicators with rails created and freed in a loop (comm_loop.c) under valgrind on
# 4 nodes x 1 rank: no memory definitely lost outside MPI_Init and MPI_Finalize (Open
# MPI's own), no invalid access. Components stay loaded so that their frames resolve.
no_leaks_in_loop() {
    local f bad=0
    rm -rf "$WORK/vg"
    mkdir -p "$WORK/vg"
    qt_run_expect "comm_loop: OK" --hostfile "$WORK/hosts1" "${ON[@]}" \
        --mca mca_base_component_disable_dlclose 1 -- valgrind -q --leak-check=full \
        --log-file="$WORK/vg/vg.%p" "$WORK/comm_loop" 4 || return 1
    for f in "$WORK"/vg/vg.*; do
        awk '/definitely lost in loss record/ { rec = $0; buf = ""; on = 1; next }
             on && /^==[0-9]+== $/ { if (buf !~ /PMPI_Init|PMPI_Finalize|orte_/) { print rec buf; n++ }
                                     on = 0; next }
             on { buf = buf "\n" $0 }
             /Invalid (read|write|free)/ { print; n++ }
             END { exit n > 0 }' "$f" || bad=1
    done
    ((bad == 0))
}

# A rail of weight 0 carries (next to) nothing: under 64 KiB (ARP and the like) while
# the other carries the whole allreduce.
rail1_idle() {
    rail_bytes 1,0 "$@" || return 1
    ((TX1 < 65536 && TX0 > 50000000))
}

[[ -x $BUILD/test/mpi/test_allreduce && -x $BUILD/test/mpi/test_quantized ]] ||
    { echo "test programs missing: run make check first" >&2; exit 1; }
mpicc -O2 -o "$WORK/mpi_probe" "$HERE/mpi_probe.c"
mpicc -O1 -g -o "$WORK/comm_loop" "$HERE/comm_loop.c"
"$CLUSTER" down >/dev/null

qt_check "up 4 nodes x 2 rails" "$CLUSTER" up "$NODES" 2
qt_check "stripe: lossless exact, rails in use" qt_run_expect "2 rails, policy stripe" \
    "${ON[@]}" --mca coll_qtopo_verbose 1 -- "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "stripe: no failures" grep -q " 0 failed" "$WORK/out"
qt_check "stripe: lossless split-rail exact" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_hier_min_bytes 0 --mca coll_qtopo_rail_weights 3,1 -- \
    "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "stripe: 8-bit split-rail equals the model" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_bits 8 -- "$BUILD/test/mpi/test_quantized" --quick
qt_check "stripe: 4-bit flat equals the model" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_bits 4 --mca coll_qtopo_algorithm flat -- \
    "$BUILD/test/mpi/test_quantized" --quick
qt_check "aligned: lossless flat exact" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_rail_policy aligned --mca coll_qtopo_algorithm flat -- \
    "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "aligned: 8-bit split-rail equals the model" qt_run_expect " 0 failed" \
    "${ON[@]}" --mca coll_qtopo_rail_policy aligned --mca coll_qtopo_bits 8 -- \
    "$BUILD/test/mpi/test_quantized" --quick
qt_check "bytes per rail follow weights 3,1 (split-rail)" ratio_within 3 3,1
qt_check "bytes per rail follow weights 1,1 (flat)" ratio_within 1 1,1 \
    --mca coll_qtopo_algorithm flat
qt_check "weight 0: rail1 carries no allreduce bytes" rail1_idle
qt_check "MPI_T rail_bytes_sent follows weights 3,1" pvar_ratio
qt_check "threads: 4 threads on 4 communicators over the rails, exact" qt_run_expect " 0 failed" \
    "${ON[@]}" -- "$BUILD/test/mpi/test_threads" 4
qt_check "hostfile 2,2,2,1" "$CLUSTER" hostfile 2,2,2,1 "$WORK/hosts7"
qt_check "2,2,2,1 (7 ranks, uneven): lossless exact on the rails" qt_run_expect " 0 failed" \
    --hostfile "$WORK/hosts7" "${ON[@]}" -- "$BUILD/test/mpi/test_allreduce" --expect on
qt_check "hostfile 1,1,1,1" "$CLUSTER" hostfile 1 "$WORK/hosts1"
qt_check "valgrind: communicators with rails created and freed, no leak" no_leaks_in_loop
qt_check "transport pml: rails unused" qt_run_expect "inter-node traffic through the PML" \
    "${BASE[@]}" --mca coll_qtopo_transport pml --mca coll_qtopo_verbose 1 -- \
    "$WORK/mpi_probe" 65536 1
qt_check "down" "$CLUSTER" down
qt_check "up 4 nodes x 2 rails of 400 and 100 Mbit/s" "$CLUSTER" up "$NODES" 2 400mbit,100mbit
qt_check "adaptive weights approach the link ratio 4:1" adapts_to_4_to_1
qt_check "down (unequal)" "$CLUSTER" down

qt_summary
