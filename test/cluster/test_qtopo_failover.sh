#!/bin/bash
# test_qtopo_failover.sh: a rail that fails in the middle of a run costs bandwidth, not
# the job. Emulated cluster of 4 nodes x 2 ranks with three interfaces: rail0 carries
# Open MPI's own traffic (the PML and mpirun's out-of-band channel, outside qtopo's
# failover), rail1 and rail2 are qtopo's rails. During a loop of 16 MiB allreduces
# (rail_loop.c), `ip link set rail2 down` in one node's namespace: the loop finishes,
# every result is identical on every rank and correct (exact when lossless, equal to a
# run without failure when 8-bit), one warning names the rail, and the call that met the
# failure took at most the watchdog timeout + 4 healthy calls + 3 s. Lossless and 8-bit,
# split-rail and flat. Also a rail down before the job starts (left out, one message, no
# bytes on it) and both rails down in the middle of a run (the rest over the PML).
# Prints "N passed, M failed"; exit 1 on failure, 77 when the test bed or UCX is missing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=check_env.sh
. "$HERE/check_env.sh"
qt_start_test qtopo-failover-test ucx

CLUSTER=$HERE/cluster.sh
NODES=4
COUNT=4194304 # 16 MiB of floats
CALLS=12
TIMEOUT_S=3   # coll_qtopo_rail_timeout
ON=(--rails rail0 --mca coll_qtopo_priority 40
    --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT" --mca coll_qtopo_rails rail1,rail2
    --mca coll_qtopo_transport ucx --mca coll_qtopo_rail_timeout "$TIMEOUT_S")
mpicc -O2 -o "$WORK/rail_loop" "$HERE/rail_loop.c"

set_links() {
    local state=$1 node=$2 dev
    shift 2
    for dev in "$@"; do
        qt_in_node "qtnode$node" ip link set "$dev" "$state"
    done
}

# failing_loop NODE "DEVS" [run.sh args]: rail_loop with the interfaces DEVS of node NODE
# put down once 3 calls have ended (and up again after the run); output in $WORK/out.
failing_loop() {
    local node=$1 devs=$2 rc=0
    shift 2
    qt_fail_links_during "$node" "$devs" "$WORK/out" "$WORK/progress" --timeout 300 \
        "${ON[@]}" "$@" -- "$WORK/rail_loop" "$COUNT" "$CALLS" "${EXACT:--}" "$WORK/progress" ||
        rc=$?
    cat "$WORK/out"
    return "$rc"
}

# The loop ended well, the warning came once per failed rail, and the slowest call took
# at most STALLS watchdog timeouts + 4 times the median call + 3 s.
survived() {
    local warnings=$1 stalls=$2
    grep -q "rail_loop summary: OK" "$WORK/out" || return 1
    [[ $(grep -c "rail [0-9] (rail[12]) failed" "$WORK/out") == "$warnings" ]] || return 1
    grep -o "^call [0-9]*: [0-9.]* s" "$WORK/out" | awk '{ print $3 }' | sort -n |
        awk -v t="$TIMEOUT_S" -v k="$stalls" '{ v[NR] = $1 } END {
            med = v[int((NR + 1) / 2)]; max = v[NR]; limit = k * t + 4 * med + 3;
            print "median", med, "s, slowest", max, "s, limit", limit, "s";
            exit !(max <= limit) }'
}

# The hashes of the calls in $WORK/out equal those of the run kept in FILE.
same_hashes() {
    diff <(grep -o "^call [0-9]*: .* hash [0-9a-f]*" "$WORK/out" | awk '{ print $2, $6 }') \
        <(grep -o "^call [0-9]*: .* hash [0-9a-f]*" "$1" | awk '{ print $2, $6 }')
}

lossless_failover() {
    EXACT=exact failing_loop 2 rail2 "$@" && survived 1 1
}

# 8-bit: the same results as a run where nothing fails (the rail a byte takes does not
# change what is computed).
quantized_failover() {
    qt_run_expect "rail_loop summary: OK" "${ON[@]}" --mca coll_qtopo_bits 8 "$@" -- \
        "$WORK/rail_loop" "$COUNT" "$CALLS" || return 1
    cp "$WORK/out" "$WORK/healthy"
    failing_loop 2 rail2 --mca coll_qtopo_bits 8 "$@" && survived 1 1 && same_hashes "$WORK/healthy"
}

down_before_start() {
    local b2 rc=0
    set_links down 1 rail2
    b2=$(qt_tx_bytes rail2)
    qt_run_expect "rail2 (weight 0)" "${ON[@]}" --mca coll_qtopo_verbose 1 -- \
        "$WORK/rail_loop" "$COUNT" 4 exact || rc=1
    set_links up 1 rail2
    ((rc == 0)) || return 1
    grep -q "rail_loop summary: OK" "$WORK/out" || return 1
    [[ $(grep -c 'rail device "rail2" is down' "$WORK/out") == 1 ]] || return 1
    echo "rail2 sent $(($(qt_tx_bytes rail2) - b2)) bytes"
    (($(qt_tx_bytes rail2) - b2 < 65536))
}

"$CLUSTER" down >/dev/null
qt_check "up 4 nodes x 3 interfaces (rail0: Open MPI, rail1 + rail2: qtopo)" \
    "$CLUSTER" up "$NODES" 3 500mbit
qt_check "lossless split-rail: rail2 down mid-run" lossless_failover
qt_check "lossless flat: rail2 down mid-run" lossless_failover --mca coll_qtopo_algorithm flat
qt_check "8-bit split-rail: rail2 down mid-run, results as without failure" quantized_failover
qt_check "eager rails (fixed weights 1,1), lossless split-rail: rail2 down mid-run" \
    lossless_failover --mca coll_qtopo_rail_weights 1,1
qt_check "eager rails (fixed weights 1,1), 8-bit split-rail: rail2 down, results as without" \
    quantized_failover --mca coll_qtopo_rail_weights 1,1
qt_check "8-bit flat: rail2 down mid-run, results as without failure" quantized_failover \
    --mca coll_qtopo_algorithm flat
qt_check "rail2 down before the start: not used, one message" down_before_start
qt_check "both rails down mid-run: the rest over the PML" \
    eval 'EXACT=exact failing_loop 2 "rail1 rail2" && survived 2 3'
qt_check "down" "$CLUSTER" down

qt_summary
