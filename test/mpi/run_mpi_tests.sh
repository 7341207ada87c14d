#!/bin/bash
# Runs the coll/qtopo MPI tests with mpirun --oversubscribe at several rank counts and
# parameter settings, against the component just built (QTOPO_BUILDDIR/.libs comes first
# in the component path). Prints "N passed, M failed" over all runs.
set -u

# qtopo's exact algorithms are what these tests check: exact calls run in qtopo
# (coll_qtopo_exact always) unless a case asks for auto on its command line.
export OMPI_MCA_coll_qtopo_exact=${OMPI_MCA_coll_qtopo_exact:-always}

builddir=${QTOPO_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
mpirun=${MPIRUN:-mpirun}
test_bin="$builddir/test/mpi/test_allreduce"
log_dir="$builddir/test/mpi/logs"
passed=0
failed=0

mkdir -p "$log_dir"
mpi_run() {
    # mpi_run NP [mpirun args...] -- program args
    # (The component path goes to the MPI processes only, as an environment variable:
    # Open MPI 5.0's mpirun also hands an --mca mca_base_component_path to PMIx, which
    # then complains about the qtopo DSO and SYS_DEFAULT.)
    local np=$1
    shift
    timeout 600 "$mpirun" --allow-run-as-root --oversubscribe -np "$np" \
        -x "OMPI_MCA_mca_base_component_path=$builddir/.libs:SYS_DEFAULT" \
        --mca btl self,vader,tcp --mca mpi_yield_when_idle 1 "$@"
}

record() {
    # record NAME STATUS LOGFILE
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS: $1"
    else
        failed=$((failed + 1))
        echo "FAIL: $1 (log: $3)"
        tail -n 20 "$3"
    fi
}

run_case() {
    # run_case NAME NP [mpirun args...] -- [program args...]
    local name=$1 np=$2 log
    shift 2
    log="$log_dir/$(echo "$name" | tr -c 'A-Za-z0-9_=.-' '_').log"
    mpi_run "$np" "$@" >"$log" 2>&1
    record "$name" $? "$log"
}

expect_output() {
    # expect_output NAME PATTERN NP [mpirun args...]: the run must print PATTERN
    local name=$1 pattern=$2 np=$3 log
    shift 3
    log="$log_dir/$(echo "$name" | tr -c 'A-Za-z0-9_=.-' '_').log"
    mpi_run "$np" "$@" >"$log" 2>&1
    grep -q -- "$pattern" "$log"
    record "$name" $? "$log"
}

on="--mca coll_qtopo_priority 40"
verbose2="--mca coll_qtopo_verbose 2"
# QTOPO_MPI_QUICK=1 (the Open MPI 5.0 leg in CI): the same kinds of cases over fewer rank
# counts, widths and layouts
quick=${QTOPO_MPI_QUICK:-0}
pick() {
    # pick FULL_LIST QUICK_LIST: the list for this run
    if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi
}
for np in $(pick "1 2 3 4 5 8" "1 3 4"); do
    run_case "np=$np qtopo on" "$np" $on "$test_bin" --expect on
    run_case "np=$np qtopo on, min_bytes=0, 4 KiB segments" "$np" $on \
        --mca coll_qtopo_min_bytes 0 --mca coll_qtopo_segment_size 4096 "$test_bin" --expect on
done
for np in 1 3 4; do
    run_case "np=$np installed but inert" "$np" "$test_bin" --expect off
done
# coll_qtopo_exact: never hands every exact call on, bit for bit what tuned returns, and
# still runs quantized ones; auto follows the measured table (coll_qtopo_policy.c) from
# the second call on: on one node of 4 ranks tuned below 16 MiB, qtopo from there
for np in $(pick "2 4 8" "4"); do
    run_case "np=$np exact never: exact calls handed on" "$np" $on \
        --mca coll_qtopo_exact never "$test_bin" --expect handed-on
done
expect_output "np=4 exact never: quantized calls still run" " q-8\$" 4 $on \
    --mca coll_qtopo_exact never "$builddir/examples/qtopo_bench" --bits 8 --sizes 1M -r 1
expect_output "np=4 exact auto: 1 MiB handed on" "^ *1048576 .* prev\$" 4 $on \
    --mca coll_qtopo_exact auto "$builddir/examples/qtopo_bench" --sizes 1M -r 1
expect_output "np=4 exact auto: 16 MiB run by qtopo" "^ *16777216 .* qtopo\$" 4 $on \
    --mca coll_qtopo_exact auto "$builddir/examples/qtopo_bench" --sizes 16M -r 1
# quantized: every width at np=4 with both roundings (the full test includes the
# MPI_T-driven ratio, rules and error-feedback checks), quick runs at other np
qtest="$builddir/test/mpi/test_quantized"
for bits in $(pick "16 8 4 2 1" "8 2"); do
    for rounding in nearest stochastic; do
        run_case "np=4 bits=$bits $rounding" 4 $on --mca coll_qtopo_bits "$bits" \
            --mca coll_qtopo_rounding "$rounding" "$qtest"
    done
done
np_i=0
for np in $(pick "2 3 5 8" "3 5"); do
    for bits in $(pick "16 8 4 2 1" "16 4 1"); do
        rounding=$([ $(((np_i + bits) % 2)) -eq 0 ] && echo nearest || echo stochastic)
        run_case "np=$np bits=$bits $rounding (quick)" "$np" $on --mca coll_qtopo_bits "$bits" \
            --mca coll_qtopo_rounding "$rounding" --mca coll_qtopo_segment_size 65536 \
            "$qtest" --quick
    done
    np_i=$((np_i + 1))
done
run_case "np=3 bits=8, 4 KiB segments, block 32" 3 $on --mca coll_qtopo_bits 8 \
    --mca coll_qtopo_segment_size 4096 --mca coll_qtopo_block_size 32 "$qtest"
expect_output "np=2 bad rules string is reported" "coll_qtopo_rules" 2 $on \
    --mca coll_qtopo_rules "<=1M:3" "$test_bin" --expect off
# hierarchy on one host: every K consecutive ranks pretend to be a node
for spec in $(pick "4:2 6:3 6:2 8:4 8:2 8:3 6:1 4:4" "4:2 6:3"); do
    np=${spec%:*}
    k=${spec#*:}
    run_case "np=$np node_size=$k lossless" "$np" $on --mca coll_qtopo_node_size "$k" \
        --mca coll_qtopo_hier_min_bytes 0 "$test_bin" --expect on
    run_case "np=$np node_size=$k 8-bit (quick)" "$np" $on --mca coll_qtopo_node_size "$k" \
        --mca coll_qtopo_bits 8 --mca coll_qtopo_segment_size 65536 "$qtest" --quick
done
# nodes with unequal rank counts (the last pretended node smaller): the folded form of
# split-rail, forced for exact and 4-bit calls, auto at 8 bits; flat at 4 bits under auto
for spec in $(pick "7:2 5:3 9:4" "7:2"); do
    np=${spec%:*}
    k=${spec#*:}
    run_case "np=$np node_size=$k folded lossless" "$np" $on --mca coll_qtopo_node_size "$k" \
        --mca coll_qtopo_algorithm hier "$test_bin" --expect on
    run_case "np=$np node_size=$k folded 8-bit (quick)" "$np" $on --mca coll_qtopo_node_size "$k" \
        --mca coll_qtopo_bits 8 --mca coll_qtopo_segment_size 65536 "$qtest" --quick
    run_case "np=$np node_size=$k 4-bit folded forced (quick)" "$np" $on \
        --mca coll_qtopo_node_size "$k" --mca coll_qtopo_bits 4 --mca coll_qtopo_algorithm hier \
        "$qtest" --quick
    run_case "np=$np node_size=$k 4-bit flat under auto (quick)" "$np" $on \
        --mca coll_qtopo_node_size "$k" --mca coll_qtopo_bits 4 "$qtest" --quick
done
# ranks dealt to pretended nodes in turn (coll_qtopo_node_size -K, as --map-by node): the
# flat algorithms run in node order (the quantized test's model follows it; its split-rail
# model knows node-major layouts only, hence algorithm flat there), split-rail on
# interleaved nodes
expect_output "np=6 node_size=-2: 3 nodes dealt in turn, flat order by node" \
    "node 0 = ranks 0,3; .*flat order 0,3,1,4,2,5" 6 $on --mca coll_qtopo_node_size -2 \
    $verbose2 "$test_bin" --expect on
run_case "np=6 node_size=-2 flat lossless in node order" 6 $on --mca coll_qtopo_node_size -2 \
    --mca coll_qtopo_algorithm flat "$test_bin" --expect on
run_case "np=8 node_size=-4 flat 8-bit in node order" 8 $on --mca coll_qtopo_node_size -4 \
    --mca coll_qtopo_algorithm flat --mca coll_qtopo_bits 8 --mca coll_qtopo_rounding stochastic \
    --mca coll_qtopo_segment_size 65536 "$qtest" --quick
run_case "np=7 node_size=-2 uneven 4-bit in node order" 7 $on --mca coll_qtopo_node_size -2 \
    --mca coll_qtopo_algorithm flat --mca coll_qtopo_bits 4 --mca coll_qtopo_segment_size 65536 \
    "$qtest" --quick
run_case "np=8 node_size=-4 split-rail on interleaved nodes, lossless" 8 $on \
    --mca coll_qtopo_node_size -4 --mca coll_qtopo_hier_min_bytes 0 "$test_bin" --expect on
# error-bounded mode (coll_qtopo_error_bound, _mode, rules eE/rE through MPI_T): flat at
# np = 2, 3, 5, 8, split-rail on pretended nodes
ebtest="$builddir/test/mpi/test_ebound"
for spec in 2:0 3:0 5:0 8:0 4:2 8:2 8:4; do
    np=${spec%:*}
    k=${spec#*:}
    run_case "np=$np node_size=$k error-bounded" "$np" $on --mca coll_qtopo_node_size "$k" \
        --mca coll_qtopo_min_bytes 0 "$ebtest"
done
expect_output "np=2 negative error bound is reported" "coll_qtopo_error_bound" 2 $on \
    --mca coll_qtopo_error_bound -1 "$test_bin" --expect off
run_case "np=8 node_size=2 4-bit stochastic, ratio/rules/EF" 8 $on --mca coll_qtopo_node_size 2 \
    --mca coll_qtopo_bits 4 --mca coll_qtopo_rounding stochastic "$qtest"
expect_output "np=6 node_size=3: topology 2 nodes x 3" "2 nodes x 3 ranks; node 1 = ranks 3,4,5" \
    6 $on --mca coll_qtopo_node_size 3 $verbose2 "$test_bin" --expect on
expect_output "np=6 node_size=3 runs hier" "MPI_COMM_WORLD: hier" \
    6 $on --mca coll_qtopo_node_size 3 --mca coll_qtopo_hier_min_bytes 0 $verbose2 \
    "$test_bin" --expect on
expect_output "np=4 node_size=2: small exact calls stay flat under auto" "MPI_COMM_WORLD: flat" \
    4 $on --mca coll_qtopo_node_size 2 $verbose2 "$test_bin" --expect on
expect_output "np=8 node_size=3: uneven nodes detected" "3 nodes of 2..3 ranks (uneven)" \
    8 $on --mca coll_qtopo_node_size 3 $verbose2 "$test_bin" --expect on
expect_output "np=8 node_size=3: uneven runs flat" "MPI_COMM_WORLD: flat" \
    8 $on --mca coll_qtopo_node_size 3 $verbose2 "$test_bin" --expect on
expect_output "np=4 node_size=2 algorithm=flat is obeyed" "MPI_COMM_WORLD: flat" \
    4 $on --mca coll_qtopo_node_size 2 --mca coll_qtopo_algorithm flat $verbose2 \
    "$test_bin" --expect on
expect_output "np=4 examples/qtopo_pvars prints the counters (10 quantized calls)" \
    "coll_qtopo_calls_quantized *10 " 4 $on --mca coll_qtopo_bits 8 \
    "$builddir/examples/qtopo_pvars"
# MPI_THREAD_MULTIPLE: three threads on three communicators at once
tbin="$builddir/test/mpi/test_threads"
run_case "np=3 three threads, lossless" 3 $on "$tbin" 3
run_case "np=4 node_size=2 three threads, 8-bit split-rail" 4 $on --mca coll_qtopo_bits 8 \
    --mca coll_qtopo_node_size 2 "$tbin" 3
run_case "np=2 qtopo on, > 2^28 elements" 2 $on "$test_bin" --expect on --large
run_case "np=4 bits=3 is reported and falls back" 4 $on --mca coll_qtopo_bits 3 \
    "$test_bin" --expect off
# coll_qtopo_scratch_max: the ring with as few as one receive slot, the quantized
# algorithm with finer segments (the test's model follows them), split-rail stepping
# aside for flat where its node stage does not fit; a cap no call fits is said and
# every call is handed on (below, with test_agree)
run_case "np=4 scratch_max 256 KiB: ring with one receive slot" 4 $on \
    --mca coll_qtopo_scratch_max 262144 "$test_bin" --expect on
run_case "np=5 scratch_max 128 KiB, 4 KiB segments: large calls with fewer slots" 5 $on \
    --mca coll_qtopo_scratch_max 131072 --mca coll_qtopo_segment_size 4096 \
    "$test_bin" --expect on
run_case "np=4 bits=8 scratch_max 300000: finer segments" 4 $on --mca coll_qtopo_bits 8 \
    --mca coll_qtopo_scratch_max 300000 "$qtest" --quick
expect_output "np=4 node_size=2 scratch_max 1 MiB: split-rail steps aside" \
    "MPI_COMM_WORLD: flat" 4 $on --mca coll_qtopo_node_size 2 --mca coll_qtopo_hier_min_bytes 0 \
    --mca coll_qtopo_scratch_max 1048576 $verbose2 "$test_bin" --expect on
expect_output "np=4 bits=3 message" "coll_qtopo_bits has the value \"3\"" 4 $on --mca coll_qtopo_bits 3 \
    "$test_bin" --expect off
expect_output "np=2 --mca coll qtopo names the components to add" \
    "coll qtopo,tuned,libnbc,basic,self" 2 --mca coll qtopo $on "$test_bin" --expect on


# Agreement (coll_qtopo_agree.c): a setting that differs on one rank (set in that rank's
# environment, as on a host or in an MPMD part configured differently) is detected and
# the calls are handed on, on every rank: integer data must come back exact (a call
# quantized by mistake would not), and the message must name the setting.
atest="$builddir/test/mpi/test_agree"
renv="$(cd "$(dirname "$0")" && pwd)/rank_env.sh"
agree_case() {
    # agree_case NAME PATTERN SETTING_OF_RANK_2 [mpirun args...]
    local name=$1 pattern=$2 setting=$3 log
    shift 3
    log="$log_dir/$(echo "$name" | tr -c 'A-Za-z0-9_=.-' '_').log"
    mpi_run 4 $on "$@" "$renv" 2 "$setting" "$atest" --exact 3 >"$log" 2>&1 &&
        grep -q -- "$pattern" "$log" && {
        # a setting that differs is named, never mistaken for a rank without qtopo
        [ "$pattern" = "$without" ] || ! grep -q -- "$without" "$log"
    }
    record "$name" $? "$log"
}
differ="do not agree on"
without="runs MPI_Allreduce without qtopo"
agree_case "np=4 bits 32 vs 8 on rank 2" "$differ.*coll_qtopo_bits" OMPI_MCA_coll_qtopo_bits=8
agree_case "np=4 bits 8 vs 4 on rank 2" "$differ.*coll_qtopo_bits" OMPI_MCA_coll_qtopo_bits=4 \
    --mca coll_qtopo_bits 8
agree_case "np=4 block 256 vs 128 on rank 2" "$differ.*coll_qtopo_block_size" \
    OMPI_MCA_coll_qtopo_block_size=128 --mca coll_qtopo_bits 8
agree_case "np=4 ratio 1 vs 0.5 on rank 2" "$differ.*coll_qtopo_ratio" \
    OMPI_MCA_coll_qtopo_ratio=0.5 --mca coll_qtopo_bits 8
agree_case "np=4 segment size differs on rank 2" "$differ.*coll_qtopo_segment_size" \
    OMPI_MCA_coll_qtopo_segment_size=65536
agree_case "np=4 scratch_max differs on rank 2" "$differ.*coll_qtopo_scratch_max" \
    OMPI_MCA_coll_qtopo_scratch_max=65536
agree_case "np=4 rules differ on rank 2" "$differ.*coll_qtopo_rules" \
    "OMPI_MCA_coll_qtopo_rules=*:8"
agree_case "np=4 node_size=2 algorithm hier vs flat on rank 2" "$differ.*coll_qtopo_algorithm" \
    OMPI_MCA_coll_qtopo_algorithm=flat --mca coll_qtopo_node_size 2 --mca coll_qtopo_algorithm hier
agree_case "np=4 error bound differs on rank 2" "$differ.*coll_qtopo_error_bound" \
    OMPI_MCA_coll_qtopo_error_bound=1e-2 --mca coll_qtopo_error_bound 1e-3
agree_case "np=4 error bound mode differs on rank 2" "$differ.*coll_qtopo_error_bound_mode" \
    OMPI_MCA_coll_qtopo_error_bound_mode=rel --mca coll_qtopo_error_bound 1e-3
agree_case "np=4 qtopo off (priority 0) on rank 2" "$without" OMPI_MCA_coll_qtopo_priority=0
agree_case "np=4 larger min_bytes on rank 2" "$without" OMPI_MCA_coll_qtopo_min_bytes=1000000000
agree_case "np=4 smaller min_bytes on rank 2 only" "$without" OMPI_MCA_coll_qtopo_min_bytes=0 \
    --mca coll_qtopo_min_bytes 1000000000
# a scratch cap no call fits: every call handed on (integer data exact), said once
log="$log_dir/scratch_max_too_small.log"
mpi_run 4 $on --mca coll_qtopo_scratch_max 1000 "$atest" --exact 3 >"$log" 2>&1 &&
    [ "$(grep -c "more than coll_qtopo_scratch_max (1000)" "$log")" = 1 ]
record "np=4 scratch_max 1000: every call handed on, said once" $? "$log"
# one rank fails: an allocation before the call is handed on everywhere; a transport
# failure inside the call ends it without a hang and turns qtopo off everywhere
for algo in "flat" "hier --mca coll_qtopo_node_size 2"; do
    run_case "np=4 $algo: allocation fails on rank 1 at call 2" 4 $on \
        --mca coll_qtopo_fault alloc:1:2 --mca coll_qtopo_algorithm $algo "$atest" --fault-alloc
    run_case "np=4 $algo: transport fails on rank 1 at call 2" 4 $on \
        --mca coll_qtopo_fault xport:1:2 --mca coll_qtopo_algorithm $algo "$atest" --fault-xport
done
# a GPU buffer one rank cannot run (memory kind in the agreement): handed on everywhere
run_case "np=4: rank 1 has an unusable GPU buffer at call 2" 4 $on \
    --mca coll_qtopo_fault device:1:2 "$atest" --fault-device
expect_output "np=3: an unusable GPU buffer is reported" "GPU buffer that qtopo cannot run" 3 \
    $on --mca coll_qtopo_fault device:2:2 "$atest" --fault-device
run_case "np=4 node_size=2 8-bit: transport fails on rank 1 at call 2" 4 $on \
    --mca coll_qtopo_bits 8 --mca coll_qtopo_node_size 2 --mca coll_qtopo_fault xport:1:2 \
    "$atest" --fault-xport
# a rail that fails inside a call (injected) on qtopo's own rails, two contexts over lo
# between pretended nodes: the call is redone over the other rail, results stay exact /
# within the bound and identical on every rank, one warning names the rail
if [[ $(ldd "$builddir/.libs/mca_coll_qtopo.so" 2>/dev/null) == *libucp* ]]; then
    lo_rails="--mca coll_qtopo_transport ucx --mca coll_qtopo_rails lo,lo"
    lo_rails="$lo_rails --mca coll_qtopo_node_size 2 --mca coll_qtopo_fault rail:1:2"
    run_case "np=4 rails lo,lo: rail fails on rank 1 at call 2, lossless split-rail" 4 $on \
        $lo_rails --mca coll_qtopo_hier_min_bytes 0 "$test_bin" --expect on
    run_case "np=4 rails lo,lo: rail fails on rank 1 at call 2, error-bounded" 4 $on \
        $lo_rails --mca coll_qtopo_min_bytes 0 "$ebtest"
    expect_output "np=4 rails lo,lo: the failed rail is named" \
        "rank 1 of MPI_COMM_WORLD: rail 0 (lo) failed" 4 $on $lo_rails "$test_bin" --expect on
else
    echo "SKIP: rail failover on one host (qtopo was built without UCX)"
fi
# bit-identity with flush-to-zero on one rank; -0.0 sums; a call past 2^31 bytes
run_case "np=3 8-bit, FTZ/DAZ on rank 1" 3 $on --mca coll_qtopo_bits 8 "$atest" --ftz
run_case "np=4 node_size=2 4-bit, FTZ/DAZ on rank 1" 4 $on --mca coll_qtopo_bits 4 \
    --mca coll_qtopo_node_size 2 "$atest" --ftz
for bits in 32 16 8 1; do
    run_case "np=3 bits=$bits: -0.0 sums stay -0.0" 3 $on --mca coll_qtopo_bits "$bits" \
        "$atest" --negzero
done
run_case "np=3 2-bit: error feedback off and on again starts afresh" 3 $on --mca coll_qtopo_bits 2 \
    "$atest" --ef-reset
run_case "np=4 node_size=2 2-bit split-rail: error feedback off and on again starts afresh" 4 \
    $on --mca coll_qtopo_bits 2 --mca coll_qtopo_node_size 2 "$atest" --ef-reset
expect_output "np=3 2-bit: a residual over coll_qtopo_ef_max_bytes is reported" \
    "no room for the error-feedback residual" 3 $on --mca coll_qtopo_bits 2 \
    --mca coll_qtopo_ef_max_bytes 4096 "$atest" --ef-reset
run_case "np=2 lossless, in place, 2^29+3 floats (> 2^31 bytes)" 2 $on "$atest" --huge

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
