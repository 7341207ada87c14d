#!/bin/bash
# failover_bench.sh: what a rail failure costs, qtopo against Open MPI alone, on the
# emulated cluster (test/cluster): 4 nodes x 2 ranks; rail0 carries mpirun's out-of-band
# channel (and the PML where qtopo runs), rail1 and rail2 (500 Mbit/s each) carry the
# allreduce traffic. A loop of 16 MiB lossless allreduces (test/cluster/rail_loop.c); after
# the third call `ip link set rail2 down` in node 2's namespace. Printed per scenario: the
# per-call times, the time from the link going down to the first call that ended after
# it, and the mean call time before and after.
#   qtopo       qtopo on its rails rail1,rail2 (default coll_qtopo_rail_timeout, 5 s)
#   open-mpi    qtopo off; ob1's TCP BTL striping over rail1 and rail2
# Needs root. Usage: examples/failover_bench.sh   (QTOPO_CALLS, default 12; QTOPO_LIMIT,
# seconds before a run is killed, default 90; QTOPO_BUILDDIR, default the tree)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
# shellcheck source=../test/cluster/common.sh
. "$TOP/test/cluster/common.sh"
BUILD=${QTOPO_BUILDDIR:-$TOP}
CALLS=${QTOPO_CALLS:-12}
LIMIT=${QTOPO_LIMIT:-90}
WORK=$(mktemp -d /tmp/qtopo-failover-bench.XXXXXX)
trap '"$TOP/test/cluster/cluster.sh" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
mpicc -O2 -o "$WORK/rail_loop" "$TOP/test/cluster/rail_loop.c"

declare -A ARGS=(
    [qtopo]="--rails rail0 --mca coll_qtopo_priority 40 --mca coll_qtopo_rails rail1,rail2 --mca coll_qtopo_transport ucx"
    [open-mpi]="--rails rail1,rail2 --mca coll_qtopo_priority 0"
)

scenario() {
    local name=$1 rc=0
    local -a args
    read -r -a args <<<"${ARGS[$name]}"
    qt_fail_links_during 2 rail2 "$WORK/$name.out" "$WORK/progress" --timeout "$LIMIT" \
        "${args[@]}" --mca mca_base_component_path "$BUILD/.libs:SYS_DEFAULT" -- \
        "$WORK/rail_loop" 4194304 "$CALLS" exact "$WORK/progress" || rc=$?
    echo "== $name (exit status $rc$( ((rc == 124)) && echo ": killed after ${LIMIT} s"))"
    grep -E "^call|summary|failed|TIMEOUT" "$WORK/$name.out" | cut -c1-200 || true
    if [[ -n $QT_NEXT_AT ]]; then
        awk -v d="$QT_DOWN_AT" -v a="$QT_NEXT_AT" 'BEGIN { printf "link down to the next completed call: %.2f s\n", a - d }'
    else
        echo "link down to the next completed call: none completed"
    fi
    grep -o "^call [0-9]*: [0-9.]* s" "$WORK/$name.out" | awk '{ t[$2 + 0] = $3 }
        END { for (i in t) { if (i < 3) { b += t[i]; nb++ } else if (i > 3) { a += t[i]; na++ } }
              if (nb) printf "mean call before: %.3f s", b / nb
              if (na) printf ", after: %.3f s", a / na
              print "" }'
}

"$TOP/test/cluster/cluster.sh" down >/dev/null 2>&1 || true
"$TOP/test/cluster/cluster.sh" up 4 3 500mbit | tail -n 1
scenario qtopo
scenario open-mpi
