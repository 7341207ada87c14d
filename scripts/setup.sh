#!/bin/bash
# Installs what qtopo needs on Debian 12 (as root), then builds it and installs the
# component into Open MPI's component directory. Used by demo.sh and run-tests.sh.
# Environment: QTOPO_CONFIGURE_FLAGS (extra configure flags), QTOPO_SKIP_APT=1.
set -euo pipefail

cd "$(dirname "$0")/.."

QTOPO_PACKAGES="libopenmpi-dev openmpi-bin autoconf automake libtool pkg-config \
libhwloc-dev make gcc clang libclang-rt-14-dev iproute2 util-linux iperf3 valgrind debootstrap \
curl zlib1g-dev libopenblas-dev dataset-fashion-mnist libucx-dev ucx-utils python3-matplotlib"

install_packages() {
    local missing=() p
    for p in $QTOPO_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages ${missing[*]}: run as root or apt-get install them" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build_and_install() {
    [ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh >/dev/null 2>&1
    if [ ! -f Makefile ] || [ configure -nt config.status ]; then
        # shellcheck disable=SC2086
        ./configure -q ${QTOPO_CONFIGURE_FLAGS:-}
    fi
    make -s -j2
    make -s install >/dev/null
}

[ "${QTOPO_SKIP_APT:-0}" = 1 ] || install_packages
build_and_install
echo "setup: mca_coll_qtopo.so installed in $(ompi_info --path pkglibdir --parsable |
    sed -n 's/^path:pkglibdir://p')"
