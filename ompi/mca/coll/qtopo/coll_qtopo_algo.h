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

#include "coll_qtopo_xport.h"

/* Scratch bytes qtopo_ring_allreduce needs for (count, group size, segment size). */
size_t qtopo_ring_scratch_bytes(size_t count, int size, size_t seg_bytes);

/*
 * Exact sum of `count` floats over the group, result on every peer, bit-identical
 * everywhere: pipelined ring reduce-scatter followed by a ring allgather.
 * sbuf == rbuf means in place. scratch holds qtopo_ring_scratch_bytes() bytes.
 */
int qtopo_ring_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                         size_t seg_bytes, void *scratch);

#endif /* COLL_QTOPO_ALGO_H */
