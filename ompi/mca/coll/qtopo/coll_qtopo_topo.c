/*
 * Topology discovery for a qtopo communicator, lazily on its first handled call.
 *
 * Node membership comes from Open MPI's locality flags: a rank labels its node with
 * the lowest communicator rank that shares it, and the first call's agreement
 * (coll_qtopo_agree.c) gives every rank every label. With
 * coll_qtopo_node_size=K, every K consecutive ranks pretend to be a node instead
 * (tests and tuning on one host); with -K, ranks are dealt to ceil(size / K) pretended
 * nodes in turn, as mpirun --map-by node deals them to hosts. From the labels
 * coll_qtopo_nodes.c derives the node and rail groups and the flat algorithms' node order.
 *
 * qtopo creates no sub-communicators: its groups are rank tables over the parent
 * communicator's PML (coll_qtopo_xport_pml.c), so nothing can recurse into qtopo and
 * nothing needs freeing but memory.
 */

#include "ompi_config.h"

#include <stdlib.h>

#include "coll_qtopo.h"
#include "coll_qtopo_locality.h"

#include "ompi/proc/proc.h"
#include "opal/mca/hwloc/hwloc-internal.h"

/* The lowest rank of comm on this process's node. */
static int lowest_local_rank(struct ompi_communicator_t *comm)
{
    int r, me = ompi_comm_rank(comm);

    for (r = 0; r < me; ++r) {
        ompi_proc_t *proc = ompi_comm_peer_lookup(comm, r);
        /* a sentinel (not yet instantiated) proc is remote */
        if (!ompi_proc_is_sentinel(proc) && OPAL_PROC_ON_LOCAL_NODE(proc->super.proc_flags)) {
            return r;
        }
    }
    return me;
}

int mca_coll_qtopo_topo_label(struct ompi_communicator_t *comm, int node_size)
{
    int rank = ompi_comm_rank(comm), size = ompi_comm_size(comm);

    if (0 < node_size) {
        return rank / node_size;
    }
    if (0 > node_size) {
        /* -K: ceil(size / K) nodes, ranks dealt to them in turn */
        return rank % ((size - node_size - 1) / -node_size);
    }
    return lowest_local_rank(comm);
}

/* coll_qtopo_verbose >= 1: this rank's place in the node structure, its NUMA node,
 * the NICs hwloc and the OS show it, and the one its local rank would use. */
static void print_topology(const mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm)
{
    qtopo_locality_t loc;
    char line[1024], nics[1024];
    int nic;

    if (1 > mca_coll_qtopo_component.verbose) {
        return;
    }
    qtopo_nodes_format(&m->nodes, line, sizeof(line));
    QTOPO_VERBOSE(1, "topology of %s, rank %d%s: %s", comm->c_name, ompi_comm_rank(comm),
                  0 < mca_coll_qtopo_component.node_size ? " (coll_qtopo_node_size)" : "", line);
    (void) qtopo_locality_probe(&loc, NULL);
    qtopo_locality_format(&loc, nics, sizeof(nics));
    nic = qtopo_locality_pick_nic(&loc, m->nodes.local_rank, m->nodes.local_size);
    QTOPO_VERBOSE(1, "locality of %s rank %d: %s; rail-aligned NIC for local rank %d: %s",
                  comm->c_name, ompi_comm_rank(comm), nics, m->nodes.local_rank,
                  0 <= nic ? loc.nics[nic].name : "none");
}

int mca_coll_qtopo_topo_build(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                              const int *labels)
{
    if (0 != qtopo_nodes_build(labels, ompi_comm_size(comm), ompi_comm_rank(comm), &m->nodes)) {
        return -1;
    }
    m->topo_ready = true;
    print_topology(m, comm);
    return 0;
}

bool mca_coll_qtopo_topo_hier_ok(const mca_coll_qtopo_module_t *m)
{
    return m->topo_ready && 1 < m->nodes.nnodes && 1 < m->nodes.max_local;
}
