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
 * 2(M-1)/M of the buffer over the network in total, the wire-rate optimum.
 *
 * The three phases are pipelined over blocks of the buffer: while block b is reduced
 * across the nodes, block b+1's pieces are already moving inside the node and block
 * b-1's results are being shared. The node phases are direct exchanges (every local
 * rank sends each peer its piece; the owner adds them in a fixed order), posted ahead
 * and completed later, so they progress while phase 2 waits on the network:
 *
 *   post RS(0)
 *   for b:  post RS(b+1); finish RS(b); rail phase on block b; post AG(b); finish AG(b-1)
 *   finish AG(last)
 *
 * Phase 2 gives bit-identical slices on the rail group and phase 3 copies bytes, so
 * every rank ends with the same bits. Needs the same L on every node
 * (coll_qtopo_nodes_uniform).
 *
 * Nodes with unequal rank counts (e.g. 2,2,2,1) take the folded form: with W the
 * fewest ranks on any node, local ranks 0..W-1 of every node (the core) run the above
 * with L = W; local rank l >= W folds into core rank l mod W: it sends its input there
 * and receives the result as bytes. A core rank adds its extras' inputs to its own in
 * ascending local rank, in fp32 before any quantization, so what it contributes is one
 * fixed expression. The network carries what a W-wide split-rail carries: for quantized
 * calls 1/W of a node's codes per core rank, where the flat algorithm would send
 * 1/(ranks per node) from every rank (W = 1: node leaders).
 */

#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"

/* Pipeline blocks. The first block's reduce-scatter and the last block's allgather are
 * not hidden behind the network, so large buffers want many blocks; each block is its own
 * ring across the nodes, with its own start and end, so not too small ones: blocks of
 * 2 MiB up to QTOPO_HIER_FEW_BLOCKS of them (up to 8 MiB), then of 4 MiB up to
 * QTOPO_HIER_MAX_BLOCKS. On the test bed (4 nodes x 2 ranks, 2 rails of 500 Mbit/s,
 * eager UCX, 2026-12-02), 64 MiB lossless took 0.955 and 0.968 s a call in 4 blocks of
 * 16 MiB (the former limit), 0.873 and 0.904 s in 16 of 4 MiB; at 8 bits 0.359 / 0.379 s
 * against 0.315 / 0.409 s (noise). At 16 MiB, 8 blocks of 2 MiB measured no better than
 * 4 of 4 MiB. */
#define QTOPO_HIER_SMALL_BLOCK ((size_t) 2 << 20)
#define QTOPO_HIER_LARGE_BLOCK ((size_t) 4 << 20)
#define QTOPO_HIER_FEW_BLOCKS 4
#define QTOPO_HIER_MAX_BLOCKS 16

enum { RS_SEND, RS_RECV, AG_SEND, AG_RECV, HIER_NKINDS };

typedef struct hier_plan {
    qtopo_xport_t *node_x, *rail_x;
    const qtopo_hier_args_t *a;
    size_t count;
    int L, l, nblk;
    float *stage;       /* [2][L] receive slots of maxpiece floats for the reduce-scatter */
    size_t maxpiece;
    void *rail_scratch;
    qtopo_req_t *reqs;  /* [2][HIER_NKINDS][L] */
    qtopo_sra_stats_t stats;
} hier_plan_t;

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

int qtopo_hier_nblocks(size_t count)
{
    size_t bytes = count * sizeof(float), small = bytes / QTOPO_HIER_SMALL_BLOCK;
    size_t n = max_size(QTOPO_HIER_FEW_BLOCKS < small ? QTOPO_HIER_FEW_BLOCKS : small,
                        bytes / QTOPO_HIER_LARGE_BLOCK);

    return 1 > n ? 1 : (QTOPO_HIER_MAX_BLOCKS < n ? QTOPO_HIER_MAX_BLOCKS : (int) n);
}

/* piece k of block b: slice k of the block (local rank k owns it) */
static size_t piece_len(const hier_plan_t *p, int b, int k)
{
    return qtopo_seg_len(p->count, p->nblk, p->L, b, k);
}

static size_t piece_off(const hier_plan_t *p, int b, int k)
{
    return qtopo_seg_off(p->count, p->nblk, p->L, b, k);
}

/* Elements of our pieces in the blocks before b: where block b's residual starts. */
static size_t own_before(size_t count, int nblk, int L, int l, int b)
{
    size_t n = 0;
    int i;

    for (i = 0; i < b; ++i) {
        n += qtopo_seg_len(count, nblk, L, i, l);
    }
    return n;
}

size_t qtopo_hier_residual_len(size_t count, int local_size, int local_rank)
{
    int nblk = qtopo_hier_nblocks(count);

    return own_before(count, nblk, local_size, local_rank, nblk);
}

static size_t stage_floats(size_t count, int L)
{
    return 2 * (size_t) L * (qtopo_part_len(count, (size_t) qtopo_hier_nblocks(count), 0)
                             / (size_t) L + 1);
}

/* Scratch besides the rail phase's: the stage and the requests. */
static size_t node_scratch_bytes(size_t count, int L)
{
    return stage_floats(count, L) * sizeof(float) + 2 * HIER_NKINDS * (size_t) L
                                                     * sizeof(qtopo_req_t);
}

/* What scratch_max, the budget of the whole call, leaves to the rail phase (0: no limit;
 * at least 1, the smallest budget, when the node phases take it all). */
size_t qtopo_hier_rail_budget(size_t count, int local_size, size_t scratch_max)
{
    size_t node = node_scratch_bytes(count, local_size);

    if (0 == scratch_max) {
        return 0;
    }
    return scratch_max > node ? scratch_max - node : 1;
}

static size_t rail_budget(const hier_plan_t *p)
{
    return qtopo_hier_rail_budget(p->count, p->L, p->a->sra.scratch_max);
}

static size_t rail_scratch_bytes(size_t piece, int nnodes, const qtopo_hier_args_t *a,
                                 size_t budget)
{
    qtopo_sra_args_t sa = a->sra;

    sa.scratch_max = budget;
    return a->quantize ? qtopo_sra_scratch_bytes(piece, nnodes, &sa)
                       : qtopo_ring_scratch_bytes(piece, nnodes, a->seg_bytes, budget);
}

/* Pieces differ by at most two elements, and a smaller piece may need more scratch (it
 * can be cut into fewer, larger segments): take the most any of them needs. */
static size_t rail_scratch_max(size_t count, int L, int nnodes, const qtopo_hier_args_t *a)
{
    size_t small = count / (size_t) qtopo_hier_nblocks(count) / (size_t) L, most = 0, len;
    size_t budget = qtopo_hier_rail_budget(count, L, a->sra.scratch_max);

    for (len = small > 0 ? small - 1 : 0; len <= small + 2; ++len) {
        most = max_size(most, rail_scratch_bytes(len, nnodes, a, budget));
    }
    return most;
}

size_t qtopo_hier_scratch_bytes(size_t count, int local_size, int nnodes,
                                const qtopo_hier_args_t *a)
{
    return node_scratch_bytes(count, local_size)
           + rail_scratch_max(count, local_size, nnodes, a);
}

static qtopo_req_t *req(const hier_plan_t *p, int b, int kind, int k)
{
    return &p->reqs[((size_t) (b % 2) * HIER_NKINDS + (size_t) kind) * (size_t) p->L
                    + (size_t) k];
}

static float *stage_slot(const hier_plan_t *p, int b, int k)
{
    return p->stage + ((size_t) (b % 2) * (size_t) p->L + (size_t) k) * p->maxpiece;
}

static int send_floats(hier_plan_t *p, int peer, const float *buf, size_t n, qtopo_req_t *r)
{
    p->stats.bytes_sent += n * sizeof(float);
    return p->node_x->isend(p->node_x, peer, buf, n * sizeof(float), r);
}

/* Reduce-scatter of block b, posted: our piece's contributions come into the stage,
 * every other piece goes to its owner. */
static int rs_post(hier_plan_t *p, const float *sbuf, int b)
{
    int i, k, rc = QTOPO_XPORT_OK;

    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        k = qtopo_mod(p->l - i, p->L);
        rc = p->node_x->irecv(p->node_x, k, stage_slot(p, b, k),
                              piece_len(p, b, p->l) * sizeof(float), req(p, b, RS_RECV, k));
    }
    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        k = qtopo_mod(p->l + i, p->L);
        rc = send_floats(p, k, sbuf + piece_off(p, b, k), piece_len(p, b, k),
                         req(p, b, RS_SEND, k));
    }
    return rc;
}

/* Waits for a receive of a piece and checks that exactly n floats arrived: node and
 * rail traffic share the transport, so a size is the one check that a message is the
 * expected one. */
static int wait_piece(hier_plan_t *p, qtopo_req_t *r, size_t n)
{
    int rc = p->node_x->wait(p->node_x, r, 1);

    if (QTOPO_XPORT_OK == rc && r->bytes != n * sizeof(float)) {
        rc = QTOPO_XPORT_ERR;
    }
    return rc;
}

/* Our piece of block b: own values plus every peer's, added in a fixed order. */
static int rs_finish(hier_plan_t *p, const float *sbuf, float *rbuf, int b)
{
    size_t off = piece_off(p, b, p->l), len = piece_len(p, b, p->l), e;
    int i, k, rc = QTOPO_XPORT_OK;

    if (sbuf != rbuf) {
        memcpy(rbuf + off, sbuf + off, len * sizeof(float));
    }
    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        const float *in;
        k = qtopo_mod(p->l - i, p->L);
        in = stage_slot(p, b, k);
        rc = wait_piece(p, req(p, b, RS_RECV, k), len);
        for (e = 0; QTOPO_XPORT_OK == rc && e < len; ++e) {
            rbuf[off + e] += in[e];
        }
    }
    /* the sends read sbuf, which (in place) the allgather will overwrite */
    if (QTOPO_XPORT_OK == rc) {
        rc = p->node_x->wait(p->node_x, req(p, b, RS_SEND, 0), p->L);
    }
    return rc;
}

/* Bytes sent and coding time of a sub-algorithm's run, added to *to (its phase times are
 * the caller's to charge). */
static void add_traffic(qtopo_sra_stats_t *to, const qtopo_sra_stats_t *from)
{
    to->bytes_sent += from->bytes_sent;
    to->code_seconds += from->code_seconds;
}

/* Allreduce of our piece of block b across the nodes. */
static int rail_phase(hier_plan_t *p, float *rbuf, int b)
{
    size_t off = piece_off(p, b, p->l), len = piece_len(p, b, p->l);
    qtopo_sra_args_t sa = p->a->sra;
    qtopo_sra_stats_t st;
    int rc;

    if (!p->a->quantize) {
        p->stats.bytes_sent += qtopo_ring_bytes_sent(len, p->rail_x->size, p->rail_x->rank,
                                                     QTOPO_RING_BOTH);
        return qtopo_ring_allreduce(p->rail_x, rbuf + off, rbuf + off, len, p->a->seg_bytes,
                                    rail_budget(p), p->rail_scratch);
    }
    /* stochastic-rounding keys follow the whole buffer; residuals only our pieces */
    sa.elem_base += off;
    sa.scratch_max = rail_budget(p);
    sa.residual = NULL != sa.residual ? sa.residual + own_before(p->count, p->nblk, p->L, p->l, b)
                                      : NULL;
    rc = qtopo_sra_allreduce(p->rail_x, rbuf + off, rbuf + off, len, &sa, p->rail_scratch, &st);
    add_traffic(&p->stats, &st);
    return rc;
}

/* Allgather of block b, posted: our reduced piece to every peer, theirs into rbuf. */
static int ag_post(hier_plan_t *p, float *rbuf, int b)
{
    int i, k, rc = QTOPO_XPORT_OK;

    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        k = qtopo_mod(p->l - i, p->L);
        rc = p->node_x->irecv(p->node_x, k, rbuf + piece_off(p, b, k),
                              piece_len(p, b, k) * sizeof(float), req(p, b, AG_RECV, k));
    }
    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        k = qtopo_mod(p->l + i, p->L);
        rc = send_floats(p, k, rbuf + piece_off(p, b, p->l), piece_len(p, b, p->l),
                         req(p, b, AG_SEND, k));
    }
    return rc;
}

static int ag_finish(hier_plan_t *p, int b)
{
    int i, k, rc = QTOPO_XPORT_OK;

    for (i = 1; QTOPO_XPORT_OK == rc && i < p->L; ++i) {
        k = qtopo_mod(p->l - i, p->L);
        rc = wait_piece(p, req(p, b, AG_RECV, k), piece_len(p, b, k));
    }
    return QTOPO_XPORT_OK == rc ? p->node_x->wait(p->node_x, req(p, b, AG_SEND, 0), p->L) : rc;
}

/* Charges the time since *t to phase `phase` and restarts the clock. */
static void charge(hier_plan_t *p, int phase, double *t)
{
    double now = qtopo_now();

    p->stats.phase_seconds[phase] += now - *t;
    *t = now;
}

/* Posting a phase counts to it; the allgather's posts count to the network phase that
 * produced the piece (they are cheap). */
static int hier_pipeline(hier_plan_t *p, const float *sbuf, float *rbuf)
{
    double t = qtopo_now();
    int b, rc = rs_post(p, sbuf, 0);

    for (b = 0; QTOPO_XPORT_OK == rc && b < p->nblk; ++b) {
        if (b + 1 < p->nblk) {
            rc = rs_post(p, sbuf, b + 1);
        }
        if (QTOPO_XPORT_OK == rc) {
            rc = rs_finish(p, sbuf, rbuf, b);
        }
        charge(p, QTOPO_PHASE_NODE_RS, &t);
        if (QTOPO_XPORT_OK == rc) {
            rc = rail_phase(p, rbuf, b);
        }
        if (QTOPO_XPORT_OK == rc) {
            rc = ag_post(p, rbuf, b);
        }
        charge(p, QTOPO_PHASE_NETWORK, &t);
        if (QTOPO_XPORT_OK == rc && b >= 1) {
            rc = ag_finish(p, b - 1);
        }
        charge(p, QTOPO_PHASE_NODE_AG, &t);
    }
    rc = QTOPO_XPORT_OK == rc ? ag_finish(p, p->nblk - 1) : rc;
    charge(p, QTOPO_PHASE_NODE_AG, &t);
    return rc;
}

int qtopo_hier_allreduce(qtopo_xport_t *node_x, qtopo_xport_t *rail_x, const float *sbuf,
                         float *rbuf, size_t count, const qtopo_hier_args_t *a, void *scratch,
                         qtopo_sra_stats_t *stats_p)
{
    size_t nreqs = 2 * HIER_NKINDS * (size_t) node_x->size, i;
    hier_plan_t p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.node_x = node_x;
    p.rail_x = rail_x;
    p.a = a;
    p.count = count;
    p.L = node_x->size;
    p.l = node_x->rank;
    p.nblk = qtopo_hier_nblocks(count);
    p.maxpiece = stage_floats(count, p.L) / (2 * (size_t) p.L);
    p.stage = scratch;
    p.reqs = (qtopo_req_t *) (p.stage + stage_floats(count, p.L));
    p.rail_scratch = p.reqs + nreqs;
    for (i = 0; i < nreqs; ++i) {
        p.reqs[i] = (qtopo_req_t) QTOPO_REQ_INIT;
    }

    rc = hier_pipeline(&p, sbuf, rbuf);
    /* nothing may stay in flight once we return, also on an error path */
    rc = qtopo_xport_finish(node_x, p.reqs, (int) nreqs, rc);
    *stats_p = p.stats;
    return rc;
}

/* ---- nodes with unequal rank counts --------------------------------------------------- */

/* The fold slot, rounded up so that split-rail's scratch after it stays aligned. */
static size_t fold_slot_bytes(size_t count)
{
    return (count * sizeof(float) + 63) / 64 * 64;
}

size_t qtopo_hier_folded_scratch_bytes(size_t count, int width, int nnodes,
                                       const qtopo_hier_args_t *a)
{
    return fold_slot_bytes(count) + qtopo_hier_scratch_bytes(count, width, nnodes, a);
}

/* Sends n floats to peer and waits for the send. */
static int send_all(qtopo_xport_t *x, int peer, const float *buf, size_t n, size_t *sent)
{
    qtopo_req_t r = QTOPO_REQ_INIT;
    int rc = x->isend(x, peer, buf, n * sizeof(float), &r);

    *sent += n * sizeof(float);
    return qtopo_xport_finish(x, &r, 1, rc);
}

/* Receives exactly n floats from peer into buf. */
static int recv_all(qtopo_xport_t *x, int peer, float *buf, size_t n)
{
    qtopo_req_t r = QTOPO_REQ_INIT;
    int rc = x->irecv(x, peer, buf, n * sizeof(float), &r);

    rc = qtopo_xport_finish(x, &r, 1, rc);
    return QTOPO_XPORT_OK == rc && r.bytes != n * sizeof(float) ? QTOPO_XPORT_ERR : rc;
}

/* A rank outside the core: its input to its core rank, the result back. */
static int folded_extra(qtopo_xport_t *fold_x, int width, const float *sbuf, float *rbuf,
                        size_t count, qtopo_sra_stats_t *st)
{
    int core = fold_x->rank % width, rc;
    double t = qtopo_now();

    rc = send_all(fold_x, core, sbuf, count, &st->bytes_sent);
    st->phase_seconds[QTOPO_PHASE_NODE_RS] += qtopo_now() - t;
    t = qtopo_now();
    if (QTOPO_XPORT_OK == rc) {
        rc = recv_all(fold_x, core, rbuf, count);
    }
    st->phase_seconds[QTOPO_PHASE_NETWORK] += qtopo_now() - t;
    return rc;
}

/* A core rank: its extras' inputs added in, split-rail among the core, results out. */
static int folded_core(qtopo_xport_t *fold_x, int width, qtopo_xport_t *node_x,
                       qtopo_xport_t *rail_x, const float *sbuf, float *rbuf, size_t count,
                       const qtopo_hier_args_t *a, void *scratch, qtopo_sra_stats_t *st)
{
    float *slot = scratch;
    double t = qtopo_now();
    size_t e;
    int k, rc = QTOPO_XPORT_OK;

    if (sbuf != rbuf) {
        memcpy(rbuf, sbuf, count * sizeof(float));
    }
    for (k = fold_x->rank + width; QTOPO_XPORT_OK == rc && k < fold_x->size; k += width) {
        rc = recv_all(fold_x, k, slot, count);
        for (e = 0; QTOPO_XPORT_OK == rc && e < count; ++e) {
            rbuf[e] += slot[e];
        }
    }
    st->phase_seconds[QTOPO_PHASE_NODE_RS] += qtopo_now() - t;
    if (QTOPO_XPORT_OK == rc) {
        qtopo_sra_stats_t hs;
        rc = qtopo_hier_allreduce(node_x, rail_x, rbuf, rbuf, count, a,
                                  (char *) scratch + fold_slot_bytes(count), &hs);
        add_traffic(st, &hs);
        for (k = 0; k < QTOPO_NPHASES; ++k) {
            st->phase_seconds[k] += hs.phase_seconds[k];
        }
    }
    t = qtopo_now();
    for (k = fold_x->rank + width; QTOPO_XPORT_OK == rc && k < fold_x->size; k += width) {
        rc = send_all(fold_x, k, rbuf, count, &st->bytes_sent);
    }
    st->phase_seconds[QTOPO_PHASE_NODE_AG] += qtopo_now() - t;
    return rc;
}

int qtopo_hier_folded_allreduce(qtopo_xport_t *fold_x, int width, qtopo_xport_t *node_x,
                                qtopo_xport_t *rail_x, const float *sbuf, float *rbuf,
                                size_t count, const qtopo_hier_args_t *a, void *scratch,
                                qtopo_sra_stats_t *stats_p)
{
    memset(stats_p, 0, sizeof(*stats_p));
    if (fold_x->rank >= width) {
        return folded_extra(fold_x, width, sbuf, rbuf, count, stats_p);
    }
    return folded_core(fold_x, width, node_x, rail_x, sbuf, rbuf, count, a, scratch, stats_p);
}
