/*
 * Hierarchical (split-rail) allreduce, as UCC's split_rail and NCCL's rail-aligned
 * rings: with L ranks on each of M nodes,
 *
 *   1. reduce-scatter inside the node, in fp32 (shared memory is fast: no quantizing):
 *      local rank l ends with slice l of the node's sum;
 *   2. allreduce of slice l among the M ranks with local rank l, one per node (its rail
 *      group): the quantized scatter-reduce-allgather when quantizing (its two
 *      quantization points are the only ones), else the exact ring;
 *   3. allgather inside the node.
 *
 * Only phase 2 crosses the network, and the L rail groups run at once, each on its own
 * 1/L of the buffer: with one NIC per local rank every rail is busy. Each node sends
 * 2(M-1)/M of the buffer over the network in total, the wire-rate optimum. Phase 2
 * gives bit-identical slices on the rail group and phase 3 copies bytes, so every rank
 * ends with the same bits. Each phase is pipelined in segments; the phases themselves
 * run one after the other.
 *
 * Needs the same L on every node (coll_qtopo_nodes_uniform); callers take the flat
 * algorithms otherwise.
 */

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

static size_t rail_scratch_bytes(size_t slice, int nnodes, const qtopo_hier_args_t *a)
{
    return a->quantize ? qtopo_sra_scratch_bytes(slice, nnodes, &a->sra)
                       : qtopo_ring_scratch_bytes(slice, nnodes, a->seg_bytes);
}

size_t qtopo_hier_scratch_bytes(size_t count, int local_size, int nnodes,
                                const qtopo_hier_args_t *a)
{
    size_t small = count / (size_t) local_size;

    /* Slices differ by at most one element, and a smaller slice may need more scratch
     * (it can be cut into fewer, larger segments): take the larger of both. */
    return max_size(qtopo_ring_scratch_bytes(count, local_size, a->seg_bytes),
                    max_size(rail_scratch_bytes(small, nnodes, a),
                             rail_scratch_bytes(small + 1, nnodes, a)));
}

static int rail_allreduce(qtopo_xport_t *rail_x, float *slice, size_t off, size_t len,
                          const qtopo_hier_args_t *a, void *scratch, qtopo_sra_stats_t *stats)
{
    qtopo_sra_args_t sa = a->sra;

    if (!a->quantize) {
        stats->bytes_sent += qtopo_ring_bytes_sent(len, rail_x->size, rail_x->rank,
                                                   QTOPO_RING_BOTH);
        return qtopo_ring_allreduce(rail_x, slice, slice, len, a->seg_bytes, scratch);
    }
    /* stochastic-rounding keys and error-feedback residuals follow the whole buffer */
    sa.elem_base += off;
    sa.residual = NULL != sa.residual ? sa.residual + off : NULL;
    return qtopo_sra_allreduce(rail_x, slice, slice, len, &sa, scratch, stats);
}

int qtopo_hier_allreduce(qtopo_xport_t *node_x, qtopo_xport_t *rail_x, const float *sbuf,
                         float *rbuf, size_t count, const qtopo_hier_args_t *a, void *scratch,
                         qtopo_sra_stats_t *stats_p)
{
    size_t L = (size_t) node_x->size, l = (size_t) node_x->rank;
    size_t off = qtopo_part_off(count, L, l), len = qtopo_part_len(count, L, l);
    qtopo_sra_stats_t stats = {0, 0.0};
    int rc;

    rc = qtopo_ring_reduce_scatter(node_x, sbuf, rbuf, count, a->seg_bytes, scratch);
    if (QTOPO_XPORT_OK == rc) {
        rc = rail_allreduce(rail_x, rbuf + off, off, len, a, scratch, &stats);
    }
    if (QTOPO_XPORT_OK == rc) {
        rc = qtopo_ring_allgather(node_x, rbuf, count, a->seg_bytes);
    }
    stats.bytes_sent += qtopo_ring_bytes_sent(count, node_x->size, node_x->rank,
                                              QTOPO_RING_BOTH);
    *stats_p = stats;
    return rc;
}
