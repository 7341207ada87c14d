#!/bin/sh
# rank_env.sh RANK NAME=VALUE PROGRAM [ARGS...]: runs PROGRAM with NAME=VALUE added to the
# environment of MPI_COMM_WORLD rank RANK only (e.g. OMPI_MCA_coll_qtopo_bits=8), as a
# job whose hosts or MPMD parts are configured differently would.
rank=$1
setting=$2
shift 2
if [ "${OMPI_COMM_WORLD_RANK:-}" = "$rank" ]; then
    export "${setting?}"
fi
exec "$@"
