#!/bin/bash
# check_env.sh: can the cluster test bed run here? Run it: prints "OK" (exit 0) or
# "SKIP: <reason>" (exit 77, automake's skip code). Or source it and call
# qt_check_env, which returns 1 with the reason in QT_SKIP_REASON.

QT_CHECK_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
. "$QT_CHECK_HERE/common.sh"

# qtopo's exact algorithms are what the cluster tests check: exact calls run in qtopo
# (coll_qtopo_exact always) unless a case asks for auto on its command line.
export OMPI_MCA_coll_qtopo_exact=${OMPI_MCA_coll_qtopo_exact:-always}

# Build a throw-away namespace with a bridge, a veth pair and a tbf qdisc.
qt_check_namespace_features() {
    local ns=qtcheck$$ ok=1
    ip netns add "$ns" 2>/dev/null || { QT_SKIP_REASON="cannot create a network namespace (ip netns add)"; return 1; }
    if ! ip -n "$ns" link add qtbr type bridge 2>/dev/null; then
        QT_SKIP_REASON="cannot create a bridge in a network namespace"
        ok=0
    elif ! ip -n "$ns" link add qtva type veth peer name qtvb 2>/dev/null; then
        QT_SKIP_REASON="cannot create a veth pair in a network namespace"
        ok=0
    elif ! tc -n "$ns" qdisc add dev qtva root tbf rate 1mbit burst 64kb latency 50ms 2>/dev/null; then
        QT_SKIP_REASON="tc tbf is not available"
        ok=0
    fi
    ip netns del "$ns"
    ((ok == 1))
}

qt_check_env() {
    local cmd
    QT_SKIP_REASON=""
    if [[ $EUID -ne 0 ]]; then
        QT_SKIP_REASON="needs root (network namespaces)"
        return 1
    fi
    for cmd in ip tc nsenter unshare timeout mpirun mpicc; do
        if ! command -v "$cmd" >/dev/null; then
            QT_SKIP_REASON="'$cmd' not found"
            return 1
        fi
    done
    if ! unshare --uts true 2>/dev/null; then
        QT_SKIP_REASON="cannot create a UTS namespace (unshare --uts)"
        return 1
    fi
    qt_check_namespace_features || return 1
    # A running cluster owns the login subnet; otherwise nothing else may use it.
    if [[ ! -e $QT_STATE_DIR/state ]] && qt_login_subnet_in_use; then
        QT_SKIP_REASON="$QT_OOB_NET is already in use in the root namespace"
        return 1
    fi
}

# qt_start_test NAME [ucx]: the start of a test script: exit 77 (skip) with the reason
# when the test bed cannot run here, or (ucx) when the component in $BUILD (default: the
# top of the tree) was built without UCX; then $WORK and the clean-up (qt_test_setup).
qt_start_test() {
    BUILD=${QTOPO_BUILDDIR:-$(cd "$QT_CHECK_HERE/../.." && pwd)}
    if ! qt_check_env; then
        echo "SKIP: $QT_SKIP_REASON"
        exit 77
    fi
    if [[ ${2:-} == ucx && $(ldd "$BUILD/.libs/mca_coll_qtopo.so" 2>/dev/null) != *libucp* ]]; then
        echo "SKIP: qtopo was built without UCX (apt-get install libucx-dev, then configure)"
        exit 77
    fi
    qt_test_setup "$1"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    if qt_check_env; then
        echo "OK: the cluster test bed can run here"
        exit 0
    fi
    echo "SKIP: $QT_SKIP_REASON"
    exit 77
fi
