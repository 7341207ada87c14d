# -*- shell-script -*-
#
# Copyright (c) 2025      The qtopo developers.  All rights reserved.
# $COPYRIGHT$
#
# Additional copyrights may follow
#
# $HEADER$
#

# MCA_ompi_coll_qtopo_CONFIG([action-if-can-compile],
#                            [action-if-cant-compile])
# ------------------------------------------------
# qtopo needs nothing beyond Open MPI itself (hwloc comes from Open MPI's own hwloc
# framework), so it can always be built.
AC_DEFUN([MCA_ompi_coll_qtopo_CONFIG],[
    AC_CONFIG_FILES([ompi/mca/coll/qtopo/Makefile])
    $1
])dnl
