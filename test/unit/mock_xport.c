/*
 * Thread-based mock transport for the algorithm unit tests (see mock_xport.h).
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mock_xport.h"

typedef struct mock_msg {
    void *data;
    size_t bytes;
} mock_msg_t;

typedef struct mock_pair {
    mock_msg_t *msgs; /* msgs[i] = i-th message sent on this pair */
    size_t nsent, cap, nposted, nmatched;
} mock_pair_t;

typedef struct mock_recv {
    int src;
    size_t seq;
    void *buf;
    size_t cap;
} mock_recv_t;

struct mock_world {
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mock_pair_t *pairs; /* pairs[src * n + dst] */
    size_t *bytes_sent;
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

mock_world_t *mock_world_create(int n)
{
    mock_world_t *w = calloc(1, sizeof(*w));

    w->n = n;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pairs = calloc((size_t) n * n, sizeof(*w->pairs));
    w->bytes_sent = calloc((size_t) n, sizeof(*w->bytes_sent));
    return w;
}

void mock_world_destroy(mock_world_t *w)
{
    size_t p, i;

    for (p = 0; p < (size_t) w->n * w->n; ++p) {
        for (i = 0; i < w->pairs[p].nsent; ++i) {
            free(w->pairs[p].msgs[i].data);
        }
        free(w->pairs[p].msgs);
    }
    free(w->pairs);
    free(w->bytes_sent);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static int mock_isend(qtopo_xport_t *x, int peer, const void *buf, size_t bytes, qtopo_req_t *req)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    mock_pair_t *p = &w->pairs[c->rank * w->n + world_peer(c, peer)];
    void *copy = malloc(bytes ? bytes : 1);

    memcpy(copy, buf, bytes);
    pthread_mutex_lock(&w->mu);
    if (p->nsent == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 16;
        p->msgs = realloc(p->msgs, p->cap * sizeof(*p->msgs));
    }
    p->msgs[p->nsent].data = copy;
    p->msgs[p->nsent].bytes = bytes;
    p->nsent++;
    w->bytes_sent[c->rank] += bytes;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    req->handle = NULL; /* eager: complete at once */
    return QTOPO_XPORT_OK;
}

static int mock_irecv(qtopo_xport_t *x, int peer, void *buf, size_t cap, qtopo_req_t *req)
{
    mock_ctx_t *c = x->ctx;
    mock_world_t *w = c->w;
    mock_recv_t *r = malloc(sizeof(*r));

    pthread_mutex_lock(&w->mu);
    r->src = world_peer(c, peer);
    r->seq = w->pairs[r->src * w->n + c->rank].nposted++;
    pthread_mutex_unlock(&w->mu);
    r->buf = buf;
    r->cap = cap;
    req->handle = r;
    return QTOPO_XPORT_OK;
}

static int mock_wait_one(mock_ctx_t *c, qtopo_req_t *req)
{
    mock_world_t *w = c->w;
    mock_recv_t *r = req->handle;
    mock_pair_t *p = &w->pairs[r->src * w->n + c->rank];
    mock_msg_t *m;
    int rc = QTOPO_XPORT_OK;

    pthread_mutex_lock(&w->mu);
    while (p->nsent <= r->seq) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    m = &p->msgs[r->seq];
    if (m->bytes > r->cap) {
        rc = QTOPO_XPORT_ERR; /* MPI would report a truncation error */
    } else {
        memcpy(r->buf, m->data, m->bytes);
    }
    req->bytes = m->bytes;
    free(m->data);
    m->data = NULL;
    p->nmatched++;
    pthread_mutex_unlock(&w->mu);
    free(r);
    req->handle = NULL;
    return rc;
}

static int mock_wait(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    int i, rc = QTOPO_XPORT_OK;

    for (i = 0; i < n; ++i) {
        if (NULL != reqs[i].handle) {
            int rc1 = mock_wait_one(x->ctx, &reqs[i]);
            rc = QTOPO_XPORT_OK == rc ? rc1 : rc;
        }
    }
    return rc;
}

/* Sends are eager (complete at once); a pending receive is dropped unmatched. */
static void mock_abandon(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    int i;

    (void) x;
    for (i = 0; i < n; ++i) {
        free(reqs[i].handle);
        reqs[i].handle = NULL;
    }
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

size_t mock_bytes_sent(mock_world_t *w, int rank)
{
    return w->bytes_sent[rank];
}

size_t mock_unmatched(mock_world_t *w)
{
    size_t p, total = 0;

    for (p = 0; p < (size_t) w->n * w->n; ++p) {
        total += w->pairs[p].nsent - w->pairs[p].nmatched;
    }
    return total;
}

typedef struct mock_thread {
    pthread_t tid;
    int rank, rc;
    int (*fn)(int, void *);
    void *arg;
} mock_thread_t;

static void *mock_thread_main(void *p)
{
    mock_thread_t *t = p;

    t->rc = t->fn(t->rank, t->arg);
    return NULL;
}

int mock_run(int n, int (*fn)(int rank, void *arg), void *arg)
{
    mock_thread_t *t = calloc((size_t) n, sizeof(*t));
    int i, failed = 0;

    for (i = 0; i < n; ++i) {
        t[i].rank = i;
        t[i].fn = fn;
        t[i].arg = arg;
        pthread_create(&t[i].tid, NULL, mock_thread_main, &t[i]);
    }
    for (i = 0; i < n; ++i) {
        pthread_join(t[i].tid, NULL);
        failed += 0 != t[i].rc;
    }
    free(t);
    return failed;
}
