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

/* Scratch bytes qtopo_ring_allreduce needs for (count, group size, segment size). */
size_t qtopo_ring_scratch_bytes(size_t count, int size, size_t seg_bytes);

/*
 * Exact sum of `count` floats over the group, result on every peer, bit-identical
 * everywhere: pipelined ring reduce-scatter followed by a ring allgather.
 * sbuf == rbuf means in place. scratch holds qtopo_ring_scratch_bytes() bytes.
 */
int qtopo_ring_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                         size_t seg_bytes, void *scratch);

/* What a quantized allreduce needs besides the buffers. */
typedef struct qtopo_sra_args {
    qtopo_codec_params_t codec; /* bits 16, 8, 4, 2, 1; block; rounding */
    size_t seg_bytes;           /* pipeline segment, in fp32 bytes */
    uint64_t seed;              /* stochastic rounding: coll_qtopo_seed */
    uint64_t call;              /* ... the call number on the communicator */
    uint32_t key_rank;          /* ... this rank's id (e.g. its rank in the communicator) */
    uint64_t elem_base;         /* ... logical index of element 0 of the buffer */
    float *residual;            /* error feedback: count floats, or NULL */
} qtopo_sra_args_t;

typedef struct qtopo_sra_stats {
    size_t bytes_sent;   /* encoded bytes this rank sent */
    double code_seconds; /* time spent encoding and decoding */
} qtopo_sra_stats_t;

/* Scratch bytes qtopo_sra_allreduce needs. */
size_t qtopo_sra_scratch_bytes(size_t count, int size, const qtopo_sra_args_t *a);

/*
 * Quantized sum of `count` floats over the group with two quantization points per
 * element (scatter-reduce-allgather, coll_qtopo_sra.c), bit-identical on every peer.
 * sbuf == rbuf means in place.
 */
int qtopo_sra_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                        const qtopo_sra_args_t *a, void *scratch, qtopo_sra_stats_t *stats_p);

#endif /* COLL_QTOPO_ALGO_H */
