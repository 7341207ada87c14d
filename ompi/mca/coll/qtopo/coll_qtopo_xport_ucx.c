/*
 * The qtopo transport (coll_qtopo_xport.h) over qtopo's own rails (coll_qtopo_rails.h).
 *
 * A peer on this rank's node is reached through the PML transport (shared memory).
 * A message to another node is cut into one piece per rail (coll_qtopo_railsplit.h):
 * with policy stripe by the agreed weights, with policy aligned all of it on rail
 * (sender's local rank mod R), skipping rails of weight 0. Both sides compute the cut
 * from the weights and the size they know: the sender from the message size, the
 * receiver from its capacity; the cut is monotone, so each piece fits the slot the
 * receiver posted for it, and the receiver moves the pieces together when they are
 * all in.
 *
 * Tags: every piece of a message carries the same 64-bit UCX tag, made of the
 * communicator's rail-failover epoch (12 bits), its id (8 bits: each communicator has
 * its own workers anyway), the sender's rank (20 bits) and the number of messages the
 * sender sent to this receiver in this epoch (24 bits; the receiver counts the messages
 * it posted from that sender alike), matched with a full mask. So the i-th send
 * between a pair meets the i-th receive whatever the order of arrival, and nothing
 * left over from a call abandoned at a rail failure matches after it (new epoch).
 *
 * Failure (coll_qtopo_agree.c has the protocol): a piece that completes with an error,
 * or an endpoint UCX reports broken, marks its rail suspect; so does the watchdog when
 * a wait has seen nothing complete for coll_qtopo_rail_timeout: the suspects are the
 * rails whose pieces are pending in messages where a piece on another rail arrived
 * (a rail lagging behind the others of the same message), or, after three times the
 * timeout with no such evidence, every rail with a pending piece. The wait then fails,
 * and the call ends through the failover protocol.
 *
 * Timing for the adaptive weights: a send piece that UCX did not complete at once gets
 * a callback that stamps its completion time; the time from posting to that stamp and
 * the piece's bytes are added to its rail's measurement when the piece is collected.
 */

#include "ompi_config.h"

/* Open MPI's own source tree builds qtopo without rails (no UCX check there). */
#if QTOPO_HAVE_UCX

#include <stdlib.h>
#include <string.h>

#include "coll_qtopo.h"
#include "coll_qtopo_rails.h"

#include "opal/runtime/opal_progress.h"

/* How often a wait looks for an "off" notice (every that many polls). */
#define QTOPO_UCX_WATCH_EVERY 64

typedef struct ucx_req {
    qtopo_req_t pml;                       /* a peer on this node: the PML transport's */
    void *piece[QTOPO_RAILS_MAX];          /* UCX requests still pending */
    size_t off[QTOPO_RAILS_MAX], len[QTOPO_RAILS_MAX], got[QTOPO_RAILS_MAX];
    double posted, done_at[QTOPO_RAILS_MAX]; /* sends: completion times (0: not stamped) */
    int nrails, peer;                        /* peer: communicator rank */
    char *buf;
    bool recv, failed;
} ucx_req_t;

static int comm_rank_of(const mca_coll_qtopo_ucx_ctx_t *c, int peer)
{
    return NULL == c->ranks ? peer : c->ranks[peer];
}

static bool same_node(const mca_coll_qtopo_rails_t *rails, int crank)
{
    return rails->node[crank] == rails->node[rails->rank];
}

/* Weights of the messages that `sender` (a communicator rank) sends. */
static void message_weights(const mca_coll_qtopo_rails_t *rails, int sender, unsigned *w)
{
    int r;

    if (QTOPO_RAIL_STRIPE == rails->policy) {
        memcpy(w, rails->weights, sizeof(*w) * (size_t) rails->n);
        return;
    }
    memset(w, 0, sizeof(*w) * (size_t) rails->n);
    r = rails->local[sender] % rails->n;
    while (0 == rails->weights[r]) { /* some rail has a weight (agreed) */
        r = (r + 1) % rails->n;
    }
    w[r] = 1;
}


static ucx_req_t *new_req(qtopo_req_t *req, void *buf, bool recv)
{
    ucx_req_t *u = calloc(1, sizeof(*u));

    req->handle = u;
    req->recv = recv;
    if (NULL != u) {
        u->buf = buf;
        u->recv = recv;
    }
    return u;
}

/* Completion of a received piece: its size. */
static void recv_done(void *request, ucs_status_t status, const ucp_tag_recv_info_t *info,
                      void *user_data)
{
    (void) request;
    if (UCS_OK == status) {
        *(size_t *) user_data = info->length;
    }
}

/* Completion of a sent piece: when. */
static void send_done(void *request, ucs_status_t status, void *user_data)
{
    (void) request;
    (void) status;
    *(double *) user_data = qtopo_now();
}

/* Posts piece r of a message of u (send or receive). */
static int post_piece(mca_coll_qtopo_rails_t *rails, ucx_req_t *u, int r, int peer, ucp_tag_t tag)
{
    ucp_request_param_t param;
    ucs_status_ptr_t p;

    memset(&param, 0, sizeof(param));
    if (u->recv) {
        /* always a request, and the size of the message from the callback */
        param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA
                             | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
        param.cb.recv = recv_done;
        param.user_data = &u->got[r];
        u->got[r] = 0;
        p = ucp_tag_recv_nbx(rails->worker[r], u->buf + u->off[r], u->len[r], tag,
                             (ucp_tag_t) -1, &param);
    } else {
        ucp_ep_h ep = mca_coll_qtopo_rails_ep(rails, r, peer);

        if (NULL == ep) {
            return QTOPO_XPORT_ERR;
        }
        param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
        param.cb.send = send_done;
        param.user_data = &u->done_at[r];
        u->done_at[r] = 0.0;
        p = ucp_tag_send_nbx(ep, u->buf + u->off[r], u->len[r], tag, &param);
        mca_coll_qtopo_rails_count(rails, r, u->len[r], 0);
        u->got[r] = u->len[r];
    }
    if (UCS_PTR_IS_ERR(p)) {
        opal_output(0, "coll:qtopo: rank %d: posting on rail %d (%s) failed: %s", rails->rank, r,
                    rails->name[r], ucs_status_string(UCS_PTR_STATUS(p)));
        return QTOPO_XPORT_ERR;
    }
    u->piece[r] = p; /* NULL: a send completed at once */
    return QTOPO_XPORT_OK;
}

/* A message of `bytes` (send) or of at most `bytes` (receive) to or from peer. */
static int post(qtopo_xport_t *x, int peer, void *buf, size_t bytes, qtopo_req_t *req, bool recv)
{
    mca_coll_qtopo_ucx_ctx_t *c = x->ctx;
    mca_coll_qtopo_rails_t *rails = c->rails;
    int crank = comm_rank_of(c, peer), r, rc = QTOPO_XPORT_OK;
    unsigned w[QTOPO_RAILS_MAX];
    ucx_req_t *u = new_req(req, buf, recv);
    ucp_tag_t tag;

    if (NULL == u) {
        return QTOPO_XPORT_ERR;
    }
    if (same_node(rails, crank)) {
        return recv ? c->pml_x.irecv(&c->pml_x, peer, buf, bytes, &u->pml)
                    : c->pml_x.isend(&c->pml_x, peer, buf, bytes, &u->pml);
    }
    u->nrails = rails->n;
    u->peer = crank;
    u->posted = qtopo_now();
    message_weights(rails, recv ? crank : rails->rank, w);
    qtopo_rail_split(bytes, w, rails->n, u->len);
    qtopo_rail_offsets(u->len, rails->n, u->off);
    tag = recv ? mca_coll_qtopo_rails_tag(rails, crank, rails->recv_seq[crank]++)
               : mca_coll_qtopo_rails_tag(rails, rails->rank, rails->send_seq[crank]++);
    for (r = 0; QTOPO_XPORT_OK == rc && r < rails->n; ++r) {
        if (0 != w[r]) {
            rc = post_piece(rails, u, r, crank, tag);
        }
    }
    return rc;
}

static int ucx_isend(qtopo_xport_t *x, int peer, const void *buf, size_t bytes, qtopo_req_t *req)
{
    return post(x, peer, (void *) buf, bytes, req, false);
}

static int ucx_irecv(qtopo_xport_t *x, int peer, void *buf, size_t cap, qtopo_req_t *req)
{
    return post(x, peer, buf, cap, req, true);
}

/* Completes what it can of u without blocking; true when all of it is done or a part
 * failed (u->failed: the rest is for abandon). */
static bool step(mca_coll_qtopo_rails_t *rails, ucx_req_t *u)
{
    bool done = true;
    int r;

    if (NULL != u->pml.handle) {
        ompi_request_t *pr = u->pml.handle; /* the PML transport's handle */
        ompi_status_public_t status;
        int flag = 0;

        if (OMPI_SUCCESS != ompi_request_test(&pr, &flag, &status)) {
            u->failed = true;
        } else if (flag) {
            u->pml.handle = NULL;
            u->pml.bytes = status._ucount;
        }
        return u->failed || NULL == u->pml.handle;
    }
    for (r = 0; r < u->nrails; ++r) {
        ucs_status_t st;

        if (NULL == u->piece[r]) {
            continue;
        }
        st = ucp_request_check_status(u->piece[r]);
        if (UCS_INPROGRESS == st) {
            done = false;
            continue;
        }
        if (UCS_OK != st) {
            mca_coll_qtopo_rails_suspect(rails, r, u->peer, ucs_status_string(st));
            u->failed = true;
        }
        if (u->recv && UCS_OK == st) {
            mca_coll_qtopo_rails_count(rails, r, 0, u->got[r]);
        } else if (UCS_OK == st && 0.0 < u->done_at[r]) {
            rails->meas_bytes[r] += u->len[r];
            rails->meas_sec[r] += u->done_at[r] - u->posted;
        }
        ucp_request_free(u->piece[r]);
        u->piece[r] = NULL;
    }
    return done || u->failed;
}

/* A finished request: its received size (pieces moved together), freed. */
static void finish(ucx_req_t *u, qtopo_req_t *req)
{
    req->bytes = 0 == u->nrails ? u->pml.bytes
                                : (u->recv ? qtopo_rail_compact(u->buf, u->off, u->got, u->nrails)
                                           : 0);
    req->handle = NULL;
    free(u);
}

/* Pieces of u still pending (a request to a peer on this node counts as one). */
static int pending_pieces(const ucx_req_t *u)
{
    int r, k = NULL != u->pml.handle;

    for (r = 0; r < u->nrails; ++r) {
        k += NULL != u->piece[r];
    }
    return k;
}

/* coll_qtopo_rail_timeout, at least 0.1 s. */
static double rail_timeout(void)
{
    double t = mca_coll_qtopo_component.rail_timeout;

    return t > 0.1 ? t : 0.1;
}

/* The watchdog (see the top): marks the suspect rails of the pending requests; true
 * when there are any. */
static bool suspect_stalled(mca_coll_qtopo_rails_t *rails, qtopo_req_t *reqs, int n,
                            double stalled)
{
    bool any = false, lagging;
    char why[64];
    int i, r, q;

    snprintf(why, sizeof(why), "nothing arrived for %.1f s", stalled);
    for (i = 0; i < n; ++i) {
        ucx_req_t *u = reqs[i].handle;

        for (r = 0; NULL != u && r < u->nrails; ++r) {
            for (q = 0, lagging = false; NULL != u->piece[r] && q < u->nrails; ++q) {
                lagging = lagging || (q != r && 0 < u->len[q] && NULL == u->piece[q]);
            }
            if (NULL != u->piece[r]
                && (lagging || stalled >= 3.0 * rail_timeout())) {
                mca_coll_qtopo_rails_suspect(rails, r, u->peer, why);
                any = true;
            }
        }
    }
    return any;
}

static int ucx_wait(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    mca_coll_qtopo_ucx_ctx_t *c = x->ctx;
    mca_coll_qtopo_rails_t *rails = c->rails;
    unsigned long polls = 0;
    double last = qtopo_now(), now;
    int i, before = -1;

    for (;;) {
        int left = 0;

        /* a rail found broken, here or between calls: the failover protocol */
        if (c->fail_waits || rails->trouble) {
            return QTOPO_XPORT_ERR;
        }
        for (i = 0; i < n; ++i) {
            ucx_req_t *u = reqs[i].handle;

            if (NULL == u) {
                continue;
            }
            if (!step(rails, u)) {
                left += pending_pieces(u);
            } else if (u->failed) {
                return QTOPO_XPORT_ERR;
            } else {
                finish(u, &reqs[i]);
            }
        }
        if (0 == left) {
            return QTOPO_XPORT_OK;
        }
        mca_coll_qtopo_rails_progress(rails);
        opal_progress();
        if (0 != ++polls % QTOPO_UCX_WATCH_EVERY) {
            continue;
        }
        if (QTOPO_NOTICE_NONE != mca_coll_qtopo_notice(c->comm)) {
            return QTOPO_XPORT_ERR;
        }
        now = qtopo_now();
        if (left != before) {
            before = left;
            last = now;
        } else if (now - last > rail_timeout() && suspect_stalled(rails, reqs, n, now - last)) {
            return QTOPO_XPORT_ERR;
        }
    }
}

/* Time a cancelled receive gets to end (one that was matched goes on until its data
 * is in, which on a failed rail never happens). */
#define QTOPO_UCX_CANCEL_SECONDS 0.5

/* Receives still pending are cancelled and waited for (all of them together for a
 * while); sends are left to finish on their own (their buffers stay alive:
 * coll_qtopo_allreduce.c pins the scratch), those to peers on this node after a grace
 * period (the PML transport's). */
static void ucx_abandon(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    mca_coll_qtopo_ucx_ctx_t *c = x->ctx;
    mca_coll_qtopo_rails_t *rails = c->rails;
    double deadline = qtopo_now() + QTOPO_UCX_CANCEL_SECONDS;
    int i, r;

    for (i = 0; i < n; ++i) {
        ucx_req_t *u = reqs[i].handle;

        for (r = 0; NULL != u && u->recv && r < u->nrails; ++r) {
            if (NULL != u->piece[r]) {
                ucp_request_cancel(rails->worker[r], u->piece[r]);
            }
        }
        if (NULL != u) {
            mca_coll_qtopo_xport_pml_drop(&u->pml, true, deadline);
        }
    }
    for (i = 0; i < n; ++i) {
        ucx_req_t *u = reqs[i].handle;

        if (NULL == u) {
            continue;
        }
        mca_coll_qtopo_xport_pml_drop(&u->pml, false, deadline);
        for (r = 0; r < u->nrails; ++r) {
            if (NULL == u->piece[r]) {
                continue;
            }
            if (u->recv && !mca_coll_qtopo_rails_wait(rails, r, u->piece[r], deadline)) {
                /* matched and still being written: the rail cannot be trusted with
                 * this memory any more, so it is named in the end agreement (and
                 * closed once it is out of service) */
                mca_coll_qtopo_rails_suspect(rails, r, u->peer, "a receive could not be "
                                             "cancelled");
            }
            ucp_request_free(u->piece[r]);
        }
        free(u);
        reqs[i].handle = NULL;
    }
}

void mca_coll_qtopo_xport_ucx_init(qtopo_xport_t *x, mca_coll_qtopo_ucx_ctx_t *ctx,
                                   mca_coll_qtopo_rails_t *rails,
                                   struct ompi_communicator_t *comm, const int *ranks, int rank,
                                   int size, int tag)
{
    ctx->rails = rails;
    ctx->comm = comm;
    ctx->ranks = ranks;
    ctx->fail_waits = false;
    mca_coll_qtopo_xport_pml_init(&ctx->pml_x, &ctx->pml_ctx, comm, ranks, rank, size, tag);
    x->rank = rank;
    x->size = size;
    x->isend = ucx_isend;
    x->irecv = ucx_irecv;
    x->wait = ucx_wait;
    x->abandon = ucx_abandon;
    x->ctx = ctx;
}

#endif /* QTOPO_HAVE_UCX */
