#!/usr/bin/env bash
# check_intree.sh: proves that ompi/mca/coll/qtopo builds as an in-tree Open MPI
# component, in the source tree of the Open MPI release series it runs against.
#
# It checks that the in-tree Makefile.am lists exactly the component's .c and .h files.
# It then fetches the Debian source of the installed Open MPI with apt-get source,
# copies the component into that tree and runs autogen.pl, configure and make. Last, it
# rebuilds the component on its own (V=1) and loads the resulting mca_coll_qtopo.so into
# the tree's ompi_info with every symbol bound at load time.
#
# Two series are known (series_settings): 4.1, Debian 12's 4.1.4 on the host, and 5.0,
# Debian 13's 5.0.7 in the chroot of test/ompi5/env.sh. With --ompi5 the script checks
# the file list here, copies the current tree into that chroot and runs itself there.
#
# Slow when cold (tens of minutes on 2 cores), so it is not part of run-tests.sh. Needs
# root the first time, to add a deb-src entry and install the build tools (and always
# with --ompi5, for the chroot).
#
# Usage: test/intree/check_intree.sh [--ompi5]   (QTOPO_INTREE_CACHE=DIR moves the cache
# from /var/cache/qtopo-intree, inside the chroot with --ompi5; QTOPO_INTREE_JOBS=N sets
# make -j)
set -euo pipefail

# qtopo's exact algorithms are what these tests check: exact calls run in qtopo
# (coll_qtopo_exact always) unless a case asks for auto on its command line.
export OMPI_MCA_coll_qtopo_exact=${OMPI_MCA_coll_qtopo_exact:-always}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
COMPONENT=ompi/mca/coll/qtopo
CACHE=${QTOPO_INTREE_CACHE:-/var/cache/qtopo-intree}
JOBS=${QTOPO_INTREE_JOBS:-$(nproc)}
OMPI_PACKAGE=libopenmpi-dev
PMIX_DIR=/usr/lib/x86_64-linux-gnu/pmix2
BUILD_TOOLS=(dpkg-dev autoconf automake libtool flex perl make gcc
             libhwloc-dev libevent-dev libpmix-dev)
# Where --ompi5 puts the copy of the tree inside the chroot.
CHROOT_TREE=/opt/qtopo/intree-src

# Components configure leaves out in either series: MPI-IO, one-sided, MTLs, message
# logging (whole frameworks; their base code is still built).
NO_BUILD_FRAMEWORKS=io,fs,fbtl,fcoll,sharedfp,osc,mtl,vprotocol
# The distribution's hwloc and libevent, as its Open MPI uses them.
EXTERNAL_OPTIONS=(--with-hwloc=external --with-libevent=external)

# Set by series_settings for the installed Open MPI.
AUTOGEN_OPTIONS=()
CONFIGURE_OPTIONS=()
TREE_PARTS=

# What differs between the release series: autogen.pl's options, configure's options
# (no Fortran, OSHMEM or Java, none of the network libraries and transports it would
# probe for) and what the tree builds.
series_settings() {
    case $1 in
    4.1.*)
        AUTOGEN_OPTIONS=(--force --no-oshmem)
        CONFIGURE_OPTIONS=(
            --disable-mpi-fortran --disable-mpi-cxx --disable-oshmem --disable-mpi-java
            --without-ucx --without-verbs --without-ofi --without-psm --without-psm2
            --without-cuda --without-hcoll --without-ucc
            "${EXTERNAL_OPTIONS[@]}" "--with-pmix=$PMIX_DIR"
            "--enable-mca-no-build=$NO_BUILD_FRAMEWORKS,btl-openib,btl-usnic,btl-uct,btl-ofi,\
btl-smcuda"
        )
        TREE_PARTS="opal, orte, ompi with coll/qtopo"
        ;;
    5.0.*)
        # hwloc, libevent and PMIx are external, and PRRTE (mpirun) is not needed: the
        # bundled copies are not prepared. The C++ bindings, openib and PSM are gone.
        # 5.0 links every component into libmpi unless told otherwise; qtopo is asked
        # for as a DSO, the form it ships in. PMIx through pkg-config: Open MPI 5.0 also
        # includes PMIx's internal headers, from $PMIX_DIR/include/pmix.
        AUTOGEN_OPTIONS=(--force --no-3rdparty "hwloc,libevent,pmix,prrte")
        CONFIGURE_OPTIONS=(
            --disable-mpi-fortran --disable-oshmem --disable-mpi-java --with-prrte=no
            --enable-mca-dso=coll-qtopo
            --without-ucx --without-ofi --without-psm2 --without-cuda --without-rocm
            --without-hcoll --without-ucc
            "${EXTERNAL_OPTIONS[@]}" --with-pmix=external
            "--enable-mca-no-build=$NO_BUILD_FRAMEWORKS,part,btl-usnic,btl-uct,btl-ofi,\
btl-smcuda,btl-portals4"
        )
        TREE_PARTS="opal, ompi with coll/qtopo; no PRRTE"
        ;;
    *)
        fail "no in-tree settings for Open MPI $1 (known series: 4.1, 5.0)"
        ;;
    esac
}

LOGS="$CACHE/logs"
VERIFIED=()

say() { printf '[check_intree] %s\n' "$*"; }

fail() {
    say "FAILED: $*" >&2
    exit 1
}

# Runs "$@" with its output in $LOGS/NAME.log; on failure shows the log's tail.
run_logged() {
    local name=$1
    shift
    local started=$SECONDS
    say "$name ..."
    if ! "$@" >"$LOGS/$name.log" 2>&1; then
        tail -n 40 "$LOGS/$name.log" >&2
        fail "$name (full log: $LOGS/$name.log)"
    fi
    say "$name done in $((SECONDS - started)) s"
}

verified() {
    VERIFIED+=("$*")
    say "ok: $*"
}

# The component's files as a commit would hold them (no build outputs). The copy --ompi5
# makes holds only those and is no git checkout (nor has the chroot git).
component_files() {
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" ls-files --cached --others --exclude-standard -- "$COMPONENT" |
            sed "s|^$COMPONENT/||"
    else
        (cd "$REPO/$COMPONENT" && find . -type f | sed 's|^\./||')
    fi | sort
}

# The file names in the `sources = \ ...` list of the in-tree Makefile.am.
listed_sources() {
    sed -n '/^sources[[:space:]]*=/,/[^\\]$/p' "$REPO/$COMPONENT/Makefile.am" |
        sed 's/^sources[[:space:]]*=//; s/\\$//' | tr -s ' \t' '\n' | sed '/^$/d' | sort
}

check_sources_listed() {
    local on_disk in_list
    on_disk=$(component_files | grep -E '\.[ch]$')
    in_list=$(listed_sources)
    if [[ "$on_disk" != "$in_list" ]]; then
        say "files only in $COMPONENT (<) or only in its Makefile.am sources (>):" >&2
        diff <(printf '%s\n' "$on_disk") <(printf '%s\n' "$in_list") | grep '^[<>]' >&2
        fail "$COMPONENT/Makefile.am 'sources' does not match the component's .c/.h files"
    fi
    verified "Makefile.am 'sources' lists exactly the $(wc -l <<<"$on_disk") .c/.h files of $COMPONENT"
}

install_build_tools() {
    local missing=() pkg
    for pkg in "${BUILD_TOOLS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return
    ((EUID == 0)) || fail "not root, cannot install ${missing[*]}"
    run_logged install-build-tools apt-get install -y --no-install-recommends "${missing[@]}"
}

# The sources entry ("FILE:N") apt installed Open MPI from: the Nth stanza of a deb822
# .sources file or line N of a one-line .list file.
ompi_sources_entry() {
    local description
    description=$(apt-cache policy "$OMPI_PACKAGE" |
        awk '/^ \*\*\*/ {mine = 1; next} /^     [0-9]/ {mine = 0}
             mine && $2 ~ /^https?:/ {print $2, $3, $4, $5; exit}')
    [[ -n "$description" ]] || fail "cannot tell which mirror $OMPI_PACKAGE came from"
    # shellcheck disable=SC2016 # $(SOURCESENTRY) is apt's placeholder, not a shell one
    apt-get indextargets --format '$(SOURCESENTRY)' "Description: $description" | head -n 1
}

# Unless apt already knows the source package, copies the entry the installed Open MPI
# came from (mirror, suites, keyring) as a deb-src entry.
enable_deb_src() {
    local version=$1 entry file n added
    apt-cache showsrc openmpi 2>/dev/null | grep -qx "Version: $version" && return
    ((EUID == 0)) || fail "not root, cannot add a deb-src entry for openmpi"
    entry=$(ompi_sources_entry)
    file=${entry%:*}
    n=${entry##*:}
    [[ -f "$file" && "$n" =~ ^[0-9]+$ ]] || fail "unexpected apt sources entry '$entry'"
    if [[ "$file" == *.sources ]]; then
        added=/etc/apt/sources.list.d/qtopo-intree-src.sources
        awk -v n="$n" 'BEGIN {RS = ""} /(^|\n)[^#]/ {if (++k == n) print}' "$file" |
            sed 's/^Types:.*/Types: deb-src/' >"$added"
    else
        added=/etc/apt/sources.list.d/qtopo-intree-src.list
        sed -n "${n}s/^deb\([[:space:]]\)/deb-src\1/p" "$file" >"$added"
    fi
    say "added $added, the deb-src twin of $entry"
    if ! apt-get update >"$LOGS/apt-get-update.log" 2>&1; then
        rm -f "$added"
        cat "$LOGS/apt-get-update.log" >&2
        fail "apt-get update with $added (removed again)"
    fi
}

# Leaves the patched Debian source of Open MPI $1 in $CACHE/src/openmpi-UPSTREAM.
fetch_ompi_source() {
    local version=$1 tree=$2
    [[ -f "$tree/autogen.pl" ]] && return
    enable_deb_src "$version"
    rm -rf "$CACHE/src"
    mkdir -p "$CACHE/src"
    (cd "$CACHE/src" && run_logged apt-get-source apt-get source "openmpi=$version")
    [[ -f "$tree/autogen.pl" ]] || fail "apt-get source did not produce $tree"
}

# Copies only changed files, so that make (whose automake and autoconf rebuild rules
# watch Makefile.am and configure.m4) redoes no more than needed.
copy_component() {
    local dest=$1/$COMPONENT file
    mkdir -p "$dest"
    while read -r file; do
        cmp -s "$REPO/$COMPONENT/$file" "$dest/$file" || cp "$REPO/$COMPONENT/$file" "$dest/$file"
    done < <(component_files)
}

# What configure reads that can change: configure.m4 and the options given to "$1"
# (configure or autogen). (A changed Makefile.am is picked up by the tree's own
# automake rebuild rules.)
tree_stamp() {
    local -n options=$1
    printf '%s\n' "${options[@]}" |
        cat - "$REPO/$COMPONENT/configure.m4" | sha256sum | cut -d' ' -f1
}

# True if the stamp file $1 holds $2.
stamp_matches() {
    [[ -f "$1" && "$(<"$1")" == "$2" ]]
}

# A fresh copy of the source with the component in it, autogen'ed.
autogen_ompi_tree() {
    local pristine=$1 build=$2
    rm -rf "$build"
    mkdir -p "$(dirname "$build")"
    cp -a "$pristine" "$build"
    copy_component "$build"
    (cd "$build" && run_logged autogen ./autogen.pl "${AUTOGEN_OPTIONS[@]}")
    grep -q 'ompi/mca/coll/qtopo/Makefile' "$build/configure" ||
        fail "autogen.pl did not pick up $COMPONENT"
    verified "autogen.pl added coll/qtopo to Open MPI's configure"
}

configure_ompi_tree() {
    local build=$1
    (cd "$build" && run_logged configure ./configure --prefix="$CACHE/prefix" \
        "${CONFIGURE_OPTIONS[@]}")
    grep -qF 'S["MCA_BUILD_ompi_coll_qtopo_DSO_TRUE"]=""' "$build/config.status" ||
        fail "configure did not select coll/qtopo as a DSO"
    verified "configure selected coll/qtopo, built as a DSO"
}

# Reuses the configured tree if configure.m4 and the options are unchanged (then only
# the component's files are copied in again); configures the autogen'ed tree again (and
# cleans it) if only configure's options changed; else starts from a fresh copy. Then
# runs make at the top: a full build the first time, an incremental one (mostly
# coll/qtopo) after that.
build_ompi_tree() {
    local pristine=$1 build=$2 stamp autogen_stamp
    stamp=$(tree_stamp CONFIGURE_OPTIONS)
    autogen_stamp=$(tree_stamp AUTOGEN_OPTIONS)
    if stamp_matches "$build/.qtopo-stamp" "$stamp"; then
        say "reusing the configured tree $build (configure.m4 and options unchanged)"
        copy_component "$build"
    else
        if stamp_matches "$build/.qtopo-autogen-stamp" "$autogen_stamp"; then
            say "configure's options changed: configuring $build again"
            copy_component "$build"
            configure_ompi_tree "$build"
            run_logged make-clean make -C "$build" clean
        else
            autogen_ompi_tree "$pristine" "$build"
            echo "$autogen_stamp" >"$build/.qtopo-autogen-stamp"
            configure_ompi_tree "$build"
        fi
        echo "$stamp" >"$build/.qtopo-stamp"
    fi
    run_logged make-ompi make -C "$build" -j "$JOBS"
    verified "Open MPI ($TREE_PARTS) built with make -j $JOBS"
}

# Rebuilds only coll/qtopo, verbosely, so its compile lines and warnings are on record.
build_component() {
    local build=$1 log warnings
    log=$LOGS/make-qtopo.log
    make -C "$build/$COMPONENT" clean >/dev/null
    run_logged make-qtopo make -C "$build/$COMPONENT" V=1
    grep -q -- '-ffp-contract=off' "$log" || fail "-ffp-contract=off not on the compile lines"
    grep -qF -- "-DQTOPO_HELP_DIR='\"$CACHE/prefix/share/openmpi\"'" "$log" ||
        fail "QTOPO_HELP_DIR is not Open MPI's data directory"
    warnings=$(grep -c 'warning:' "$log" || true)
    grep 'warning:' "$log" >&2 || true
    verified "coll/qtopo compiled with the tree's flags, -ffp-contract=off," \
        "QTOPO_HELP_DIR=\$(ompidatadir); $warnings compiler warnings (see $log)"
}

check_dso() {
    local build=$1 dso ompi_info params
    dso=$build/$COMPONENT/.libs/mca_coll_qtopo.so
    [[ -f "$dso" ]] || fail "$dso was not built"
    nm -D --defined-only "$dso" | grep -qw mca_coll_qtopo_component ||
        fail "$dso does not export mca_coll_qtopo_component"
    readelf -d "$dso" | grep -q 'NEEDED.*libmpi\.so' || fail "$dso is not linked to libmpi"
    verified "mca_coll_qtopo.so linked against the tree's libmpi, exports mca_coll_qtopo_component"
    ompi_info=$build/ompi/tools/ompi_info/ompi_info
    params=$(LD_BIND_NOW=1 OMPI_MCA_mca_base_component_path="$(dirname "$dso")" \
        "$ompi_info" --param coll qtopo --level 9 --parsable 2>&1) ||
        fail "ompi_info failed: $params"
    grep -q '^mca:coll:qtopo:param:coll_qtopo_priority:' <<<"$params" || {
        printf '%s\n' "$params" >&2
        fail "the tree's ompi_info did not load mca_coll_qtopo.so"
    }
    verified "the tree's ompi_info loads mca_coll_qtopo.so with all symbols bound" \
        "(LD_BIND_NOW=1) and lists its $(grep -c ':param:[^:]*:value:' <<<"$params") parameters"
}

# Runs this script in the Open MPI 5.0 chroot on a copy of the current tree.
run_in_ompi5_chroot() {
    local env_sh=$REPO/test/ompi5/env.sh
    "$env_sh" copy "$CHROOT_TREE"
    exec "$env_sh" run /usr/bin/env QTOPO_INTREE_JOBS="$JOBS" \
        ${QTOPO_INTREE_CACHE:+QTOPO_INTREE_CACHE="$QTOPO_INTREE_CACHE"} \
        "$CHROOT_TREE/test/intree/check_intree.sh"
}

main() {
    local started=$SECONDS version upstream pristine build
    check_sources_listed
    case ${1:-} in
    --ompi5) run_in_ompi5_chroot ;;
    '') ;;
    *) fail "usage: $0 [--ompi5]" ;;
    esac
    mkdir -p "$LOGS"
    install_build_tools
    version=$(dpkg-query -W -f='${source:Version}' "$OMPI_PACKAGE")
    upstream=${version%-*}
    series_settings "$upstream"
    pristine=$CACHE/src/openmpi-$upstream
    build=$CACHE/build/openmpi-$upstream
    fetch_ompi_source "$version" "$pristine"
    verified "Debian source of Open MPI $version (the installed $OMPI_PACKAGE) in $pristine"
    build_ompi_tree "$pristine" "$build"
    build_component "$build"
    check_dso "$build"
    say "PASSED in $((SECONDS - started)) s. Verified:"
    printf '  - %s\n' "${VERIFIED[@]}"
}

main "$@"
