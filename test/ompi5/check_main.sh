#!/bin/bash
# check_main.sh: compile-checks qtopo's Open MPI side against the headers of an Open MPI
# main source tree (coll API 3.0.0), inside the 5.0 chroot of env.sh.
#
#   test/ompi5/check_main.sh OMPI_MAIN_SRC   (a git checkout of open-mpi/ompi main;
#                                             submodules are not needed)
#
# A main tree cannot be configured here (its submodules are missing), so this is a
# syntax and type check, not a build: main's opal/ and ompi/ headers are laid over the
# chroot's configured Open MPI 5.0.7 headers (opal_config.h, mpi.h and the other
# generated ones come from 5.0.7), and every .c file of the component is compiled with
# -fsyntax-only (gcc 14, where incompatible pointer types are errors).
# A static assertion checks that coll_qtopo_compat.h took its 3.0.0 branch.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=${1:?usage: $0 OMPI_MAIN_SRC}
SRC=$(cd "$SRC" && pwd)
WORK=$(mktemp -d /tmp/qtopo-main-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

grep -q MCA_COLL_BASE_VERSION_3_0_0 "$SRC/ompi/mca/coll/coll.h" ||
    { echo "$SRC/ompi/mca/coll/coll.h is not coll API 3.0.0" >&2; exit 1; }
"$REPO/test/ompi5/env.sh" run /bin/bash -c \
    'cp -a /usr/lib/x86_64-linux-gnu/openmpi/include "$1/include"' _ "$WORK"
(cd "$SRC" && find opal ompi -name '*.h' -print0 | tar --null -T - -cf -) |
    tar -C "$WORK/include/openmpi" -xf -
cp -r "$REPO/ompi/mca/coll/qtopo" "$WORK/qtopo"
cat >"$WORK/qtopo/api_check.c" <<'EOC'
#include "coll_qtopo.h"
_Static_assert(1 == QTOPO_COLL_SELF_INSTALL, "coll_qtopo_compat.h did not take 3.0.0");
_Static_assert(sizeof(qtopo_coll_count_t) == sizeof(size_t), "counts are not size_t");
EOC
"$REPO/test/ompi5/env.sh" run /bin/bash -c '
    cd "$1/qtopo"
    failed=0
    for f in api_check.c coll_qtopo_*.c; do
        if gcc -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror -fsyntax-only \
               -I"$1/include" -I"$1/include/openmpi" -I/usr/lib/x86_64-linux-gnu/pmix2/include \
               -DQTOPO_HELP_DIR="\"/\"" "$f"; then
            echo "PASS: $f against main coll API 3.0.0"
        else
            echo "FAIL: $f"
            failed=1
        fi
    done
    exit $failed' _ "$WORK"
