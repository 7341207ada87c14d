/*
 * Thread-based mock transport for the algorithm unit tests (see mock_xport.h for the
 * modes, fault injection and deadlock detection). One mutex guards the whole world;
 * copies happen under it, which is fine at test sizes.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock_xport.h"

#define MOCK_POISON 0xFF  /* 0xFFFFFFFF is a NaN as a float */
#define MOCK_PAD 0xAB     /* the extra bytes of a lengthened message */
#define MOCK_MAX_REPORTS 8

enum { KIND_SEND, KIND_RECV };

typedef struct mock_recv mock_recv_t;

/* Both kinds start with `kind`, so a request handle tells which one it is. */
typedef struct mock_msg {
    int kind;
    struct mock_msg *next; /* the pair's queue of unmatched messages */
    int src, dst;          /* world ranks */
    const void *buf;       /* the sender's buffer */
    size_t src_bytes;      /* bytes the sender posted */
    size_t bytes;          /* bytes on the wire (differs under fault injection) */
    void *snap;            /* lifetime modes: the sender's buffer at isend */
    void *wire;            /* the bytes read from the sender, NULL until read */
    int matched, received, send_done;
} mock_msg_t;

struct mock_recv {
    int kind;
    mock_recv_t *next; /* the pair's queue of unmatched receives */
    int src, dst;
    void *buf;
    size_t cap;
    void *saved;     /* lifetime modes: the buffer's contents at irecv */
    mock_msg_t *msg; /* the matched message */
    int delivered;   /* the message was copied into buf at the match */
};

typedef struct mock_pair {
    mock_msg_t *msg_head, *msg_tail;  /* sent, not matched */
    mock_recv_t *rcv_head, *rcv_tail; /* posted, not matched */
} mock_pair_t;

struct mock_world {
    int n, mode;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mock_pair_t *pairs; /* pairs[src * n + dst] */
    size_t *bytes_sent, *nsent, *released;
    size_t unreceived, pending, violations, deadlocks, abandoned_sends;
    int fault_src, fault_dest;
    size_t fault_k;
    long fault_delta;
    int fault_silent;
    int abandon_waits_sends; /* abandon() waits for a send's receiver, as ob1's does */
    size_t abandon_blocked;  /* ... and had to be released from a deadlock */
    int wait_leaves_pending; /* a failed wait leaves what it did not complete pending */
    int live, nblocked; /* threads running under mock_world_run, and blocked in a wait */
    void **waiting;     /* waiting[rank]: the request a blocked rank waits on */
    int *kicked;        /* kicked[rank]: released from a deadlock, not yet woken */
    void ***pend;       /* pend[rank][0..npend[rank]): the rank's pending requests */
    size_t *npend;
};

typedef struct mock_ctx {
    mock_world_t *w;
    int rank;         /* world rank */
    const int *ranks; /* group index -> world rank, NULL for the whole world */
} mock_ctx_t;

static int world_peer(const mock_ctx_t *c, int peer)
{
    return NULL == c->ranks ? peer : c->ranks[peer];
}

static int lifetime(const mock_world_t *w)
{
    return MOCK_EAGER != w->mode;
}

static void *memdup(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);

    memcpy(q, p, n);
    return q;
}

static void violation(mock_world_t *w, int src, int dst, const char *what)
{
    if (w->violations++ < MOCK_MAX_REPORTS) {
        fprintf(stderr, "mock transport: message %d -> %d: %s\n", src, dst, what);
    }
}

static int is_poison(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; ++i) {
        if (MOCK_POISON != b[i]) {
            return 0;
        }
    }
    return 1;
}

mock_world_t *mock_world_create(int n)
{
    mock_world_t *w = calloc(1, sizeof(*w));
    const char *env = getenv("QTOPO_MOCK_ABANDON");

    w->n = n;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pairs = calloc((size_t) n * n, sizeof(*w->pairs));
    w->bytes_sent = calloc((size_t) n, sizeof(*w->bytes_sent));
    w->nsent = calloc((size_t) n, sizeof(*w->nsent));
    w->released = calloc((size_t) n, sizeof(*w->released));
    w->waiting = calloc((size_t) n, sizeof(*w->waiting));
    w->kicked = calloc((size_t) n, sizeof(*w->kicked));
    w->pend = calloc((size_t) n, sizeof(*w->pend));
    w->npend = calloc((size_t) n, sizeof(*w->npend));
    w->fault_src = -1;
    w->fault_dest = -1;
    w->abandon_waits_sends = NULL != env && 0 == strcmp(env, "wait");
    env = getenv("QTOPO_MOCK_FAILED_WAIT");
    /* as the PML transport: a failed wait leaves what it did not complete for abandon()
     * (QTOPO_MOCK_FAILED_WAIT=complete: it completes or drops them itself) */
    w->wait_leaves_pending = NULL == env || 0 != strcmp(env, "complete");
    return w;
}

static void msg_free(mock_msg_t *m)
{
    free(m->snap);
    free(m->wire);
    free(m);
}

/* Messages are freed once both sides are done with them; what is left here was never
 * received (or its requests were never completed, which mock_pending reports). */
static void msg_release(mock_msg_t *m)
{
    if (m->send_done && m->received) {
        msg_free(m);
    }
}

/* Frees the requests an algorithm never completed (mock_pending counted them). */
static void free_pending(mock_world_t *w)
{
    size_t p, i;

    for (p = 0; p < (size_t) w->n; ++p) {
        for (i = 0; i < w->npend[p]; ++i) {
            mock_msg_t *m = w->pend[p][i];
            mock_recv_t *r = w->pend[p][i];
            if (KIND_SEND == m->kind) {
                m->send_done = 1;
                msg_release(m); /* else freed with its queue, or by its receive below */
                continue;
            }
            if (NULL != r->msg) {
                r->msg->received = 1;
                msg_release(r->msg);
            }
            free(r->saved);
            free(r);
        }
        free(w->pend[p]);
    }
}

void mock_world_destroy(mock_world_t *w)
{
    size_t p;

    free_pending(w);

    for (p = 0; p < (size_t) w->n * w->n; ++p) {
        while (NULL != w->pairs[p].msg_head) {
            mock_msg_t *m = w->pairs[p].msg_head;
            w->pairs[p].msg_head = m->next;
            if (m->send_done) {
                msg_free(m);
            }
        }
    }
    free(w->pairs);
    free(w->bytes_sent);
    free(w->nsent);
    free(w->released);
    free(w->waiting);
    free(w->kicked);
    free(w->pend);
    free(w->npend);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void mock_world_set_mode(mock_world_t *w, int mode)
{
    w->mode = mode;
}

void mock_world_set_fault(mock_world_t *w, const mock_fault_t *f)
{
    if (0 != f->delta) {
        w->fault_silent = f->silent;
        w->fault_src = f->src;
        w->fault_k = f->k;
        w->fault_delta = f->delta;
    }
}

size_t mock_fault_pick(size_t msgs, int where)
{
    return 0 == where ? 0 : (1 == where ? msgs / 2 : msgs - 1);
}

void mock_world_set_abandon_waits_sends(mock_world_t *w, int on)
{
    w->abandon_waits_sends = on;
}

size_t mock_abandon_blocked(mock_world_t *w)
{
    return w->abandon_blocked;
}

int mock_fault_dest(mock_world_t *w)
{
    return w->fault_dest;
}

/* ---- matching and the lifetime checks (all under w->mu) ------------------------------- */

/* The bytes a request's buffer spans, and the rank that owns the request. */
static void req_span(const void *h, const char **lo, const char **hi, int *owner)
{
    const mock_msg_t *m = h;
    const mock_recv_t *r = h;

    if (KIND_SEND == m->kind) {
        *lo = m->buf;
        *hi = *lo + m->src_bytes;
        *owner = m->src;
    } else {
        *lo = r->buf;
        *hi = *lo + r->cap;
        *owner = r->dst;
    }
}

/* Tracks a pending request. In the lifetime modes, its buffer may overlap no pending
 * receive buffer of its rank, and a receive buffer no pending send buffer either
 * (pending sends may share bytes). */
static void add_pending(mock_world_t *w, void *h)
{
    const char *lo, *hi, *plo, *phi;
    int owner, pown, kind = *(int *) h;
    size_t i;

    req_span(h, &lo, &hi, &owner);
    for (i = 0; lifetime(w) && i < w->npend[owner]; ++i) {
        void *p = w->pend[owner][i];
        req_span(p, &plo, &phi, &pown);
        if ((KIND_RECV == kind || KIND_RECV == *(int *) p) && lo < phi && plo < hi) {
            violation(w, owner, owner, KIND_RECV == kind
                      ? "receive posted into the buffer of a pending request"
                      : "send posted from the buffer of a pending receive");
        }
    }
    w->pend[owner] = realloc(w->pend[owner], (w->npend[owner] + 1) * sizeof(void *));
    w->pend[owner][w->npend[owner]++] = h;
}

static void remove_pending(mock_world_t *w, void *h)
{
    const char *lo, *hi;
    int owner;
    size_t i;

    req_span(h, &lo, &hi, &owner);
    for (i = 0; i < w->npend[owner]; ++i) {
        if (w->pend[owner][i] == h) {
            w->pend[owner][i] = w->pend[owner][--w->npend[owner]];
            return;
        }
    }
}

static void check_send_buffer(mock_world_t *w, const mock_msg_t *m, const char *when)
{
    if (NULL != m->snap && 0 != memcmp(m->buf, m->snap, m->src_bytes)) {
        violation(w, m->src, m->dst, when);
    }
}

/* Reads the message's bytes from the sender's buffer. */
static void read_send_buffer(mock_world_t *w, mock_msg_t *m)
{
    size_t n = m->bytes < m->src_bytes ? m->bytes : m->src_bytes;

    check_send_buffer(w, m, "send buffer written after isend, before the match");
    m->wire = malloc(m->bytes ? m->bytes : 1);
    memcpy(m->wire, m->buf, n);
    memset((char *) m->wire + n, MOCK_PAD, m->bytes - n);
}

static void match(mock_world_t *w, mock_msg_t *m, mock_recv_t *r)
{
    m->matched = 1;
    r->msg = m;
    if (NULL == m->wire) {
        read_send_buffer(w, m);
    }
    if (MOCK_LIFETIME_EARLY == w->mode && !is_poison(r->buf, r->cap)) {
        violation(w, r->src, r->dst, "receive buffer written while the receive was pending");
    }
    if (MOCK_LIFETIME_EARLY == w->mode && m->bytes <= r->cap) {
        memcpy(r->buf, m->wire, m->bytes);
        r->delivered = 1;
    }
    pthread_cond_broadcast(&w->cv);
}

static mock_pair_t *pair_of(mock_world_t *w, int src, int dst)
{
    return &w->pairs[(size_t) src * (size_t) w->n + (size_t) dst];
}

static void check_request_free(mock_world_t *w, const qtopo_req_t *req, int src, int dst)
{
    if (NULL != req->handle) {
        violation(w, src, dst, "posted on a request that is still pending");
    }
}

/* ---- the transport --------------------------------------------------------------------- */

static size_t faulty_size(mock_world_t *w, int src, int dst, size_t bytes)
{
    if (w->nsent[src]++ != w->fault_k || src != w->fault_src) {
        return bytes;
    }
    w->fault_dest = dst;
    if (w->fault_delta < 0 && (size_t) -w->fault_delta > bytes) {
        return 0;
    }
    return bytes + (size_t) w->fault_delta;
}

/* After a fault with `silent`, the faulty rank sends nothing more, like a failed one. */
static int lost_after_fault(const mock_world_t *w, int src)
{
    return w->fault_silent && src == w->fault_src && w->nsent[src] > w->fault_k + 1;
}

static int mock_isend(qtopo_xport_t *x, int peer, const void *buf, size_t bytes, qtopo_req_t *req)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    mock_msg_t *m = calloc(1, sizeof(*m));
    mock_pair_t *p;

    m->kind = KIND_SEND;
    m->src = c->rank;
    m->dst = world_peer(c, peer);
    m->buf = buf;
    m->src_bytes = bytes;
    p = pair_of(w, m->src, m->dst);
    pthread_mutex_lock(&w->mu);
    check_request_free(w, req, m->src, m->dst);
    m->bytes = faulty_size(w, m->src, m->dst, bytes);
    req->recv = 0;
    if (lifetime(w)) {
        add_pending(w, m);
        m->snap = memdup(buf, bytes);
        w->pending++;
        req->handle = m;
    } else {
        read_send_buffer(w, m); /* eager: copied now, complete at once */
        m->send_done = 1;
        req->handle = NULL;
    }
    w->bytes_sent[m->src] += bytes;
    if (lost_after_fault(w, m->src)) {
        m->received = 1; /* never will be: free it once the send completes */
        if (!lifetime(w)) {
            msg_free(m);
        }
    } else if (w->unreceived++, NULL != p->rcv_head) {
        mock_recv_t *r = p->rcv_head;
        p->rcv_head = r->next;
        match(w, m, r);
    } else {
        if (NULL == p->msg_head) {
            p->msg_head = m;
        } else {
            p->msg_tail->next = m;
        }
        p->msg_tail = m;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return QTOPO_XPORT_OK;
}

static int mock_irecv(qtopo_xport_t *x, int peer, void *buf, size_t cap, qtopo_req_t *req)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    mock_recv_t *r = calloc(1, sizeof(*r));
    mock_pair_t *p;

    r->kind = KIND_RECV;
    r->src = world_peer(c, peer);
    r->dst = c->rank;
    r->buf = buf;
    r->cap = cap;
    p = pair_of(w, r->src, r->dst);
    pthread_mutex_lock(&w->mu);
    check_request_free(w, req, r->src, r->dst);
    add_pending(w, r);
    if (lifetime(w)) {
        r->saved = memdup(buf, cap);
        memset(buf, MOCK_POISON, cap);
    }
    w->pending++;
    if (NULL != p->msg_head) {
        mock_msg_t *m = p->msg_head;
        p->msg_head = m->next;
        match(w, m, r);
    } else {
        if (NULL == p->rcv_head) {
            p->rcv_head = r;
        } else {
            p->rcv_tail->next = r;
        }
        p->rcv_tail = r;
    }
    pthread_mutex_unlock(&w->mu);
    req->handle = r;
    req->recv = 1;
    return QTOPO_XPORT_OK;
}

static int handle_ready(const void *h)
{
    const mock_msg_t *m = h;

    return KIND_SEND == m->kind ? m->matched : NULL != ((const mock_recv_t *) h)->msg;
}

/* Every live thread waits, and no awaited request is ready: nothing can move. */
static int stuck(const mock_world_t *w)
{
    int r;

    if (0 == w->live || w->nblocked != w->live) {
        return 0;
    }
    for (r = 0; r < w->n; ++r) {
        if (NULL != w->waiting[r] && handle_ready(w->waiting[r])) {
            return 0; /* woken already, not yet running */
        }
    }
    return 1;
}

static void release_all(mock_world_t *w)
{
    int r;

    for (r = 0; r < w->n; ++r) {
        if (NULL != w->waiting[r]) {
            w->waiting[r] = NULL;
            w->kicked[r] = 1;
        }
    }
    w->nblocked = 0;
    w->deadlocks++;
    pthread_cond_broadcast(&w->cv);
}

/* Blocks until the request's match; with the world under mock_world_run, returns an
 * error instead when every live thread is blocked (a deadlock). */
static int block_until_matched(mock_ctx_t *c, void *handle)
{
    mock_world_t *w = c->w;

    while (!handle_ready(handle)) {
        w->waiting[c->rank] = handle;
        w->nblocked++;
        if (stuck(w)) {
            release_all(w);
        } else {
            pthread_cond_wait(&w->cv, &w->mu);
        }
        if (w->kicked[c->rank]) {
            w->kicked[c->rank] = 0;
            w->released[c->rank]++;
            return QTOPO_XPORT_ERR;
        }
        w->waiting[c->rank] = NULL;
        w->nblocked--;
    }
    return QTOPO_XPORT_OK;
}

static void send_complete(mock_world_t *w, mock_msg_t *m)
{
    check_send_buffer(w, m, "send buffer written before the send completed");
    remove_pending(w, m);
    free(m->snap);
    m->snap = NULL;
    m->send_done = 1;
    w->pending--;
    msg_release(m);
}

/* Completes a matched receive: checks what the lifetime modes require of the buffer,
 * fills it (unless the match did) and restores the bytes beyond the message. */
static int recv_complete(mock_world_t *w, mock_recv_t *r, qtopo_req_t *req)
{
    mock_msg_t *m = r->msg;
    int rc = QTOPO_XPORT_OK;

    if (r->delivered && 0 != memcmp(r->buf, m->wire, m->bytes)) {
        violation(w, r->src, r->dst, "receive buffer written while the receive was pending");
    }
    if (lifetime(w) && !is_poison((char *) r->buf + (r->delivered ? m->bytes : 0),
                                  r->cap - (r->delivered ? m->bytes : 0))) {
        violation(w, r->src, r->dst, "receive buffer written while the receive was pending");
    }
    if (m->bytes > r->cap) {
        rc = QTOPO_XPORT_ERR; /* MPI would report a truncation error */
        if (lifetime(w)) {
            memcpy(r->buf, r->saved, r->cap);
        }
    } else {
        if (!r->delivered) {
            memcpy(r->buf, m->wire, m->bytes);
        }
        if (lifetime(w)) {
            memcpy((char *) r->buf + m->bytes, (char *) r->saved + m->bytes, r->cap - m->bytes);
        }
    }
    remove_pending(w, r);
    req->bytes = m->bytes;
    m->received = 1;
    w->unreceived--;
    w->pending--;
    msg_release(m);
    free(r->saved);
    free(r);
    return rc;
}

/* Takes an unmatched receive out of its pair's queue and restores its buffer. */
static void recv_cancel(mock_world_t *w, mock_recv_t *r)
{
    mock_pair_t *p = pair_of(w, r->src, r->dst);
    mock_recv_t **pp = &p->rcv_head, *prev = NULL;

    while (*pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = r->next;
    if (p->rcv_tail == r) {
        p->rcv_tail = prev;
    }
    if (NULL != r->saved) {
        memcpy(r->buf, r->saved, r->cap);
    }
    remove_pending(w, r);
    w->pending--;
    free(r->saved);
    free(r);
}

/* Ends requests without waiting: an unmatched send is completed by copying its bytes,
 * a matched receive completes, an unmatched one is cancelled. */
static void abandon_locked(mock_world_t *w, qtopo_req_t *reqs, int n)
{
    int i;

    for (i = 0; i < n; ++i) {
        void *h = reqs[i].handle;
        if (NULL == h) {
            continue;
        }
        if (KIND_SEND == *(int *) h) {
            mock_msg_t *m = h;
            if (NULL == m->wire) {
                read_send_buffer(w, m); /* a rendezvous PML would wait for the receiver */
                w->abandoned_sends++;
            }
            send_complete(w, m);
        } else if (NULL != ((mock_recv_t *) h)->msg) {
            (void) recv_complete(w, h, &reqs[i]);
        } else {
            recv_cancel(w, h);
        }
        reqs[i].handle = NULL;
    }
}

static int mock_wait(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    int i, rc = QTOPO_XPORT_OK;

    pthread_mutex_lock(&w->mu);
    for (i = 0; i < n; ++i) {
        int rc1 = QTOPO_XPORT_OK;
        if (NULL == reqs[i].handle) {
            continue;
        }
        if (QTOPO_XPORT_OK != block_until_matched(c, reqs[i].handle)) {
            /* released from a deadlock, as from a failed peer: this wait ends every
             * request it was given with an error, or leaves them to abandon() */
            if (!w->wait_leaves_pending) {
                abandon_locked(w, reqs + i, n - i);
            }
            rc = QTOPO_XPORT_ERR;
            break;
        }
        if (KIND_SEND == *(int *) reqs[i].handle) {
            send_complete(w, reqs[i].handle);
        } else {
            rc1 = recv_complete(w, reqs[i].handle, &reqs[i]);
        }
        reqs[i].handle = NULL;
        rc = QTOPO_XPORT_OK == rc ? rc1 : rc;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void mock_abandon(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    int i;

    pthread_mutex_lock(&w->mu);
    for (i = 0; w->abandon_waits_sends && i < n; ++i) {
        if (NULL != reqs[i].handle && KIND_SEND == *(int *) reqs[i].handle
            && QTOPO_XPORT_OK != block_until_matched(c, reqs[i].handle)) {
            w->abandon_blocked++;
        }
    }
    abandon_locked(w, reqs, n);
    pthread_mutex_unlock(&w->mu);
}

void mock_xport_init(mock_world_t *w, int rank, qtopo_xport_t *x)
{
    mock_xport_init_group(w, rank, NULL, w->n, rank, x);
}

void mock_xport_init_group(mock_world_t *w, int world_rank, const int *ranks, int n, int index,
                           qtopo_xport_t *x)
{
    mock_ctx_t *c = calloc(1, sizeof(*c));

    c->w = w;
    c->rank = world_rank;
    c->ranks = ranks;
    x->rank = index;
    x->size = n;
    x->isend = mock_isend;
    x->irecv = mock_irecv;
    x->wait = mock_wait;
    x->abandon = mock_abandon;
    x->ctx = c;
}

void mock_xport_fini(qtopo_xport_t *x)
{
    free(x->ctx);
    x->ctx = NULL;
}

/* ---- counters --------------------------------------------------------------------------- */

size_t mock_bytes_sent(mock_world_t *w, int rank)
{
    return w->bytes_sent[rank];
}

size_t mock_msgs_sent(mock_world_t *w, int rank)
{
    return w->nsent[rank];
}

size_t mock_unmatched(mock_world_t *w)
{
    return w->unreceived;
}

size_t mock_pending(mock_world_t *w)
{
    return w->pending;
}

size_t mock_violations(mock_world_t *w)
{
    return w->violations;
}

size_t mock_deadlocks(mock_world_t *w)
{
    return w->deadlocks;
}

size_t mock_released(mock_world_t *w, int rank)
{
    return w->released[rank];
}

size_t mock_abandoned_sends(mock_world_t *w)
{
    return w->abandoned_sends;
}

/* ---- per-rank arrays ------------------------------------------------------------------ */

float **mock_arrays_copy(float *const *a, int n, size_t count)
{
    float **c = calloc((size_t) n, sizeof(float *));
    int r;

    for (r = 0; r < n; ++r) {
        c[r] = malloc(count * sizeof(float) + 1);
        memcpy(c[r], a[r], count * sizeof(float));
    }
    return c;
}

void mock_arrays_free(float **a, int n)
{
    int r;

    for (r = 0; NULL != a && r < n; ++r) {
        free(a[r]);
    }
    free(a);
}

size_t mock_arrays_differ(float *const *a, float *const *b, int n, size_t count)
{
    size_t bad = 0;
    int r;

    for (r = 0; r < n; ++r) {
        bad += 0 != memcmp(a[r], b[r], count * sizeof(float));
    }
    return bad;
}

/* ---- fault checks ---------------------------------------------------------------------- */

static size_t fault_runs, fault_released, fault_abandoned, fault_abandon_blocked;

int mock_fault_check(mock_world_t *w, const char *what, const int *rc, float *const *out,
                     float *const *clean, size_t count)
{
    int dest = w->fault_dest, r, ok = 1;
    size_t wrong = 0;

    if (0 > dest || 0 == rc[dest] || 0 != w->released[dest]) {
        fprintf(stderr, "%s: receiver %d returned %d, was released from a deadlock %zu times\n",
                what, dest, 0 <= dest ? rc[dest] : 0, 0 <= dest ? w->released[dest] : 0);
        ok = 0;
    }
    if (0 != w->pending || 0 != w->violations) {
        fprintf(stderr, "%s: %zu requests left pending, %zu violations\n", what, w->pending,
                w->violations);
        ok = 0;
    }
    for (r = 0; r < w->n; ++r) {
        wrong += 0 == rc[r] && 0 != memcmp(out[r], clean[r], count * sizeof(float));
        fault_released += 0 != w->released[r];
    }
    if (0 != wrong) {
        fprintf(stderr, "%s: %zu ranks returned success with a wrong result\n", what, wrong);
        ok = 0;
    }
    fault_runs++;
    fault_abandoned += w->abandoned_sends;
    fault_abandon_blocked += w->abandon_blocked;
    return ok;
}

void mock_fault_summary(const char *name)
{
    printf("%s faults: %zu runs; ranks other than the receiver that blocked until the deadlock "
           "detection released them: %zu; sends abandoned unmatched: %zu; abandon() calls that "
           "blocked (QTOPO_MOCK_ABANDON=wait): %zu\n", name, fault_runs, fault_released,
           fault_abandoned, fault_abandon_blocked);
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct mock_thread {
    pthread_t tid;
    int rank, rc;
    int (*fn)(int, void *);
    void *arg;
    mock_world_t *w;
} mock_thread_t;

static void *mock_thread_main(void *p)
{
    mock_thread_t *t = p;
    mock_world_t *w = t->w;

    t->rc = t->fn(t->rank, t->arg);
    pthread_mutex_lock(&w->mu);
    w->live--;
    if (stuck(w)) {
        release_all(w); /* the ones left wait on each other or on this one */
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int mock_world_run(mock_world_t *w, int (*fn)(int rank, void *arg), void *arg)
{
    mock_thread_t *t = calloc((size_t) w->n, sizeof(*t));
    int i, failed = 0;

    w->live = w->n;
    for (i = 0; i < w->n; ++i) {
        t[i].rank = i;
        t[i].fn = fn;
        t[i].arg = arg;
        t[i].w = w;
        pthread_create(&t[i].tid, NULL, mock_thread_main, &t[i]);
    }
    for (i = 0; i < w->n; ++i) {
        pthread_join(t[i].tid, NULL);
        failed += 0 != t[i].rc;
    }
    free(t);
    return failed;
}
