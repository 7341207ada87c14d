/*
 * Unit test of the exact ring allreduce (coll_qtopo_ring.c) over the mock transport:
 * 1..64 "ranks" as threads, counts around every boundary (0, 1, fewer elements than
 * ranks, non-multiples of ranks and segments), several segment sizes, in place and
 * not. Checks: every rank bit-identical, each element within the float rounding
 * bound of a double-precision reference (exact for integer-valued data), total
 * bytes on the wire equal to the bandwidth optimum 2(n-1) * count * 4, nothing left
 * unmatched.
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
    void *scratch = malloc(qtopo_ring_scratch_bytes(t->count, t->n, t->seg_bytes) + 1);
    const float *sbuf;

    mock_xport_init(t->w, rank, &x);
    if (t->in_place) {
        memcpy(t->out[rank], t->in[rank], t->count * sizeof(float));
        sbuf = t->out[rank];
    } else {
        sbuf = t->in[rank];
    }
    t->rc[rank] = qtopo_ring_allreduce(&x, sbuf, t->out[rank], t->count, t->seg_bytes, scratch);
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

static void run_case(int n, size_t count, size_t seg_bytes, int in_place, int integers)
{
    ring_case_t t = {n, count, seg_bytes, in_place, integers, NULL, NULL, NULL, NULL};
    int r;
    size_t i;

    t.w = mock_world_create(n);
    t.in = calloc((size_t) n, sizeof(float *));
    t.out = calloc((size_t) n, sizeof(float *));
    t.rc = calloc((size_t) n, sizeof(int));
    for (r = 0; r < n; ++r) {
        t.in[r] = malloc(count * sizeof(float) + 1);
        t.out[r] = malloc(count * sizeof(float) + 1);
        for (i = 0; i < count; ++i) {
            t.in[r][i] = input_value(&t, r, i);
            t.out[r][i] = NAN; /* every element must be written */
        }
    }
    mock_world_run(t.w, ring_rank_main, &t);
    check_results(&t);
    for (r = 0; r < n; ++r) {
        free(t.in[r]);
        free(t.out[r]);
    }
    free(t.in);
    free(t.out);
    free(t.rc);
    mock_world_destroy(t.w);
}

int main(void)
{
    static const int ranks[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 33, 64};
    static const size_t segs[] = {0, 64, 4096, 262144};
    size_t ri, si;

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
    return qt_check_summary();
}
