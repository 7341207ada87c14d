#!/bin/bash
# test_ompi5.sh: the Open MPI 5.0 leg of `make check`. Creates (or reuses) the trixie
# chroot of env.sh, builds qtopo from the current tree in it, runs the unit tests and
# the MPI test suite (test/mpi/run_mpi_tests.sh) against Open MPI 5.0.7 there.
# Exit 77 (SKIP) with the reason when it cannot run here: not root, no debootstrap or
# unshare, the chroot is not cached and the Debian mirror is unreachable or the disk
# is short, or QTOPO_OMPI5=skip. Holds a lock on the chroot for the whole run.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${QTOPO_OMPI5_ROOT:-/var/cache/qtopo/trixie}

skip() {
    echo "SKIP: Open MPI 5.0 leg: $*"
    exit 77
}

# The mirror serves trixie's Release file (a TCP connect alone proves nothing behind a
# proxy).
mirror_reachable() {
    local m url
    m=${QTOPO_DEBIAN_MIRROR:-$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && uri !~ /security/ {
        print uri; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
    [ -n "$m" ] || return 1
    url=${m%/}/dists/trixie/Release
    if command -v curl >/dev/null; then
        curl -fsS --max-time 15 -o /dev/null "$url" 2>/dev/null
    else
        wget -q -T 15 -O /dev/null "$url" 2>/dev/null
    fi
}

[ "${QTOPO_OMPI5:-}" != skip ] || skip "QTOPO_OMPI5=skip"
[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, mount namespace)"
command -v unshare >/dev/null || skip "unshare (util-linux) not found"
if [ ! -f "$ROOT/.qtopo-base" ]; then
    command -v debootstrap >/dev/null ||
        skip "debootstrap not installed (apt-get install debootstrap)"
    mirror_reachable || skip "no chroot at $ROOT and the Debian mirror is unreachable"
    mkdir -p "$(dirname "$ROOT")"
    [ "$(df -Pk "$(dirname "$ROOT")" | awk 'NR == 2 { print $4 }')" -gt 3000000 ] ||
        skip "less than 3 GB free for the chroot in $(dirname "$ROOT")"
fi

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
start=$SECONDS
"$HERE/env.sh" setup || { echo "FAIL: env.sh setup"; exit 1; }
echo "setup: $((SECONDS - start)) s"
# The MPI suite's quick selection keeps the whole CI run within its time; QTOPO_OMPI5=full
# runs all of it.
quick=$([ "${QTOPO_OMPI5:-}" = full ] && echo 0 || echo 1)
# shellcheck disable=SC2016
"$HERE/env.sh" run /usr/bin/env QTOPO_MPI_QUICK="$quick" /bin/bash -c '
    cd /opt/qtopo/src
    failed=0
    for src in test/unit/test_*.c; do
        t=${src%.c}
        if $t >$t.log 2>&1; then
            echo "PASS: unit $t"
        else
            echo "FAIL: unit $t"
            tail -n 20 $t.log
            failed=1
        fi
    done
    ompi_info --version | head -n 1
    QTOPO_BUILDDIR=$PWD QTOPO_MPI_QUICK=$QTOPO_MPI_QUICK test/mpi/run_mpi_tests.sh || failed=1
    exit $failed'
rc=$?
echo "Open MPI 5.0 leg: $((SECONDS - start)) s, $([ $rc -eq 0 ] && echo passed || echo FAILED)"
exit $rc
