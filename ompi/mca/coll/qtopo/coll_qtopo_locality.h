/*
 * The calling process's hardware locality: the NUMA node it is bound to and the network
 * interfaces it can use, nearest first, and the rail-aligned choice of one of them per
 * local rank. Plain C on top of hwloc, /sys/class/net and getifaddrs(); no Open MPI types.
 *
 * hwloc (its own topology, loaded once per process; Open MPI's opal_hwloc_topology is
 * never touched) gives the NUMA locality of PCI NICs. Interfaces hwloc does not list
 * (veth, bridges, tunnels) are taken from getifaddrs() with unknown locality, which
 * counts as near. Only interfaces that are up are listed, so the list follows the
 * network namespace of the caller.
 */

#ifndef COLL_QTOPO_LOCALITY_H
#define COLL_QTOPO_LOCALITY_H

#include <stddef.h>

#define QTOPO_MAX_NICS 16

typedef struct qtopo_nic {
    char name[32];   /* OS interface name, e.g. "eth0", "rail1", "ib0"; or "mlx5_0" */
    int numa;        /* NUMA node (OS index) the NIC hangs off, -1 if unknown */
    long speed_mbps; /* link speed in Mbit/s, -1 if unknown */
    int near;        /* 1 if on this rank's NUMA node (or locality unknown) */
} qtopo_nic_t;

typedef struct qtopo_locality {
    int numa;                         /* NUMA node of the process's cpuset, -1 if unknown
                                       * or several */
    int nnics;                        /* entries used in nics[] */
    qtopo_nic_t nics[QTOPO_MAX_NICS]; /* near ones first, then by name (natural order) */
} qtopo_locality_t;

/*
 * Fills *loc for the calling process. include: comma list of interface names to keep
 * (spaces around names are ignored); NULL or "" keeps every interface that is up and not
 * a loopback. A named interface is kept if it is up, loopback or not; OpenFabrics
 * devices (e.g. "mlx5_0") are listed only when named. Returns 0, or -1 with
 * loc->nnics = 0 when no interface matched (loc->numa is filled in either case).
 * Thread safe.
 */
int qtopo_locality_probe(qtopo_locality_t *loc, const char *include);

/*
 * One line for verbose output, always NUL-terminated and cut to len bytes, e.g.
 * "numa 0; nics rail0 (numa 0, 500 Mb/s), rail1 (?), eth2 (numa 1, far)".
 */
void qtopo_locality_format(const qtopo_locality_t *loc, char *buf, size_t len);

/*
 * The NIC for local rank local_rank of local_size on this node, rail-aligned: local
 * rank i takes the (i mod n)-th of the n near NICs. When no NIC is near, the same
 * round robin runs over all NICs. Returns an index into loc->nics, or -1 when there is
 * no NIC or the ranks are out of range.
 */
int qtopo_locality_pick_nic(const qtopo_locality_t *loc, int local_rank, int local_size);

#endif
