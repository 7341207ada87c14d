/*
 * Exact (fp32) allreduce: a pipelined ring reduce-scatter followed by a ring allgather.
 *
 * The buffer is cut into one chunk per rank and every chunk into nseg segments
 * (coll_qtopo_partition.h). Rank r sends to next = r+1 and receives from prev = r-1.
 *
 *   reduce-scatter, step k = 0..n-2:  receive chunk (r-k-2) from prev, add the local
 *                                     contribution, send the partial sum to next
 *   allgather,      step k = 0..n-2:  receive the final chunk (r-k-1) from prev into
 *                                     rbuf, forward it to next
 *
 * After the reduce-scatter rank r owns the final chunk r, so the two phases also
 * serve separately (the hierarchical algorithm reduce-scatters within a node, works on
 * its chunk, then allgathers). Each phase is pipelined per segment: as soon as
 * segment j of a step has arrived and been reduced it goes on to the next rank, while
 * segment j+1 is still on the wire. Each rank's
 * final chunk is computed once, by its owner, in a fixed order and then copied
 * byte for byte, so every rank ends with bit-identical results. Every rank moves
 * 2(n-1)/n of the buffer, the bandwidth optimum.
 *
 * Messages between a pair are matched in posting order (coll_qtopo_xport.h); the
 * receives below are posted in exactly the order prev sends.
 */

#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"

typedef struct ring_plan {
    qtopo_xport_t *x;
    size_t count;
    int n, r, next, prev;
    int nseg;
    size_t maxseg; /* elements in the largest segment */
    int nslots;    /* reduce-scatter receives in flight, 1..nseg */
} ring_plan_t;

/* The receive slots: one per segment of a chunk, fewer where scratch_max (0: no limit)
 * asks, at least one. Local: the slots change when a receive is posted, never what is
 * sent. */
static void ring_plan_init(ring_plan_t *p, size_t count, int size, size_t seg_bytes,
                           size_t scratch_max)
{
    size_t maxchunk = qtopo_part_len(count, (size_t) size, 0), fit;

    p->count = count;
    p->n = size;
    p->nseg = qtopo_nsegments(maxchunk * sizeof(float), seg_bytes);
    p->maxseg = qtopo_part_len(maxchunk, (size_t) p->nseg, 0);
    p->nslots = p->nseg;
    if (0 != scratch_max && 0 < p->maxseg) {
        fit = scratch_max / (p->maxseg * sizeof(float));
        p->nslots = 1 > fit ? 1 : ((size_t) p->nseg < fit ? p->nseg : (int) fit);
    }
}

size_t qtopo_ring_scratch_bytes(size_t count, int size, size_t seg_bytes, size_t scratch_max)
{
    ring_plan_t p;

    ring_plan_init(&p, count, size, seg_bytes, scratch_max);
    return (size_t) p.nslots * p.maxseg * sizeof(float);
}

static size_t seg_len(const ring_plan_t *p, int chunk, int j)
{
    return qtopo_seg_len(p->count, p->n, p->nseg, chunk, j);
}

static size_t seg_off(const ring_plan_t *p, int chunk, int j)
{
    return qtopo_seg_off(p->count, p->n, p->nseg, chunk, j);
}

/* dst = a + b; dst may be a. */
static void sum_f32(float *dst, const float *a, const float *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; ++i) {
        dst[i] = a[i] + b[i];
    }
}

static int send_seg(ring_plan_t *p, const float *buf, int chunk, int j, qtopo_req_t *req)
{
    return p->x->isend(p->x, p->next, buf + seg_off(p, chunk, j),
                       seg_len(p, chunk, j) * sizeof(float), req);
}

static int recv_seg(ring_plan_t *p, float *dst, int chunk, int j, qtopo_req_t *req)
{
    return p->x->irecv(p->x, p->prev, dst, seg_len(p, chunk, j) * sizeof(float), req);
}

/* Waits for receive j of `chunk` and checks that it has exactly the planned size. */
static int wait_seg(ring_plan_t *p, int chunk, int j, qtopo_req_t *req)
{
    int rc = p->x->wait(p->x, req, 1);

    if (QTOPO_XPORT_OK == rc && req->bytes != seg_len(p, chunk, j) * sizeof(float)) {
        rc = QTOPO_XPORT_ERR;
    }
    return rc;
}

/* Replaces send request *req by a send of segment j of `chunk`, once *req completed. */
static int resend_seg(ring_plan_t *p, const float *buf, int chunk, int j, qtopo_req_t *req)
{
    int rc = p->x->wait(p->x, req, 1);

    return QTOPO_XPORT_OK == rc ? send_seg(p, buf, chunk, j, req) : rc;
}

/* Posts the reduce-scatter's receive number t = k * nseg + j (step k, segment j: of
 * chunk r-k-2) into slot t % nslots. Receives are posted in this order, which is the
 * order prev sends in. */
static int recv_unit(ring_plan_t *p, float *slots, int t, qtopo_req_t *rreq)
{
    int k = t / p->nseg, s = t % p->nslots;

    return recv_seg(p, slots + (size_t) s * p->maxseg, qtopo_mod(p->r - k - 2, p->n),
                    t % p->nseg, &rreq[s]);
}

/*
 * Reduce-scatter, step k = 0..n-2: send chunk (r-k-1) to next (our raw contribution at
 * step 0, the partial sum we just made afterwards) and receive chunk (r-k-2) from prev.
 * After the last step rank r holds the sum of chunk r. The receive of segment j at step k
 * is number t = k * nseg + j; nslots of them are in flight, and the one that frees a slot
 * posts number t + nslots into it. (No deadlock: what a rank waits for at number t, the
 * receive t and its send of number t - nseg, depends only on lower numbers elsewhere.)
 */
static int ring_reduce_scatter(ring_plan_t *p, const float *sbuf, float *rbuf, float *slots,
                               qtopo_req_t *rreq, qtopo_req_t *sreq)
{
    int rc = QTOPO_XPORT_OK, units = (p->n - 1) * p->nseg;
    int j, k, c, t;

    for (t = 0; QTOPO_XPORT_OK == rc && t < p->nslots; ++t) {
        rc = recv_unit(p, slots, t, rreq);
    }
    for (j = 0; QTOPO_XPORT_OK == rc && j < p->nseg; ++j) {
        rc = send_seg(p, sbuf, qtopo_mod(p->r - 1, p->n), j, &sreq[j]);
    }
    for (t = 0; QTOPO_XPORT_OK == rc && t < units; ++t) {
        float *slot = slots + (size_t) (t % p->nslots) * p->maxseg;

        k = t / p->nseg;
        j = t % p->nseg;
        c = qtopo_mod(p->r - k - 2, p->n);
        rc = wait_seg(p, c, j, &rreq[t % p->nslots]);
        if (QTOPO_XPORT_OK != rc) {
            break;
        }
        sum_f32(rbuf + seg_off(p, c, j), sbuf + seg_off(p, c, j), slot, seg_len(p, c, j));
        if (t + p->nslots < units) {
            rc = recv_unit(p, slots, t + p->nslots, rreq);
        }
        if (QTOPO_XPORT_OK == rc && k < p->n - 2) {
            rc = resend_seg(p, rbuf, c, j, &sreq[j]); /* c == r at the last step: ours */
        }
    }
    return rc;
}

/*
 * Allgather, step k = 0..n-2: send chunk (r-k) (ours at step 0, then the one just
 * received) to next and receive chunk (r-k-1) from prev straight into rbuf.
 */
static int ring_allgather(ring_plan_t *p, float *rbuf, qtopo_req_t *rreq, qtopo_req_t *sreq)
{
    int rc = QTOPO_XPORT_OK;
    int j, k, c;

    for (j = 0; QTOPO_XPORT_OK == rc && j < p->nseg; ++j) {
        c = qtopo_mod(p->r - 1, p->n);
        rc = recv_seg(p, rbuf + seg_off(p, c, j), c, j, &rreq[j]);
    }
    for (j = 0; QTOPO_XPORT_OK == rc && j < p->nseg; ++j) {
        rc = resend_seg(p, rbuf, p->r, j, &sreq[j]);
    }
    for (k = 0; QTOPO_XPORT_OK == rc && k <= p->n - 2; ++k) {
        c = qtopo_mod(p->r - k - 1, p->n);
        for (j = 0; QTOPO_XPORT_OK == rc && j < p->nseg; ++j) {
            rc = wait_seg(p, c, j, &rreq[j]);
            if (QTOPO_XPORT_OK != rc || k == p->n - 2) {
                continue;
            }
            rc = recv_seg(p, rbuf + seg_off(p, qtopo_mod(c - 1, p->n), j),
                          qtopo_mod(c - 1, p->n), j, &rreq[j]);
            if (QTOPO_XPORT_OK == rc) {
                rc = resend_seg(p, rbuf, c, j, &sreq[j]);
            }
        }
    }
    return rc;
}

/* Runs one phase with fresh request arrays and drains them, also on an error path:
 * nothing may stay in flight once a phase returns. */
static int ring_run(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                    size_t seg_bytes, size_t scratch_max, void *scratch, int phases)
{
    qtopo_req_t rreq[QTOPO_MAX_SEGMENTS], sreq[QTOPO_MAX_SEGMENTS];
    ring_plan_t p;
    int rc = QTOPO_XPORT_OK, j;

    ring_plan_init(&p, count, x->size, seg_bytes, scratch_max);
    p.x = x;
    p.r = x->rank;
    p.next = qtopo_mod(x->rank + 1, x->size);
    p.prev = qtopo_mod(x->rank - 1, x->size);
    for (j = 0; j < p.nseg; ++j) {
        rreq[j] = (qtopo_req_t) QTOPO_REQ_INIT;
        sreq[j] = (qtopo_req_t) QTOPO_REQ_INIT;
    }
    if (phases & QTOPO_RING_REDUCE_SCATTER) {
        rc = ring_reduce_scatter(&p, sbuf, rbuf, (float *) scratch, rreq, sreq);
        /* the allgather overwrites what these sends read */
        rc = qtopo_xport_finish(x, sreq, p.nseg, rc);
    }
    if (QTOPO_XPORT_OK == rc && (phases & QTOPO_RING_ALLGATHER)) {
        rc = ring_allgather(&p, rbuf, rreq, sreq);
    }
    rc = qtopo_xport_finish(x, rreq, p.nseg, rc);
    return qtopo_xport_finish(x, sreq, p.nseg, rc);
}

size_t qtopo_ring_bytes_sent(size_t count, int size, int rank, int phases)
{
    size_t bytes = 0;

    if (1 == size) {
        return 0;
    }
    /* the reduce-scatter never sends chunk r, the allgather never chunk r+1 */
    if (phases & QTOPO_RING_REDUCE_SCATTER) {
        bytes += count - qtopo_part_len(count, (size_t) size, (size_t) rank);
    }
    if (phases & QTOPO_RING_ALLGATHER) {
        bytes += count - qtopo_part_len(count, (size_t) size, (size_t) qtopo_mod(rank + 1, size));
    }
    return bytes * sizeof(float);
}

int qtopo_ring_reduce_scatter(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                              size_t seg_bytes, size_t scratch_max, void *scratch)
{
    if (1 == x->size) {
        if (sbuf != rbuf) {
            memcpy(rbuf, sbuf, count * sizeof(float));
        }
        return QTOPO_XPORT_OK;
    }
    return ring_run(x, sbuf, rbuf, count, seg_bytes, scratch_max, scratch,
                    QTOPO_RING_REDUCE_SCATTER);
}

int qtopo_ring_allgather(qtopo_xport_t *x, float *rbuf, size_t count, size_t seg_bytes)
{
    if (1 == x->size) {
        return QTOPO_XPORT_OK;
    }
    return ring_run(x, rbuf, rbuf, count, seg_bytes, 0, NULL, QTOPO_RING_ALLGATHER);
}

int qtopo_ring_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                         size_t seg_bytes, size_t scratch_max, void *scratch)
{
    if (1 == x->size) {
        return qtopo_ring_reduce_scatter(x, sbuf, rbuf, count, seg_bytes, scratch_max, scratch);
    }
    return ring_run(x, sbuf, rbuf, count, seg_bytes, scratch_max, scratch,
                    QTOPO_RING_REDUCE_SCATTER | QTOPO_RING_ALLGATHER);
}
