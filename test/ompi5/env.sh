#!/bin/bash
# env.sh: an Open MPI 5.0 environment for qtopo, a Debian 13 (trixie) chroot.
#
#   test/ompi5/env.sh setup        create or update the chroot, build and install qtopo
#   test/ompi5/env.sh setup-ddp    also install PyTorch and Fashion-MNIST (examples/ddp)
#   test/ompi5/env.sh run CMD...   run CMD as root inside it
#   test/ompi5/env.sh copy DIR     copy the current tree to DIR inside it (what setup does
#                                  for /opt/qtopo/src; test/intree/check_intree.sh --ompi5)
#
# The chroot is cached outside the repository (QTOPO_OMPI5_ROOT, default
# /var/cache/qtopo/trixie) so that fresh clones reuse it; each stage leaves a stamp file
# and is skipped the next time. It holds Debian's Open MPI 5.0.7, hwloc and UCX, plus the
# headers Debian's libopenmpi-dev leaves out, taken from the 5.0.7 source package (see
# add_missing_headers, which also undoes a Debian PMIx setting that hides every external
# Open MPI component from MPI processes). qtopo is built from a copy of the current tree
# (tracked and untracked, not ignored files) in /opt/qtopo/src and installed into the
# chroot's Open MPI.
#
# `run` enters a private mount namespace (unshare -m) with /proc, /sys, /dev, /dev/shm and
# the host's /tmp bound in, so the host sees no mounts afterwards. Needs root, debootstrap
# and the Debian mirror (taken from /etc/apt/sources.list.d/debian.sources; override with
# QTOPO_DEBIAN_MIRROR).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROOT=${QTOPO_OMPI5_ROOT:-/var/cache/qtopo/trixie}
SUITE=trixie
OMPI_VERSION=5.0.7
JOBS=${QTOPO_OMPI5_JOBS:-2}
BASE_PACKAGES="libopenmpi-dev,openmpi-bin,libhwloc-dev,libucx-dev,libpmix-dev,build-essential,\
autoconf,automake,libtool,pkg-config,dpkg-dev,ca-certificates"
DDP_PACKAGES="python3-torch dataset-fashion-mnist python3-numpy"

say() { printf '[ompi5] %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

mirror() {
    if [ -n "${QTOPO_DEBIAN_MIRROR:-}" ]; then
        echo "$QTOPO_DEBIAN_MIRROR"
        return
    fi
    # the first URIs line whose suites are not a security archive
    awk '/^URIs:/ { uri = $2 } /^Suites:/ && uri !~ /security/ { print uri; exit }' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null
}

# Runs "$@" inside the chroot in a private mount namespace, with a clean environment in
# which mpirun may run as root (Open MPI 5.0's mpirun honours the same two variables).
in_root() {
    unshare -m --propagation private /bin/bash -c '
        set -e
        root=$1
        shift
        for d in /proc /sys /dev /dev/shm /tmp; do
            mkdir -p "$root$d"
            mount --rbind "$d" "$root$d"
        done
        exec chroot "$root" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            LANG=C.UTF-8 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$@"
    ' in_root "$ROOT" "$@"
}

stamp() { [ -f "$ROOT/.qtopo-$1" ]; }
stamp_set() { date -u +%FT%TZ >"$ROOT/.qtopo-$1"; }

# Stage 1: debootstrap with Open MPI and the build tools.
make_base() {
    local m tmp="$ROOT.partial"
    stamp base && return 0
    command -v debootstrap >/dev/null ||
        die "debootstrap is not installed (apt-get install debootstrap)"
    m=$(mirror)
    [ -n "$m" ] || die "no Debian mirror found; set QTOPO_DEBIAN_MIRROR"
    say "debootstrap $SUITE from $m into $ROOT (a few minutes)"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$ROOT")"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp" "$m" \
        >"$(dirname "$ROOT")/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $(dirname "$ROOT")/debootstrap.log"
    printf 'deb %s %s main\ndeb-src %s %s main\n' "$m" "$SUITE" "$m" "$SUITE" \
        >"$tmp/etc/apt/sources.list"
    rm -rf "$ROOT"
    mv "$tmp" "$ROOT"
    stamp_set base
}

# Stage 2: the headers libopenmpi-dev does not install. Open MPI 5.0.7's installed
# opal_config.h and opal/mca/threads/*.h include opal/mca/threads/pthreads/*.h, and
# other internal headers include more files that are only in the source tree. Every
# header of the source package's opal/ and ompi/ trees that the package lacks is copied
# into Open MPI's include directory in the chroot (the generated ones, such as
# opal_config.h, are installed and are left alone).
add_missing_headers() {
    stamp headers && return 0
    say "adding the headers libopenmpi-dev leaves out (apt-get source openmpi)"
    in_root /bin/bash -euc '
        apt-get update -qq
        v=$(dpkg-query -W -f="\${Version}" libopenmpi-dev)
        case "$v" in
        '"$OMPI_VERSION"'*) ;;
        *) echo "libopenmpi-dev is $v, expected '"$OMPI_VERSION"'" >&2; exit 1 ;;
        esac
        rm -rf /opt/ompi-src && mkdir -p /opt/ompi-src && cd /opt/ompi-src
        apt-get source -qq --download-only openmpi="$v" >/dev/null 2>&1
        tar xf openmpi_*.orig.tar.* --wildcards "*/opal/*.h" "*/ompi/*.h"
        src=$(ls -d */ | head -n 1)
        inc=""
        for d in $(mpicc --showme:incdirs); do
            [ -f "$d/ompi/mca/coll/coll.h" ] && inc=$d
        done
        [ -n "$inc" ] || { echo "no Open MPI headers found" >&2; exit 1; }
        n=0
        cd "$src"
        for h in $(find opal ompi -name "*.h"); do
            if [ ! -e "$inc/$h" ]; then
                mkdir -p "$inc/$(dirname "$h")"
                cp "$h" "$inc/$h"
                n=$((n + 1))
            fi
        done
        echo "$n headers added to $inc"
    '
    # Debian sets PMIx'"'"'s component path (its default anyway) as "mca_base_component_path"
    # in pmix-mca-params.conf; PRTE passes it on to the MPI processes as
    # OMPI_MCA_mca_base_component_path, over Open MPI'"'"'s own, so no Open MPI component
    # DSO (qtopo'"'"'s included) would ever be loaded, and mpirun -x cannot override it.
    sed -i 's|^mca_base_component_path *=|# (commented out by qtopo test/ompi5/env.sh) &|' \
        "$ROOT"/usr/lib/x86_64-linux-gnu/pmix2/share/pmix-mca-params.conf
    stamp_set headers
}

# Replaces DIR inside the chroot ($1, an absolute path) with a copy of the current tree:
# its tracked and untracked, not ignored files.
copy_tree() {
    local dest=$ROOT$1
    case $1 in
    /?*) ;;
    *) die "copy: '$1' is not an absolute path inside the chroot" ;;
    esac
    rm -rf "$dest"
    mkdir -p "$dest"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -)
    else
        # not a git checkout (a release tarball): everything but build outputs
        tar -C "$REPO" --exclude=.libs --exclude=.deps --exclude='*.o' --exclude='*.lo' \
            --exclude='*.la' -cf - .
    fi | tar -C "$dest" -xf -
}

# Stage 3: qtopo from the current tree, every time.
build_qtopo() {
    say "building qtopo from $REPO in $ROOT/opt/qtopo/src"
    copy_tree /opt/qtopo/src
    in_root /bin/bash -euc '
        cd /opt/qtopo/src
        ./autogen.sh >/dev/null 2>&1
        ./configure -q
        # no program built elsewhere may survive the copy (a tracked binary would be newer
        # than its sources and linked against another Open MPI)
        make -s clean
        make -s -j'"$JOBS"' all
        make -s -j'"$JOBS"' check TESTS= >/dev/null
        make -s install >/dev/null
        echo "qtopo installed: $(ls "$(ompi_info --path pkglibdir --parsable |
            sed -n "s/^path:pkglibdir://p")"/mca_coll_qtopo.so)"
    '
}

install_ddp() {
    stamp ddp && return 0
    say "installing $DDP_PACKAGES"
    in_root /bin/bash -euc "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $DDP_PACKAGES >/dev/null"
    stamp_set ddp
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount namespaces)"
case "${1:-}" in
setup)
    make_base
    add_missing_headers
    build_qtopo
    ;;
setup-ddp)
    make_base
    add_missing_headers
    install_ddp
    build_qtopo
    ;;
run)
    shift
    [ $# -gt 0 ] || die "usage: $0 run CMD..."
    stamp base || die "no chroot at $ROOT: run $0 setup first"
    in_root "$@"
    ;;
copy)
    [ $# -eq 2 ] || die "usage: $0 copy DIR"
    stamp base || die "no chroot at $ROOT: run $0 setup first"
    copy_tree "$2"
    ;;
*)
    echo "usage: $0 setup | setup-ddp | run CMD... | copy DIR" >&2
    exit 2
    ;;
esac
