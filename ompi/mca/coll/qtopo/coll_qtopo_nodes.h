/*
 * The node structure of a communicator as qtopo's algorithms need it, derived from a
 * node label per rank (any int; equal labels = same node): nodes in order of their
 * lowest rank, this rank's node and local rank, the ranks of its node, and its rail
 * group (the ranks with the same local rank on the other nodes, one per node), and the
 * node order of all ranks, which the flat algorithms run in.
 * Pure C, no Open MPI types: coll_qtopo_topo.c obtains the labels.
 */

#ifndef COLL_QTOPO_NODES_H
#define COLL_QTOPO_NODES_H

#include <stddef.h>

typedef struct qtopo_nodes {
    int size, rank;            /* the communicator */
    int nnodes, node;          /* node count; this rank's node (0 = the node of rank 0) */
    int local_rank, local_size;
    int min_local, max_local;  /* ranks on the smallest and on the largest node */
    int *node_ranks;           /* local_size ranks of this node, ascending */
    int rail_size;             /* nodes that have a rank with this local rank */
    int *rail_ranks;           /* those ranks, by node; rail_ranks[rail_index] == rank */
    int rail_index;
    int *order;                /* all ranks by node, then local rank: neighbours in this
                                * order share a node wherever they can (flat ring) */
    int order_index;           /* order[order_index] == rank */
} qtopo_nodes_t;

/* Fills *t from labels[0..size); 0 on success, -1 when out of memory. */
int qtopo_nodes_build(const int *labels, int size, int rank, qtopo_nodes_t *t);
void qtopo_nodes_free(qtopo_nodes_t *t);

/* Every node has the same number of ranks (split-rail needs it). */
int qtopo_nodes_uniform(const qtopo_nodes_t *t);

/* One line for verbose output, e.g. "4 nodes x 2 ranks; node 1 = ranks 2,3; rail 0 =
 * ranks 0,2,4,6 (local rank 0 of 2)", and "; flat order 0,2,4,6,1,3,5,7" where the
 * node order is not the rank order. */
void qtopo_nodes_format(const qtopo_nodes_t *t, char *buf, size_t len);

#endif /* COLL_QTOPO_NODES_H */
