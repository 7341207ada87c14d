#!/bin/bash
# test_testbed.sh: self-test of the cluster test bed. Brings up 4 nodes x 2 rails, runs
# mpi_probe on 8 ranks (and 2,2,2,1 ranks per node), checks hostnames, local sizes,
# environment passing, time limits, teardown and (with iperf3) shaping.
# Prints "N passed, M failed"; exit 1 on failure, 77 when the test bed cannot run here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=check_env.sh
. "$HERE/check_env.sh"
if ! qt_check_env; then
    echo "SKIP: $QT_SKIP_REASON"
    exit 77
fi
qt_test_setup qtopo-testbed

CLUSTER=$HERE/cluster.sh
RUN=$HERE/run.sh



# ---------------------------------------------------------------- checks

hostnames_differ() {
    local i name
    for ((i = 0; i < 4; i++)); do
        name=$("$HERE/nsexec" "qtnode$i" hostname) || return 1
        echo "qtnode$i: $name"
        [[ $name == "qtnode$i" ]] || return 1
    done
}

# probe_gives EXPECT [run.sh options]: run mpi_probe and compare the sorted distinct
# "host=local_size" pairs with EXPECT; every rank must report a correct allreduce.
probe_gives() {
    local expect=$1 got ranks
    shift
    "$RUN" "$@" -- "$WORK/mpi_probe" 4096 3 >"$WORK/probe.out" || return 1
    cat "$WORK/probe.out"
    grep -q '^probe summary: OK ' "$WORK/probe.out" || return 1
    ranks=$(grep -c 'local_matches_host=yes allreduce=ok$' "$WORK/probe.out")
    [[ $ranks -eq $(grep -c '^probe rank=' "$WORK/probe.out") ]] || return 1
    got=$(sed -n 's/^probe rank=.* host=\([^ ]*\) local_rank=[0-9]* local_size=\([0-9]*\) .*/\1=\2/p' \
        "$WORK/probe.out" | sort -u | xargs)
    echo "expected: $expect"
    echo "got:      $got"
    [[ $got == "$expect" ]]
}

nsexec_keeps_environment() {
    local got
    # shellcheck disable=SC2016  # expanded by the shell inside the node
    got=$(QT_TESTBED_VAR="a b" LD_LIBRARY_PATH=/qt/lib OMPI_MCA_qt_test=1 \
        "$HERE/nsexec" -x -o BatchMode=yes qtnode2 \
        'echo "$QT_TESTBED_VAR|$LD_LIBRARY_PATH|$OMPI_MCA_qt_test|$PATH"') || return 1
    echo "got: $got"
    [[ $got == "a b|/qt/lib|1|$PATH" ]]
}

mpirun_forwards_x_variables() {
    local got
    # shellcheck disable=SC2016  # expanded by the shell inside the node
    got=$("$RUN" -x QT_TESTBED_VAR=hello -- /bin/sh -c 'echo "$(hostname) $QT_TESTBED_VAR"' |
        sort | uniq -c | xargs) || return 1
    echo "got: $got"
    [[ $got == "2 qtnode0 hello 2 qtnode1 hello 2 qtnode2 hello 2 qtnode3 hello" ]]
}

# Wait up to 5 s for the node namespaces to hold no process (killed ones get reaped).
namespaces_empty() {
    local tries i busy
    for ((tries = 0; tries < 50; tries++)); do
        busy=0
        for ((i = 0; i < 4; i++)); do
            [[ -z $(ip netns pids "qtnode$i") ]] || busy=1
        done
        ((busy == 0)) && return 0
        sleep 0.1
    done
    return 1
}

timeout_kills_run() {
    local status=0 start=$SECONDS
    "$RUN" --timeout 3 -- sleep 60 || status=$?
    echo "status=$status after $((SECONDS - start)) s"
    ((status == 124 && SECONDS - start < 15)) || return 1
    namespaces_empty
}

nothing_left() {
    ip netns list
    grep -F "$QT_HOSTS_TAG" /etc/hosts && return 1
    ! ip netns list | grep -qE '^(qtnode[0-9]+|qtfabric)( |$)' || return 1
    [[ ! -e $QT_STATE_DIR && ! -e $QT_UTS_DIR ]] || return 1
    ! ip link show "$QT_LOGIN_DEV" 2>/dev/null
}

killed_up_then_down() {
    "$CLUSTER" up 8 2 300mbit &
    sleep 0.1
    kill -KILL $! 2>/dev/null || true
    wait $! 2>/dev/null || true
    sleep 0.3  # let a killed `ip` child finish its one operation
    echo "after the killed up: $(ip netns list | wc -l) namespaces"
    "$CLUSTER" down || return 1
    nothing_left
}

# iperf3_rate_ok NODE_ADDR RATE_MBIT: single-stream goodput from qtnode0 must be
# 80-102% of the shaped rate.
iperf3_rate_ok() {
    local addr=$1 rate=$2 got
    "$HERE/nsexec" qtnode1 "iperf3 -s -1 -B $addr" >/dev/null &
    sleep 0.5
    got=$("$HERE/nsexec" qtnode0 "iperf3 -f m -t 2 -c $addr" |
        awk '/receiver/ { for (f = 1; f < NF; f++) if ($(f + 1) == "Mbits/sec") print $f }') || return 1
    wait
    echo "$addr: shaped to ${rate} Mbit/s, measured ${got:-nothing} Mbit/s"
    awk -v g="${got:-0}" -v r="$rate" 'BEGIN { exit !(g >= 0.80 * r && g <= 1.02 * r) }'
}

# ---------------------------------------------------------------- main

mpicc -O2 -o "$WORK/mpi_probe" "$HERE/mpi_probe.c"
"$CLUSTER" down >/dev/null

qt_check "up 4 nodes x 2 rails" "$CLUSTER" up 4 2
qt_check "status lists the nodes" sh -c "'$CLUSTER' status | grep -q 'qtnode3: hostname=qtnode3'"
qt_check "each node has its own hostname" hostnames_differ
qt_check "nsexec keeps the environment" nsexec_keeps_environment
qt_check "probe: 8 ranks on 4 nodes, local size 2" \
    probe_gives "qtnode0=2 qtnode1=2 qtnode2=2 qtnode3=2"
qt_check "probe over rail1 only" \
    probe_gives "qtnode0=2 qtnode1=2 qtnode2=2 qtnode3=2" --rails rail1
qt_check "hostfile 2,2,2,1" "$CLUSTER" hostfile 2,2,2,1 "$WORK/hosts7"
qt_check "probe: uneven 2,2,2,1 ranks per node" \
    probe_gives "qtnode0=2 qtnode1=2 qtnode2=2 qtnode3=1" --hostfile "$WORK/hosts7"
qt_check "mpirun -x reaches the ranks" mpirun_forwards_x_variables
qt_check "time limit kills a hung run and its processes" timeout_kills_run
qt_check "down" "$CLUSTER" down
qt_check "down leaves nothing behind" nothing_left
qt_check "down is idempotent" "$CLUSTER" down
qt_check "down after a killed up" killed_up_then_down

if command -v iperf3 >/dev/null; then
    qt_check "up 2 nodes, rails shaped 500mbit,250mbit" "$CLUSTER" up 2 2 500mbit,250mbit
    qt_check "iperf3 on rail0 reaches ~500 Mbit/s" iperf3_rate_ok 10.10.0.2 500
    qt_check "iperf3 on rail1 reaches ~250 Mbit/s" iperf3_rate_ok 10.11.0.2 250
    qt_check "down (shaped cluster)" "$CLUSTER" down
else
    echo "SKIP: shaping checks (iperf3 not installed)"
fi

qt_summary
