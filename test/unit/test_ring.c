/*
 * Unit test of the exact ring allreduce (coll_qtopo_ring.c) over the mock transport:
 * 1..64 "ranks" as threads, counts around every boundary (0, 1, fewer elements than
 * ranks, non-multiples of ranks and segments), several segment sizes, in place and
 * not. Checks: every rank bit-identical, each element within the float rounding
 * bound of a double-precision reference (exact for integer-valued data), total
 * bytes on the wire equal to the bandwidth optimum 2(n-1) * count * 4, nothing left
 * unmatched.
 *
 * Also: the same in both lifetime modes of the mock (mock_xport.h) at 1, 2, 3, 5, 8
 * ranks, bit for bit against the eager mode; message-size faults (the receiver errs,
 * never blocks afterwards, leaves nothing posted); and six deliberately broken
 * exchanges that the lifetime modes must catch, so that these checks can fail.
 */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_algo.h"
#include "mock_xport.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

typedef struct ring_case {
    int n;
    size_t count;
    size_t seg_bytes;
    int in_place;
    int integers; /* integer-valued inputs: the sum must be exact */
    mock_world_t *w;
    float **in;   /* in[r]: rank r's contribution (copied, as MPI_IN_PLACE overwrites) */
    float **out;  /* out[r]: rank r's result */
    int *rc;
    mock_fault_t fault;
    size_t scratch_max; /* 0: a receive slot per segment */
} ring_case_t;

static float input_value(const ring_case_t *t, int rank, size_t i)
{
    unsigned long h = (unsigned long) (rank + 1) * 2654435761u ^ (unsigned long) i * 40503u;

    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    if (t->integers) {
        return (float) ((long) (h % 2001) - 1000);
    }
    return (float) ((double) (h % 1000003) / 500001.5 - 1.0) * (1.0f + (float) (i % 7));
}

static int ring_rank_main(int rank, void *arg)
{
    ring_case_t *t = arg;
    qtopo_xport_t x;
    void *scratch =
        malloc(qtopo_ring_scratch_bytes(t->count, t->n, t->seg_bytes, t->scratch_max) + 1);
    const float *sbuf;

    mock_xport_init(t->w, rank, &x);
    if (t->in_place) {
        memcpy(t->out[rank], t->in[rank], t->count * sizeof(float));
        sbuf = t->out[rank];
    } else {
        sbuf = t->in[rank];
    }
    t->rc[rank] = qtopo_ring_allreduce(&x, sbuf, t->out[rank], t->count, t->seg_bytes,
                                       t->scratch_max, scratch);
    mock_xport_fini(&x);
    free(scratch);
    return t->rc[rank];
}

static void check_results(const ring_case_t *t)
{
    size_t i, bad_ident = 0, bad_bound = 0, total = 0;
    int r;

    for (r = 0; r < t->n; ++r) {
        CHECK(0 == t->rc[r], "n=%d count=%zu rank %d rc=%d", t->n, t->count, r, t->rc[r]);
        total += mock_bytes_sent(t->w, r);
    }
    for (i = 0; i < t->count; ++i) {
        double ref = 0.0, mag = 0.0;
        for (r = 0; r < t->n; ++r) {
            ref += t->in[r][i];
            mag += fabs(t->in[r][i]);
            bad_ident += 0 != memcmp(&t->out[r][i], &t->out[0][i], sizeof(float));
        }
        /* n-1 float additions, each off by at most half an ulp of the running sum */
        double bound = t->integers ? 0.0 : (t->n - 1) * (FLT_EPSILON / 2) * mag * 1.0001;
        bad_bound += fabs((double) t->out[0][i] - ref) > bound;
    }
    CHECK(0 == bad_ident, "n=%d count=%zu seg=%zu inplace=%d: %zu elements differ across ranks",
          t->n, t->count, t->seg_bytes, t->in_place, bad_ident);
    CHECK(0 == bad_bound, "n=%d count=%zu seg=%zu inplace=%d: %zu elements outside the bound",
          t->n, t->count, t->seg_bytes, t->in_place, bad_bound);
    if (t->n > 1) {
        CHECK(total == 2 * (size_t) (t->n - 1) * t->count * sizeof(float),
              "n=%d count=%zu: %zu bytes on the wire, expected %zu", t->n, t->count, total,
              2 * (size_t) (t->n - 1) * t->count * sizeof(float));
    }
    CHECK(0 == mock_unmatched(t->w), "n=%d count=%zu: %zu messages never received", t->n,
          t->count, mock_unmatched(t->w));
}

static ring_case_t *case_new(int n, size_t count, size_t seg_bytes, int in_place, int integers)
{
    ring_case_t *t = calloc(1, sizeof(*t));
    int r;
    size_t i;

    *t = (ring_case_t) {n, count, seg_bytes, in_place, integers, NULL, NULL, NULL, NULL,
                         {0, 0, 0, 0}, 0};
    t->in = calloc((size_t) n, sizeof(float *));
    t->out = calloc((size_t) n, sizeof(float *));
    t->rc = calloc((size_t) n, sizeof(int));
    for (r = 0; r < n; ++r) {
        t->in[r] = malloc(count * sizeof(float) + 1);
        t->out[r] = malloc(count * sizeof(float) + 1);
        for (i = 0; i < count; ++i) {
            t->in[r][i] = input_value(t, r, i);
        }
    }
    return t;
}

/* Runs the case on a fresh world in the given mock mode; the world stays for checks. */
static void case_run(ring_case_t *t, int mode)
{
    int r;
    size_t i;

    for (r = 0; r < t->n; ++r) {
        for (i = 0; i < t->count; ++i) {
            t->out[r][i] = NAN; /* every element must be written */
        }
    }
    if (NULL != t->w) {
        mock_world_destroy(t->w);
    }
    t->w = mock_world_create(t->n);
    mock_world_set_mode(t->w, mode);
    mock_world_set_fault(t->w, &t->fault);
    mock_world_run(t->w, ring_rank_main, t);
}

/* What every run must leave behind: no request pending, no lifetime rule broken, no
 * deadlock. */
static void check_clean(mock_world_t *w, const char *what, int n, size_t count, int in_place)
{
    CHECK(0 == mock_pending(w) && 0 == mock_violations(w) && 0 == mock_deadlocks(w),
          "%s n=%d count=%zu inplace=%d: %zu requests pending, %zu violations, %zu deadlocks",
          what, n, count, in_place, mock_pending(w), mock_violations(w), mock_deadlocks(w));
}

static void case_free(ring_case_t *t)
{
    int r;

    for (r = 0; r < t->n; ++r) {
        free(t->in[r]);
        free(t->out[r]);
    }
    free(t->in);
    free(t->out);
    free(t->rc);
    mock_world_destroy(t->w);
    free(t);
}

static void run_case(int n, size_t count, size_t seg_bytes, int in_place, int integers)
{
    ring_case_t *t = case_new(n, count, seg_bytes, in_place, integers);

    case_run(t, MOCK_EAGER);
    check_results(t);
    check_clean(t->w, "eager", n, count, in_place);
    case_free(t);
}

/* The case in both lifetime modes of the mock: the same checks, the same bits as the
 * eager mode, no lifetime rule broken. */
static void lifetime_case(int n, size_t count, size_t seg_bytes, int in_place)
{
    static const int modes[] = {MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE};
    static const char *names[] = {"early", "late"};
    ring_case_t *t = case_new(n, count, seg_bytes, in_place, 0);
    float **eager;
    size_t m;

    case_run(t, MOCK_EAGER);
    eager = mock_arrays_copy(t->out, n, count);
    for (m = 0; m < 2; ++m) {
        case_run(t, modes[m]);
        check_results(t);
        check_clean(t->w, names[m], n, count, in_place);
        CHECK(0 == mock_arrays_differ(t->out, eager, n, count),
              "%s n=%d count=%zu seg=%zu inplace=%d: %zu ranks differ from the eager mode",
              names[m], n, count, seg_bytes, in_place, mock_arrays_differ(t->out, eager, n, count));
    }
    mock_arrays_free(eager, n);
    case_free(t);
}

/* A scratch budget smaller than a chunk: fewer receive slots than segments, reused in
 * turn. The same bits as with a slot per segment, in both lifetime modes; the scratch
 * stays within the budget (or is one slot). */
static void budget_case(int n, size_t count, size_t seg_bytes, size_t scratch_max)
{
    static const int modes[] = {MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE};
    ring_case_t *t = case_new(n, count, seg_bytes, 1, 0);
    size_t full = qtopo_ring_scratch_bytes(count, n, seg_bytes, 0);
    size_t have = qtopo_ring_scratch_bytes(count, n, seg_bytes, scratch_max);
    size_t one = qtopo_ring_scratch_bytes(count, n, seg_bytes, 1);
    float **ref;
    size_t m;

    CHECK(have <= full && (have <= scratch_max || have == one),
          "n=%d count=%zu seg=%zu max=%zu: %zu bytes of scratch (%zu for every segment)", n,
          count, seg_bytes, scratch_max, have, full);
    case_run(t, MOCK_EAGER);
    ref = mock_arrays_copy(t->out, n, count);
    t->scratch_max = scratch_max;
    for (m = 0; m < 2; ++m) {
        case_run(t, modes[m]);
        check_results(t);
        check_clean(t->w, "budget", n, count, 1);
        CHECK(0 == mock_arrays_differ(t->out, ref, n, count),
              "n=%d count=%zu seg=%zu max=%zu: %zu ranks differ from a slot per segment", n,
              count, seg_bytes, scratch_max, mock_arrays_differ(t->out, ref, n, count));
    }
    mock_arrays_free(ref, n);
    case_free(t);
}

/* ---- fault injection ----------------------------------------------------------------- */

/* Message k of rank src arrives `delta` bytes shorter or longer: the rank that receives
 * it must return an error without ever blocking on a peer afterwards (the deadlock
 * detection would release it), nothing may stay posted, and every rank that returns
 * success must hold the correct result. */
static void fault_case(int n, size_t count, int mode, int src, int where, long delta, int silent)
{
    ring_case_t *t = case_new(n, count, 1024, where % 2, 0);
    float **clean;
    char what[128];

    case_run(t, mode);
    clean = mock_arrays_copy(t->out, n, count);
    t->fault = (mock_fault_t) {src, mock_fault_pick(mock_msgs_sent(t->w, src), where), delta,
                               silent};
    case_run(t, mode);
    snprintf(what, sizeof(what), "ring n=%d mode=%d: message %zu of rank %d %+ld bytes%s", n,
             mode, t->fault.k, src, delta, silent ? ", then silent" : "");
    CHECK(mock_fault_check(t->w, what, t->rc, t->out, clean, count), "%s", what);
    mock_arrays_free(clean, n);
    case_free(t);
}

/* ---- the mock must see these bugs ------------------------------------------------------ */

/* Each rank sends BROKEN_N floats to the next and adds what the previous one sent, with
 * one buffer-lifetime bug: */
enum {
    BUG_WRITE_SEND,   /* writes its send buffer before the send's wait */
    BUG_READ_RECV,    /* reads its receive buffer before the receive's wait */
    BUG_WRITE_RECV,   /* uses a pending receive buffer as scratch */
    BUG_REUSE_REQ,    /* posts on a request that is still pending */
    BUG_RECV_IN_SEND, /* in place: receives into the buffer it is still sending from */
    BUG_EAGER_ONLY,   /* waits for its send before posting the receive */
    BUG_NKINDS
};
#define BROKEN_N 64

typedef struct broken_case {
    int bug;
    mock_world_t *w;
    float buf[3][BROKEN_N], tmp[3][BROKEN_N], out[3][BROKEN_N];
} broken_case_t;

static int broken_main(int rank, void *arg)
{
    broken_case_t *t = arg;
    float *buf = t->buf[rank], *tmp = t->tmp[rank];
    qtopo_req_t rq[2] = {QTOPO_REQ_INIT, QTOPO_REQ_INIT};
    qtopo_xport_t x;
    size_t bytes = sizeof(t->buf[0]), i;
    int next, prev, rc;

    mock_xport_init(t->w, rank, &x);
    next = (rank + 1) % x.size;
    prev = (rank + x.size - 1) % x.size;
    for (i = 0; i < BROKEN_N; ++i) {
        buf[i] = (float) (rank + 1);
    }
    if (BUG_EAGER_ONLY == t->bug) {
        rc = x.isend(&x, next, buf, bytes, &rq[0]);
        rc = QTOPO_XPORT_OK == rc ? x.wait(&x, &rq[0], 1) : rc;
    } else {
        rc = x.irecv(&x, prev, BUG_RECV_IN_SEND == t->bug ? buf : tmp, bytes, &rq[1]);
        rc = QTOPO_XPORT_OK == rc ? x.isend(&x, next, buf, bytes, &rq[0]) : rc;
    }
    if (BUG_REUSE_REQ == t->bug) {
        (void) x.isend(&x, next, buf, bytes, &rq[0]);
        (void) x.irecv(&x, prev, tmp, bytes, &rq[1]);
    }
    for (i = 0; QTOPO_XPORT_OK == rc && i < BROKEN_N; ++i) {
        t->out[rank][i] = BUG_READ_RECV == t->bug ? buf[i] + tmp[i] : 0.0f;
        buf[i] += BUG_WRITE_SEND == t->bug ? 1.0f : 0.0f;
        tmp[i] = BUG_WRITE_RECV == t->bug ? 0.0f : tmp[i];
    }
    if (BUG_EAGER_ONLY == t->bug && QTOPO_XPORT_OK == rc) {
        rc = x.irecv(&x, prev, tmp, bytes, &rq[1]);
    }
    rc = qtopo_xport_finish(&x, rq, 2, rc);
    mock_xport_fini(&x);
    return rc;
}

/* What the bug leaves in a run of 3 ranks in `mode`: 1 if anything shows it. */
static int broken_run(int bug, int mode)
{
    broken_case_t *t = calloc(1, sizeof(*t));
    int failed, seen, r;
    size_t i, nans = 0;

    t->bug = bug;
    t->w = mock_world_create(3);
    mock_world_set_mode(t->w, mode);
    failed = mock_world_run(t->w, broken_main, t);
    for (r = 0; r < 3; ++r) {
        for (i = 0; i < BROKEN_N; ++i) {
            nans += isnan(t->out[r][i]);
        }
    }
    seen = 0 != failed || 0 != nans || 0 != mock_violations(t->w) || 0 != mock_deadlocks(t->w);
    mock_world_destroy(t->w);
    free(t);
    return seen;
}

/* Every bug goes unseen by the eager mock (a send copied at once hides most of them),
 * and is seen in the lifetime mode where it must be: deterministically, whatever the
 * threads' timing. */
static void test_mock_sees_bugs(void)
{
    static const char *names[] = {"write send buffer", "read receive buffer",
                                  "write receive buffer", "reuse pending request",
                                  "receive into pending send buffer", "rely on eager sends"};
    int bug;

    fprintf(stderr, "(the mock transport reports below are expected: deliberate bugs)\n");
    for (bug = 0; bug < BUG_NKINDS; ++bug) {
        int early = broken_run(bug, MOCK_LIFETIME_EARLY);
        int late = broken_run(bug, MOCK_LIFETIME_LATE);
        if (BUG_WRITE_SEND == bug || BUG_WRITE_RECV == bug || BUG_EAGER_ONLY == bug) {
            CHECK(!broken_run(bug, MOCK_EAGER), "eager mock sees '%s'", names[bug]);
        }
        /* an early delivery may legitimately let a premature read see the data */
        CHECK(late && (early || BUG_READ_RECV == bug), "'%s' unseen: early %d, late %d",
              names[bug], early, late);
    }
}

int main(void)
{
    static const int ranks[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 33, 64};
    static const size_t segs[] = {0, 64, 4096, 262144};
    size_t ri, si;

    test_mock_sees_bugs();
    for (ri = 0; ri < sizeof(ranks) / sizeof(ranks[0]); ++ri) {
        int n = ranks[ri];
        size_t counts[] = {1, (size_t) n - 1, (size_t) n, (size_t) n + 1, 1000, 65537};
        size_t ci;
        for (ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ++ci) {
            for (si = 0; si < sizeof(segs) / sizeof(segs[0]); ++si) {
                run_case(n, counts[ci], segs[si], (int) (ci + si) % 2, 0);
            }
        }
        run_case(n, 100003, 4096, 1, 1);
        run_case(n, 100003, 4096, 0, 0);
    }
    /* large buffer, segment count capped at QTOPO_MAX_SEGMENTS */
    run_case(4, (size_t) 3 << 20, 16384, 1, 0);
    run_case(3, (size_t) 1 << 20, 64, 0, 1);
    for (ri = 0; ri < 5; ++ri) {
        static const size_t budgets[] = {1, 4096, 3 * 4096 + 5, 40000, 1 << 20};
        budget_case(3, 10007, 1024, budgets[ri]);
        budget_case(5, 100003, 4096, budgets[ri]);
        budget_case(8, 65537, 1024, budgets[ri]);
    }
    {
        static const int lranks[] = {1, 2, 3, 5, 8};
        static const long deltas[] = {-4, -1, 4};
        int in_place, where;
        for (ri = 0; ri < sizeof(lranks) / sizeof(lranks[0]); ++ri) {
            int n = lranks[ri];
            for (in_place = 0; in_place < 2; ++in_place) {
                lifetime_case(n, (size_t) n + 1, 64, in_place);
                lifetime_case(n, 10007, 4096, in_place);
            }
        }
        for (where = 0; where < 3; ++where) {
            for (si = 0; si < sizeof(deltas) / sizeof(deltas[0]); ++si) {
                for (int silent = 0; silent < 2; ++silent) {
                    fault_case(3, 5003, MOCK_EAGER, where, where, deltas[si], silent);
                    fault_case(5, 5003, MOCK_LIFETIME_LATE, 4 - where, where, deltas[si], silent);
                }
            }
        }
    }
    mock_fault_summary("ring");
    return qt_check_summary();
}
