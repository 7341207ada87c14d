# common.sh: names, paths and helpers shared by the qtopo cluster test-bed scripts.
# Sourced, not run. Every name starts with "qt" so nothing collides with the host.
# shellcheck shell=bash disable=SC2034  # constants used by the scripts that source this

QT_NODE_PREFIX=qtnode                 # node namespaces: qtnode0, qtnode1, ...
QT_FABRIC=qtfabric                    # namespace holding one bridge per rail (br0, br1, ...)
QT_LOGIN_DEV=qtlogin                  # root-namespace end of the login veth into br0
QT_LOGIN_ADDR=10.10.0.254             # its address, so mpirun can run in the root namespace
QT_OOB_NET=10.10.0.0/24               # rail0 subnet: carries mpirun <-> orted traffic
QT_STATE_DIR=/run/qtopo-cluster       # state file and default hostfile
QT_UTS_DIR=/run/qtopo-uts             # one bind-mounted UTS namespace file per node
QT_HOSTS_TAG="# qtopo-cluster"        # marks the /etc/hosts lines this test bed owns
QT_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)  # this directory

qt_die() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

# Address of node $1 on rail $2: 10.(10+rail).0.(node+1).
qt_rail_addr() {
    echo "10.$((10 + $2)).0.$(($1 + 1))"
}

# Load QT_NODES, QT_RAILS, QT_RATES, QT_LOGIN, QT_HOSTFILE written by `cluster.sh up`.
qt_load_state() {
    [[ -r $QT_STATE_DIR/state ]] || qt_die "no cluster is up (run: cluster.sh up N R)"
    # shellcheck source=/dev/null
    . "$QT_STATE_DIR/state"
}

# Run a command inside node $1: its UTS namespace (hostname) and network namespace.
# `ip netns exec` also remounts /sys, so /sys/class/net shows the node's rails.
qt_in_node() {
    local node=$1
    shift
    [[ -e $QT_UTS_DIR/$node ]] || qt_die "unknown node '$node' (is the cluster up?)"
    nsenter --uts="$QT_UTS_DIR/$node" -- ip netns exec "$node" "$@"
}

# True when rail0's subnet (used by the login veth) has an address or route in the
# root namespace.
qt_login_subnet_in_use() {
    [[ -n $(ip -4 -o addr show to "$QT_OOB_NET") || -n $(ip -4 route show exact "$QT_OOB_NET") ]]
}

# ---- the self-tests' harness (test_*.sh): a work directory, checks, a summary ----

QT_PASSED=0
QT_FAILED=0

# Make $WORK, and on exit take the cluster down and remove $WORK.
qt_test_setup() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    trap 'qt_test_cleanup' EXIT
}

qt_test_cleanup() {
    "$QT_HERE/cluster.sh" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# qt_check NAME command...: run one check, its output into $WORK/log (shown on failure).
# (Inside the command set -e does not apply: checks return their status explicitly.)
qt_check() {
    local name=$1
    shift
    if "$@" >"$WORK/log" 2>&1; then
        echo "PASS: $name"
        QT_PASSED=$((QT_PASSED + 1))
    else
        echo "FAIL: $name"
        sed 's/^/    | /' "$WORK/log" | tail -n 25
        QT_FAILED=$((QT_FAILED + 1))
    fi
}

# qt_tx_bytes DEV: bytes sent on interface DEV, summed over the running cluster's nodes.
qt_tx_bytes() {
    local i sum=0 v
    qt_load_state
    for ((i = 0; i < QT_NODES; i++)); do
        v=$(qt_in_node "$QT_NODE_PREFIX$i" cat "/sys/class/net/$1/statistics/tx_bytes")
        sum=$((sum + v))
    done
    echo "$sum"
}

# qt_fail_links_during NODE "DEVS" OUT PROGRESS [run.sh args] -- rail_loop ... PROGRESS:
# runs run.sh in the background (output in OUT); once the program has written 3 (calls
# done, rail_loop.c) into PROGRESS, puts the interfaces DEVS of node NODE down, and up
# again after the run. Sets QT_DOWN_AT (when the links went down) and QT_NEXT_AT (when
# the program next wrote a larger count; empty when it never did), as `date +%s.%N`;
# returns the run's status.
qt_fail_links_during() {
    local node=$1 devs=$2 out=$3 progress=$4 pid rc=0 done_calls dev
    shift 4
    QT_DOWN_AT="" QT_NEXT_AT=""
    rm -f "$progress"
    "$QT_HERE/run.sh" "$@" >"$out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        done_calls=$(cat "$progress" 2>/dev/null || true)
        if [[ -z $QT_DOWN_AT && $done_calls == 3 ]]; then
            for dev in $devs; do
                qt_in_node "$QT_NODE_PREFIX$node" ip link set "$dev" down
            done
            QT_DOWN_AT=$(date +%s.%N)
        elif [[ -n $QT_DOWN_AT && -z $QT_NEXT_AT && ${done_calls:-0} -gt 3 ]]; then
            QT_NEXT_AT=$(date +%s.%N)
        fi
        sleep 0.05
    done
    wait "$pid" || rc=$?
    for dev in $devs; do
        qt_in_node "$QT_NODE_PREFIX$node" ip link set "$dev" up
    done
    return "$rc"
}

# qt_run_expect PATTERN [run.sh args] -- prog args: the run must succeed and print
# PATTERN; its output is in $WORK/out.
qt_run_expect() {
    local pattern=$1
    shift
    "$QT_HERE/run.sh" --timeout 300 "$@" >"$WORK/out" 2>&1 || { cat "$WORK/out"; return 1; }
    cat "$WORK/out"
    grep -q -- "$pattern" "$WORK/out"
}

# Print "N passed, M failed"; succeed only without failures.
qt_summary() {
    echo "$QT_PASSED passed, $QT_FAILED failed"
    ((QT_FAILED == 0))
}
