#!/bin/bash
# demo.sh: builds and installs qtopo (with its Debian packages), then shows what it does.
# As root, on the emulated cluster (4 nodes x 2 ranks, 2 rails of 500 Mbit/s, network
# namespaces; examples/demo_cluster.sh): Open MPI's default and ring allreduce against
# qtopo lossless, 8-bit and 4-bit at 1, 16 and 64 MiB, then the test bed is taken down.
# Where that cannot run (no root, no namespaces), 4 ranks on this host, and why.
set -euo pipefail

cd "$(dirname "$0")"
scripts/setup.sh
make -s examples/qtopo_bench
if why=$(test/cluster/check_env.sh); then
    exec flock /tmp/qtopo-testbed.lock examples/demo_cluster.sh
fi
np=${QTOPO_DEMO_NP:-4}
echo
echo "== ${why#SKIP: }: no emulated cluster, so $np ranks on this host =="
echo "== MPI_Allreduce float sum on $np ranks: qtopo (lossless) vs Open MPI's default =="
mpirun --allow-run-as-root --oversubscribe -np "$np" --mca btl self,vader,tcp \
    --mca mpi_yield_when_idle 1 --mca coll_qtopo_priority 40 \
    examples/qtopo_bench "$@"
