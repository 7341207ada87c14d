/*
 * qtopo's allreduce algorithms, free of Open MPI types: each one runs over a
 * qtopo_xport_t group and works on plain float buffers, so the unit tests drive them
 * with the in-process mock transport at any "rank" count.
 *
 * Return codes: 0 on success, a negative QTOPO_XPORT_* code on a transport error.
 */

#ifndef COLL_QTOPO_ALGO_H
#define COLL_QTOPO_ALGO_H

#include <stddef.h>
#include <stdint.h>

#include "coll_qtopo_codec.h"
#include "coll_qtopo_xport.h"

/* Error codes of the algorithms besides the transport's. */
#define QTOPO_SRA_ERR_CODEC -2 /* a codec call failed (corrupt message, bad parameters) */

/* Scratch bytes qtopo_ring_allreduce needs for (count, group size, segment size, budget):
 * a receive slot per segment of a chunk (count / size floats), or as many as fit in
 * scratch_max (0: no limit), at least one. */
size_t qtopo_ring_scratch_bytes(size_t count, int size, size_t seg_bytes, size_t scratch_max);

/*
 * Exact sum of `count` floats over the group, result on every peer, bit-identical
 * everywhere: pipelined ring reduce-scatter followed by a ring allgather.
 * sbuf == rbuf means in place. scratch holds qtopo_ring_scratch_bytes() bytes for the
 * same scratch_max.
 */
int qtopo_ring_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                         size_t seg_bytes, size_t scratch_max, void *scratch);

/* The two halves alone. After the reduce-scatter, chunk r of rbuf (chunks as in
 * coll_qtopo_partition.h) holds peer r's sum; the other chunks hold scratch values.
 * The allgather expects chunk r of rbuf final on peer r and fills in the rest. */
int qtopo_ring_reduce_scatter(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                              size_t seg_bytes, size_t scratch_max, void *scratch);
int qtopo_ring_allgather(qtopo_xport_t *x, float *rbuf, size_t count, size_t seg_bytes);

/* Bytes peer `rank` of `size` sends in the given ring phases (QTOPO_RING_*). */
enum { QTOPO_RING_REDUCE_SCATTER = 1, QTOPO_RING_ALLGATHER = 2, QTOPO_RING_BOTH = 3 };
size_t qtopo_ring_bytes_sent(size_t count, int size, int rank, int phases);

/* What a quantized allreduce needs besides the buffers. */
typedef struct qtopo_sra_args {
    qtopo_codec_params_t codec; /* bits 16, 8, 4, 2, 1; block; rounding */
    size_t seg_bytes;           /* pipeline segment, in fp32 bytes */
    uint64_t seed;              /* stochastic rounding: coll_qtopo_seed */
    uint64_t call;              /* ... the call number on the communicator */
    uint32_t key_rank;          /* ... this rank's id (e.g. its rank in the communicator) */
    uint64_t elem_base;         /* ... logical index of element 0 of the buffer */
    float *residual;            /* error feedback: count floats, or NULL */
    int error_bounded;          /* 1: codec.bits is ignored, widths follow error_bound */
    double error_bound;         /* ... largest |result - exact sum| per element (>= 0) */
    size_t scratch_max;         /* scratch budget in bytes (0: none besides the buffer's
                                 * size); changes the segments, so equal on every peer */
} qtopo_sra_args_t;

/* Where a call's time goes: split-rail's node reduce-scatter, its network (rail) phase,
 * its node allgather; a flat algorithm is all network phase. Time spent waiting for a
 * phase's messages counts to that phase. */
enum { QTOPO_PHASE_NODE_RS, QTOPO_PHASE_NETWORK, QTOPO_PHASE_NODE_AG, QTOPO_NPHASES };

typedef struct qtopo_sra_stats {
    size_t bytes_sent;                   /* encoded bytes this rank sent */
    double code_seconds;                 /* time spent encoding and decoding */
    double phase_seconds[QTOPO_NPHASES]; /* filled by the callers of the algorithms */
} qtopo_sra_stats_t;

/* Scratch bytes qtopo_sra_allreduce needs: O(count), whatever the group size, and at most
 * a->scratch_max where segments of one element or more allow it (coll_qtopo_sra.c). */
size_t qtopo_sra_scratch_bytes(size_t count, int size, const qtopo_sra_args_t *a);

/* Pipeline segments per chunk (coll_qtopo_partition.h) qtopo_sra_allreduce uses. */
int qtopo_sra_nsegments(size_t count, int size, const qtopo_sra_args_t *a);

/*
 * Quantized sum of `count` floats over the group with two quantization points per
 * element (scatter-reduce-allgather, coll_qtopo_sra.c), bit-identical on every peer.
 * sbuf == rbuf means in place.
 */
int qtopo_sra_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                        const qtopo_sra_args_t *a, void *scratch, qtopo_sra_stats_t *stats_p);

/* The hierarchical (split-rail) allreduce, coll_qtopo_hier.c. */
typedef struct qtopo_hier_args {
    size_t seg_bytes;     /* pipeline segment of the fp32 phases */
    int quantize;         /* the inter-node phase is quantized with `sra` */
    qtopo_sra_args_t sra; /* elem_base refers to the whole buffer; residual holds
                           * qtopo_hier_residual_len() floats: this rank's pieces only */
} qtopo_hier_args_t;

/* Floats of error-feedback residual split-rail needs on local rank l of L: the rank
 * quantizes only its pieces, about count / L elements. */
size_t qtopo_hier_residual_len(size_t count, int local_size, int local_rank);

/* Scratch bytes qtopo_hier_allreduce needs: the node phases' stage (about half the
 * buffer) and the rail phase's; a->sra.scratch_max (0: none) is the budget of the whole,
 * of which the rail phase gets what the stage leaves: qtopo_hier_rail_budget(). */
size_t qtopo_hier_scratch_bytes(size_t count, int local_size, int nnodes,
                                const qtopo_hier_args_t *a);
size_t qtopo_hier_rail_budget(size_t count, int local_size, size_t scratch_max);

/*
 * Split-rail on nodes with unequal rank counts (the folded form, coll_qtopo_hier.c):
 * fold_x spans the L ranks of this node in local-rank order; local ranks below `width`
 * (the fewest ranks on any node) run qtopo_hier_allreduce on node_x (those `width`
 * ranks) and rail_x (this local rank on every node); the others pass node_x and rail_x
 * as NULL. Scratch: qtopo_hier_folded_scratch_bytes() (extras need none); residuals as
 * qtopo_hier_residual_len(count, width, local_rank) on core ranks, none on the others.
 */
int qtopo_hier_folded_allreduce(qtopo_xport_t *fold_x, int width, qtopo_xport_t *node_x,
                                qtopo_xport_t *rail_x, const float *sbuf, float *rbuf,
                                size_t count, const qtopo_hier_args_t *a, void *scratch,
                                qtopo_sra_stats_t *stats_p);
size_t qtopo_hier_folded_scratch_bytes(size_t count, int width, int nnodes,
                                       const qtopo_hier_args_t *a);

/* The blocks the phases are pipelined over: block b is part b of `count` split into
 * qtopo_hier_nblocks(count) parts, and local rank k owns part k of each block (chunks and
 * segments of coll_qtopo_partition.h with n = blocks, nseg = L). */
int qtopo_hier_nblocks(size_t count);

/*
 * Sum over all ranks of the M x L grid: node_x spans the L ranks of this node (in
 * local-rank order), rail_x the M ranks with this local rank (in node order).
 * Bit-identical on every rank; sbuf == rbuf means in place.
 */
int qtopo_hier_allreduce(qtopo_xport_t *node_x, qtopo_xport_t *rail_x, const float *sbuf,
                         float *rbuf, size_t count, const qtopo_hier_args_t *a, void *scratch,
                         qtopo_sra_stats_t *stats_p);

#endif /* COLL_QTOPO_ALGO_H */
