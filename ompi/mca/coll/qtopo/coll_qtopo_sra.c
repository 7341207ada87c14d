/*
 * Quantized allreduce: scatter-reduce-allgather (SRA, as in CGX) with exactly two
 * quantization points per element, whatever the number of ranks.
 *
 * The buffer is cut into one chunk per rank (rank c owns chunk c) and every chunk into
 * nseg segments. For each segment j:
 *
 *   scatter:   every rank encodes segment j of each chunk c != own once and sends it
 *              straight to c (peer order r+1, r+2, ...)           -- quantization 1
 *   reduce:    the owner adds the decoded contributions to its own fp32 values in a
 *              fixed order (r-1, r-2, ...), encodes the sum once   -- quantization 2
 *              and decodes its own encoded bytes in place
 *   allgather: the owner sends the encoded sum, unchanged, to every rank; each
 *              decodes it into its result
 *
 * Every rank therefore ends with decode(the owner's bytes) for every chunk: the same
 * bits everywhere. Segments are pipelined two deep: while segment j is reduced and
 * shared, segment j+1 is already encoded and on the wire, and segment j-1's shared
 * bytes are decoded. Every rank sends 2(n-1)/n of the encoded buffer.
 *
 * Receives are posted with the codec's worst-case size (every block raw, for
 * NaN/Inf), sends carry the actual encoded size; decode checks the size exactly.
 * All ranks post in the same order (scatter j, scatter j+1, allgather j, ...), which
 * is what the transport's in-order matching needs.
 *
 * Error-bounded mode (a->error_bounded, bound E): the codec's error-bounded format picks
 * every block's width from the data. Each contribution is encoded within
 * E / (2(n-1)); the owner tallies, per block of the segment, the bounds the decoder reads
 * off each received block (error, largest |value|) and its own largest |value|, and
 * encodes the sum within what is left of E after those errors and the float rounding of
 * its n-1 additions, gamma(n-1) * sum of |terms|. So every element of the result is within
 * E of the exact sum as long as that rounding is at most E/2 (beyond it the sum travels
 * raw and the error stays <= E/2 + the rounding). Widths are decided by the encoding rank
 * alone and carried on the wire: no agreement is needed beyond equal parameters.
 * Error feedback is not used in this mode.
 *
 * Error feedback (optional residual, one float per element of the buffer): the
 * residual of chunk c != own carries this rank's quantization error of its
 * contribution into the next call; the residual of the own chunk carries the error of
 * the encoded sum (the owner's side), as in 1-bit Adam's worker and server errors.
 */

#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"

/* Per segment in flight: a buffer per peer of each of SRA_NPEERKINDS kinds, one for the
 * encoded sum (SRA_GSEND); a request per peer of each kind. */
enum { SRA_SEND, SRA_RECV, SRA_GRECV, SRA_NPEERKINDS, SRA_GSEND = SRA_NPEERKINDS, SRA_NKINDS };
#define SRA_NBUFS(n) (2 * ((size_t) SRA_NPEERKINDS * (size_t) (n) + 1))
#define SRA_NREQS(n) (2 * (size_t) SRA_NKINDS * (size_t) (n))

/* The scratch budget of buffers smaller than this (qtopo_sra_nsegments), and the most
 * segments a chunk is cut into. */
#define QTOPO_SRA_SCRATCH_FLOOR ((size_t) 8 << 20)
#define QTOPO_SRA_MAX_NSEG ((size_t) 1 << 20)

typedef struct sra_plan {
    qtopo_xport_t *x;
    const qtopo_sra_args_t *a;
    size_t count;
    int n, r, nseg;
    size_t maxseg;     /* elements in the largest segment */
    size_t slot_bytes; /* worst-case encoded size of a segment */
    uint8_t *bufs;     /* [peer kind][2][n], then [2] for SRA_GSEND, of slot_bytes */
    qtopo_req_t *reqs; /* [kind][2][n] */
    size_t nblk;       /* error-bounded: blocks in the largest segment */
    double *err;       /* ... per block of the reduced segment: tallied error bounds, */
    double *absmax;    /* ... and bounds on the sum of |terms| */
    double contrib_tol; /* ... tolerance of each contribution, E / (2(n-1)) */
    qtopo_sra_stats_t stats;
} sra_plan_t;

/* Segments of maxseg elements: the worst-case encoded size of one (rounded up so that
 * the arrays after the buffers stay aligned) and, error-bounded, its blocks. */
static size_t sra_slot_bytes(size_t maxseg, const qtopo_sra_args_t *a, size_t *nblk_p)
{
    size_t bytes;

    *nblk_p = 0;
    if (a->error_bounded) {
        bytes = qtopo_codec_eb_max_size(maxseg, a->codec.block);
        *nblk_p = (maxseg + (size_t) a->codec.block - 1) / (size_t) a->codec.block;
    } else {
        bytes = qtopo_codec_max_size(maxseg, &a->codec);
    }
    return (bytes + 63) & ~(size_t) 63;
}

/* Scratch of a plan with segments of maxseg elements on n ranks: two segments in flight,
 * each with a buffer per peer for the pieces sent, received and gathered, and one for
 * the encoded sum, which goes to every peer unchanged; the requests; the tallies. */
static size_t sra_bytes(size_t maxseg, int n, const qtopo_sra_args_t *a)
{
    size_t nblk, slot = sra_slot_bytes(maxseg, a, &nblk);

    return SRA_NBUFS(n) * slot + SRA_NREQS(n) * sizeof(qtopo_req_t)
           + 2 * nblk * sizeof(double);
}

/*
 * Segments per chunk: as many as coll_qtopo_segment_size asks (qtopo_nsegments), or more
 * where the scratch would exceed its budget: the larger of the buffer's size and
 * QTOPO_SRA_SCRATCH_FLOOR, at most a->scratch_max when that is set. So the scratch is
 * O(buffer) whatever the number of ranks: it holds six segments' stripes (a segment of
 * every chunk) in the codec's worst case, and the stripes shrink as the segments do.
 * The largest segment that fits is found by bisection (the size grows with it); at one
 * element per segment (or QTOPO_SRA_MAX_NSEG segments) the scratch is a few hundred
 * bytes per rank, which may still exceed a small scratch_max: the caller compares
 * qtopo_sra_scratch_bytes() with it.
 * A pure function of (count, size, arguments): equal on every rank.
 */
int qtopo_sra_nsegments(size_t count, int size, const qtopo_sra_args_t *a)
{
    size_t maxchunk = qtopo_part_len(count, (size_t) size, 0), budget, lo, hi, mid;
    int nseg = qtopo_nsegments(maxchunk * sizeof(float), a->seg_bytes);

    budget = count * sizeof(float) > QTOPO_SRA_SCRATCH_FLOOR ? count * sizeof(float)
                                                              : QTOPO_SRA_SCRATCH_FLOOR;
    budget = 0 != a->scratch_max && a->scratch_max < budget ? a->scratch_max : budget;
    hi = qtopo_part_len(maxchunk, (size_t) nseg, 0);
    if (1 >= hi || sra_bytes(hi, size, a) <= budget) {
        return nseg;
    }
    /* the largest segment length in [lo, hi) whose scratch fits (lo when none does) */
    lo = maxchunk > QTOPO_SRA_MAX_NSEG ? (maxchunk - 1) / QTOPO_SRA_MAX_NSEG + 1 : 1;
    while (lo + 1 < hi) {
        mid = lo + (hi - lo) / 2;
        if (sra_bytes(mid, size, a) <= budget) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (int) ((maxchunk + lo - 1) / lo);
}

static void sra_plan_init(sra_plan_t *p, size_t count, int size, const qtopo_sra_args_t *a)
{
    size_t maxchunk = qtopo_part_len(count, (size_t) size, 0);

    p->count = count;
    p->n = size;
    p->a = a;
    p->nseg = qtopo_sra_nsegments(count, size, a);
    p->maxseg = qtopo_part_len(maxchunk, (size_t) p->nseg, 0);
    p->slot_bytes = sra_slot_bytes(p->maxseg, a, &p->nblk);
    p->contrib_tol = a->error_bounded && 1 < size ? a->error_bound / (2.0 * (size - 1)) : 0.0;
}

size_t qtopo_sra_scratch_bytes(size_t count, int size, const qtopo_sra_args_t *a)
{
    sra_plan_t p;

    sra_plan_init(&p, count, size, a);
    return sra_bytes(p.maxseg, size, a);
}

static size_t seg_len(const sra_plan_t *p, int chunk, int j)
{
    return qtopo_seg_len(p->count, p->n, p->nseg, chunk, j);
}

static size_t seg_off(const sra_plan_t *p, int chunk, int j)
{
    return qtopo_seg_off(p->count, p->n, p->nseg, chunk, j);
}

static size_t slot_index(const sra_plan_t *p, int kind, int j, int peer)
{
    return ((size_t) kind * 2 + (size_t) (j % 2)) * (size_t) p->n + (size_t) peer;
}

/* peer's buffer of a peer kind for segment j */
static uint8_t *slot_buf(const sra_plan_t *p, int kind, int j, int peer)
{
    return p->bufs + slot_index(p, kind, j, peer) * p->slot_bytes;
}

/* the buffer of our encoded sum of segment j */
static uint8_t *gsend_buf(const sra_plan_t *p, int j)
{
    return p->bufs + ((size_t) SRA_NPEERKINDS * 2 * (size_t) p->n + (size_t) (j % 2))
                         * p->slot_bytes;
}

static qtopo_req_t *slot_req(const sra_plan_t *p, int kind, int j, int peer)
{
    return &p->reqs[slot_index(p, kind, j, peer)];
}

static int codec_rc(int rc)
{
    return QTOPO_CODEC_OK == rc ? QTOPO_XPORT_OK : QTOPO_SRA_ERR_CODEC;
}

/* Encodes n values at src (element `off` of the buffer) into dst, with error feedback
 * when the caller keeps residuals. Error-bounded: within tol - spent[block] (spent may
 * be NULL). */
static int encode_values(sra_plan_t *p, const float *src, size_t off, size_t n, double tol,
                         const double *spent, uint8_t *dst, size_t *size_p)
{
    const qtopo_sra_args_t *a = p->a;
    qtopo_codec_key_t key = {a->seed, a->call, a->key_rank, a->elem_base + off};
    double t0 = qtopo_now();
    int rc;

    if (a->error_bounded) {
        rc = qtopo_codec_eb_encode(src, n, a->codec.block, tol, spent, dst, p->slot_bytes,
                                   size_p);
    } else if (NULL != a->residual) {
        rc = qtopo_codec_encode_ef(src, a->residual + off, n, &a->codec, &key, dst, p->slot_bytes,
                                   size_p);
    } else {
        rc = qtopo_codec_encode(src, n, &a->codec, &key, dst, p->slot_bytes, size_p);
    }
    p->stats.code_seconds += qtopo_now() - t0;
    return codec_rc(rc);
}

static int send_bytes(sra_plan_t *p, int peer, const uint8_t *buf, size_t size, qtopo_req_t *req)
{
    p->stats.bytes_sent += size;
    return p->x->isend(p->x, peer, buf, size, req);
}

/* Scatter of segment j: post the receives of our chunk's pieces, encode and send the
 * pieces of every other chunk to its owner. */
static int scatter_post(sra_plan_t *p, const float *sbuf, int j)
{
    int k, peer, rc = QTOPO_XPORT_OK;

    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        peer = qtopo_mod(p->r - k, p->n);
        rc = p->x->irecv(p->x, peer, slot_buf(p, SRA_RECV, j, peer), p->slot_bytes,
                         slot_req(p, SRA_RECV, j, peer));
    }
    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        size_t size, off = seg_off(p, qtopo_mod(p->r + k, p->n), j);
        peer = qtopo_mod(p->r + k, p->n);
        /* the buffer's previous send (segment j-2) must be complete */
        rc = p->x->wait(p->x, slot_req(p, SRA_SEND, j, peer), 1);
        if (QTOPO_XPORT_OK == rc) {
            rc = encode_values(p, sbuf + off, off, seg_len(p, peer, j), p->contrib_tol, NULL,
                               slot_buf(p, SRA_SEND, j, peer), &size);
        }
        if (QTOPO_XPORT_OK == rc) {
            rc = send_bytes(p, peer, slot_buf(p, SRA_SEND, j, peer), size,
                            slot_req(p, SRA_SEND, j, peer));
        }
    }
    return rc;
}

/* Decodes a message of `size` bytes into len values at dst, or adds them to dst (and,
 * error-bounded, tallies the blocks' bounds). */
static int decode_values(sra_plan_t *p, const uint8_t *msg, size_t size, size_t len, float *dst,
                         int add)
{
    qtopo_codec_eb_tally_t tally = {p->err, p->absmax};
    double t0 = qtopo_now();
    int rc;

    if (p->a->error_bounded) {
        rc = qtopo_codec_eb_decode(msg, size, len, p->a->codec.block, dst, add,
                                   add ? &tally : NULL);
    } else if (add) {
        rc = qtopo_codec_decode_add(msg, size, len, &p->a->codec, dst);
    } else {
        rc = qtopo_codec_decode(msg, size, len, &p->a->codec, dst);
    }

    p->stats.code_seconds += qtopo_now() - t0;
    return codec_rc(rc);
}

/* Waits for peer's message of segment j in the `kind` slots and decodes it into dst. */
static int wait_decode(sra_plan_t *p, int kind, int j, int peer, float *dst, size_t len, int add)
{
    qtopo_req_t *req = slot_req(p, kind, j, peer);
    int rc = p->x->wait(p->x, req, 1);

    if (QTOPO_XPORT_OK == rc) {
        rc = decode_values(p, slot_buf(p, kind, j, peer), req->bytes, len, dst, add);
    }
    return rc;
}

/* Adds the decoded contributions of every peer to our own values of segment j. */
static int reduce_segment(sra_plan_t *p, const float *sbuf, float *rbuf, int j)
{
    size_t off = seg_off(p, p->r, j), len = seg_len(p, p->r, j);
    int k, rc = QTOPO_XPORT_OK;

    if (sbuf != rbuf) {
        memcpy(rbuf + off, sbuf + off, len * sizeof(float));
    }
    if (p->a->error_bounded) {
        memset(p->err, 0, p->nblk * sizeof(double));
        memset(p->absmax, 0, p->nblk * sizeof(double));
        qtopo_codec_eb_absmax(rbuf + off, len, p->a->codec.block, p->absmax);
    }
    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        rc = wait_decode(p, SRA_RECV, j, qtopo_mod(p->r - k, p->n), rbuf + off, len, 1);
    }
    return rc;
}

/* Error-bounded: what the contributions' errors and the float rounding of the n-1
 * additions (at most gamma(n-1) times the sum of |terms|) used of E, per block, in p->err. */
static void spent_budget(sra_plan_t *p)
{
    double ku = (double) (p->n - 1) * 0x1p-24, gamma = ku / (1.0 - ku);

    for (size_t b = 0; b < p->nblk; ++b) {
        p->err[b] += gamma * p->absmax[b];
    }
}

/* Encodes our reduced segment j once, decodes those very bytes into our result, sends
 * them to every peer and posts the receives of the peers' reduced segments. */
static int share_segment(sra_plan_t *p, float *rbuf, int j)
{
    size_t off = seg_off(p, p->r, j), len = seg_len(p, p->r, j), size = 0;
    uint8_t *mine = gsend_buf(p, j);
    int k, peer, rc;

    /* all sends of segment j-2's encoded sum, which used this buffer, must be done */
    rc = p->x->wait(p->x, slot_req(p, SRA_GSEND, j, 0), p->n);
    if (QTOPO_XPORT_OK == rc && p->a->error_bounded) {
        spent_budget(p);
    }
    if (QTOPO_XPORT_OK == rc) {
        rc = encode_values(p, rbuf + off, off, len, p->a->error_bound, p->err, mine, &size);
    }
    if (QTOPO_XPORT_OK == rc) {
        rc = decode_values(p, mine, size, len, rbuf + off, 0);
    }
    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        peer = qtopo_mod(p->r + k, p->n);
        rc = send_bytes(p, peer, mine, size, slot_req(p, SRA_GSEND, j, peer));
    }
    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        peer = qtopo_mod(p->r - k, p->n);
        rc = p->x->irecv(p->x, peer, slot_buf(p, SRA_GRECV, j, peer), p->slot_bytes,
                         slot_req(p, SRA_GRECV, j, peer));
    }
    return rc;
}

/* Decodes every peer's reduced segment j into the result. */
static int gather_finish(sra_plan_t *p, float *rbuf, int j)
{
    int k, peer, rc = QTOPO_XPORT_OK;

    for (k = 1; QTOPO_XPORT_OK == rc && k < p->n; ++k) {
        peer = qtopo_mod(p->r - k, p->n);
        rc = wait_decode(p, SRA_GRECV, j, peer, rbuf + seg_off(p, peer, j), seg_len(p, peer, j),
                         0);
    }
    return rc;
}

static int sra_pipeline(sra_plan_t *p, const float *sbuf, float *rbuf)
{
    int j, rc = scatter_post(p, sbuf, 0);

    for (j = 0; QTOPO_XPORT_OK == rc && j < p->nseg; ++j) {
        if (j + 1 < p->nseg) {
            rc = scatter_post(p, sbuf, j + 1);
        }
        if (QTOPO_XPORT_OK == rc) {
            rc = reduce_segment(p, sbuf, rbuf, j);
        }
        if (QTOPO_XPORT_OK == rc) {
            rc = share_segment(p, rbuf, j);
        }
        if (QTOPO_XPORT_OK == rc && j >= 1) {
            rc = gather_finish(p, rbuf, j - 1);
        }
    }
    if (QTOPO_XPORT_OK == rc) {
        rc = gather_finish(p, rbuf, p->nseg - 1);
    }
    return rc;
}

int qtopo_sra_allreduce(qtopo_xport_t *x, const float *sbuf, float *rbuf, size_t count,
                        const qtopo_sra_args_t *a, void *scratch, qtopo_sra_stats_t *stats_p)
{
    size_t nreqs = SRA_NREQS(x->size), i;
    sra_plan_t p;
    int rc;

    memset(&p.stats, 0, sizeof(p.stats));
    if (1 == x->size) {
        if (sbuf != rbuf) {
            memcpy(rbuf, sbuf, count * sizeof(float));
        }
        *stats_p = p.stats;
        return QTOPO_XPORT_OK;
    }
    sra_plan_init(&p, count, x->size, a);
    p.x = x;
    p.r = x->rank;
    p.bufs = scratch;
    p.reqs = (qtopo_req_t *) (p.bufs + SRA_NBUFS(x->size) * p.slot_bytes);
    p.err = (double *) (p.reqs + nreqs);
    p.absmax = p.err + p.nblk;
    for (i = 0; i < nreqs; ++i) {
        p.reqs[i] = (qtopo_req_t) QTOPO_REQ_INIT;
    }

    rc = sra_pipeline(&p, sbuf, rbuf);
    /* nothing may stay in flight once we return, also on an error path */
    rc = qtopo_xport_finish(x, p.reqs, (int) nreqs, rc);
    *stats_p = p.stats;
    return rc;
}
