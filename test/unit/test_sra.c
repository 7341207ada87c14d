/*
 * Unit test of the quantized scatter-reduce-allgather (coll_qtopo_sra.c) over the mock
 * transport, against a model of its specification built from the codec alone:
 *
 *   y[i] = decode(encode(own[i] + sum_k decode(encode(x_{owner-k}[i]))))
 *
 * (k = 1..n-1, in that order; each encode over the segment's blocks with the keys the
 * algorithm documents). Checks, for every bit width, both roundings, 1..16 ranks,
 * counts around every boundary, in place and not, Gaussian and heavy-tailed data:
 *   - every rank's result is bit-identical to the model (so all ranks agree);
 *   - every element is within the documented bound of the exact double sum:
 *     sum of the contributions' block bounds + the final block's bound + float
 *     rounding of the n-term sum;
 *   - NaN/Inf in one rank's input appear exactly where the exact sum has them;
 *   - the bytes on the wire are what the codec sizes say;
 *   - error feedback: over 100 calls the running sum of outputs tracks the running
 *     exact sum far better than without it;
 *   - in both lifetime modes of the mock (mock_xport.h), every width, 1..8 ranks, in
 *     place and not, with error feedback: the eager mode's outputs and residuals, bit
 *     for bit, and no buffer-lifetime rule broken;
 *   - a message of a wrong size: the receiver errs, never blocks afterwards (also when
 *     the sender falls silent), leaves nothing posted.
 */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"
#include "mock_xport.h"
#include "sra_model.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

typedef struct sra_case {
    sra_model_in_t model; /* n, count, in[], args: what the model needs */
    int in_place;
    int mode;   /* of the mock transport */
    mock_fault_t fault;
    mock_world_t *w;
    float **out, **res; /* per rank: output, EF residual (or NULL) */
    qtopo_sra_stats_t *stats;
    int *rc;
} sra_case_t;

/* ---- data -------------------------------------------------------------------------- */

static double uniform01(unsigned long long *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double) (*s >> 11) + 0.5) / 9007199254740992.0;
}

static double gaussian(unsigned long long *s)
{
    return sqrt(-2.0 * log(uniform01(s))) * cos(6.283185307179586 * uniform01(s));
}

/* kind 0: Gaussian; kind 1: Student-t with 3 degrees of freedom (heavy tails) */
static float sample(unsigned long long *s, int kind)
{
    double g = gaussian(s);
    if (1 == kind) {
        double chi = 0.0;
        for (int i = 0; i < 3; ++i) {
            double z = gaussian(s);
            chi += z * z;
        }
        g /= sqrt(chi / 3.0);
    }
    return (float) g;
}

/* ---- running the algorithm on the mock ---------------------------------------------- */

static int sra_rank_main(int rank, void *arg)
{
    sra_case_t *t = arg;
    qtopo_sra_args_t a = t->model.args;
    qtopo_xport_t x;
    void *scratch = malloc(qtopo_sra_scratch_bytes(t->model.count, t->model.n, &a));
    const float *sbuf = t->model.in[rank];

    mock_xport_init(t->w, rank, &x);
    a.key_rank = (uint32_t) rank;
    a.residual = NULL != t->res ? t->res[rank] : NULL;
    if (t->in_place) {
        memcpy(t->out[rank], t->model.in[rank], t->model.count * sizeof(float));
        sbuf = t->out[rank];
    }
    t->rc[rank] = qtopo_sra_allreduce(&x, sbuf, t->out[rank], t->model.count, &a, scratch,
                                      &t->stats[rank]);
    mock_xport_fini(&x);
    free(scratch);
    return t->rc[rank];
}

/* Runs the case on a fresh world, which stays in t->w until the next run. */
static void run_world(sra_case_t *t)
{
    if (NULL != t->w) {
        mock_world_destroy(t->w);
    }
    for (int r = 0; r < t->model.n; ++r) {
        for (size_t i = 0; i < t->model.count; ++i) {
            t->out[r][i] = NAN; /* every element must be written */
        }
    }
    t->w = mock_world_create(t->model.n);
    mock_world_set_mode(t->w, t->mode);
    mock_world_set_fault(t->w, &t->fault);
    mock_world_run(t->w, sra_rank_main, t);
}

static void run_sra(sra_case_t *t)
{
    run_world(t);
    for (int r = 0; r < t->model.n; ++r) {
        CHECK(0 == t->rc[r], "n=%d count=%zu bits=%d rank %d: rc %d", t->model.n, t->model.count,
              t->model.args.codec.bits, r, t->rc[r]);
    }
    CHECK(0 == mock_unmatched(t->w), "%zu messages never received", mock_unmatched(t->w));
    CHECK(0 == mock_pending(t->w) && 0 == mock_violations(t->w) && 0 == mock_deadlocks(t->w),
          "n=%d count=%zu bits=%d mode=%d inplace=%d: %zu requests pending, %zu violations, "
          "%zu deadlocks", t->model.n, t->model.count, t->model.args.codec.bits, t->mode,
          t->in_place, mock_pending(t->w), mock_violations(t->w), mock_deadlocks(t->w));
}

/* ---- cases -------------------------------------------------------------------------- */

static sra_case_t *case_new(int n, size_t count, int bits, int rounding, size_t seg, int in_place)
{
    sra_case_t *t = calloc(1, sizeof(*t));

    t->model.n = n;
    t->model.count = count;
    t->in_place = in_place;
    t->model.args.codec.bits = bits;
    t->model.args.codec.block = 64 == seg ? 32 : 256;
    t->model.args.codec.rounding = rounding;
    t->model.args.seg_bytes = seg;
    t->model.args.seed = 12345;
    t->model.args.call = 7;
    t->model.in = calloc((size_t) n, sizeof(float *));
    t->out = calloc((size_t) n, sizeof(float *));
    t->stats = calloc((size_t) n, sizeof(*t->stats));
    t->rc = calloc((size_t) n, sizeof(int));
    for (int r = 0; r < n; ++r) {
        t->model.in[r] = malloc(count * sizeof(float) + 1);
        t->out[r] = malloc(count * sizeof(float) + 1);
        for (size_t i = 0; i < count; ++i) {
            t->out[r][i] = NAN;
        }
    }
    return t;
}

static void case_free(sra_case_t *t)
{
    for (int r = 0; r < t->model.n; ++r) {
        free(t->model.in[r]);
        free(t->out[r]);
        if (NULL != t->res) {
            free(t->res[r]);
        }
    }
    free(t->model.in);
    free(t->out);
    free(t->res);
    free(t->stats);
    free(t->rc);
    if (NULL != t->w) {
        mock_world_destroy(t->w);
    }
    free(t);
}

static int same_float(float a, float b)
{
    return 0 == memcmp(&a, &b, sizeof(a));
}

static void check_against_model(sra_case_t *t, const char *what)
{
    sra_model_out_t m;
    size_t i, not_model = 0, off_bound = 0, wire = 0;
    int r;

    m.y = malloc(t->model.count * sizeof(float) + 1);
    m.bound = malloc(t->model.count * sizeof(double) + 1);
    sra_model_run(&t->model, &m);
    CHECK(0 == m.codec_errors, "%d codec calls of the model failed", m.codec_errors);
    for (r = 0; r < t->model.n; ++r) {
        wire += t->stats[r].bytes_sent;
        for (i = 0; i < t->model.count; ++i) {
            not_model += !same_float(t->out[r][i], m.y[i]);
        }
    }
    for (i = 0; i < t->model.count; ++i) {
        double exact = 0.0;
        for (r = 0; r < t->model.n; ++r) {
            exact += t->model.in[r][i];
        }
        if (isfinite(exact)) {
            off_bound += !(fabs((double) t->out[0][i] - exact) <= m.bound[i]);
        } else {
            /* non-finite: the same class (NaN, +Inf, -Inf) as the exact sum */
            off_bound += !(isnan(exact) ? isnan(t->out[0][i]) : exact == t->out[0][i]);
        }
    }
    CHECK(0 == not_model, "%s n=%d count=%zu bits=%d round=%d inplace=%d: %zu values differ "
          "from the model", what, t->model.n, t->model.count, t->model.args.codec.bits,
          t->model.args.codec.rounding,
          t->in_place, not_model);
    CHECK(0 == off_bound, "%s n=%d count=%zu bits=%d round=%d: %zu values outside the bound",
          what, t->model.n, t->model.count, t->model.args.codec.bits,
          t->model.args.codec.rounding, off_bound);
    CHECK(wire == m.wire, "%s n=%d count=%zu bits=%d: %zu bytes sent, model %zu", what, t->model.n,
          t->model.count, t->model.args.codec.bits, wire, m.wire);
    free(m.y);
    free(m.bound);
}

static void test_random(int n, size_t count, int bits, int rounding, size_t seg, int kind)
{
    sra_case_t *t = case_new(n, count, bits, rounding, seg, (int) (count + (size_t) bits) % 2);
    unsigned long long s = 1000003ULL * (unsigned long long) (n + 7 * bits + kind) + count;

    for (int r = 0; r < n; ++r) {
        for (size_t i = 0; i < count; ++i) {
            t->model.in[r][i] = sample(&s, kind) * (float) (1 + r);
        }
    }
    run_sra(t);
    check_against_model(t, 0 == kind ? "gaussian" : "student-t");
    case_free(t);
}

static void test_nonfinite(int n, int bits)
{
    sra_case_t *t = case_new(n, 5000, bits, QTOPO_ROUND_NEAREST, 4096, 0);
    unsigned long long s = 99;

    for (int r = 0; r < n; ++r) {
        for (size_t i = 0; i < t->model.count; ++i) {
            t->model.in[r][i] = sample(&s, 0);
        }
    }
    t->model.in[1][5] = INFINITY;                   /* +Inf */
    t->model.in[n - 1][4000] = -INFINITY;           /* -Inf */
    t->model.in[0][777] = NAN;                      /* NaN */
    t->model.in[0][2500] = INFINITY;                /* +Inf + -Inf = NaN */
    t->model.in[1][2500] = -INFINITY;
    t->model.in[0][3000] = FLT_MAX;                 /* huge finite: no overflow of a scale */
    t->model.in[1][3001] = -FLT_MAX;
    run_sra(t);
    check_against_model(t, "non-finite");
    CHECK(isinf(t->out[0][5]) && t->out[0][5] > 0, "+Inf lost: %g", t->out[0][5]);
    CHECK(isinf(t->out[0][4000]) && t->out[0][4000] < 0, "-Inf lost: %g", t->out[0][4000]);
    CHECK(isnan(t->out[0][777]) && isnan(t->out[0][2500]), "NaN lost");
    CHECK(isfinite(t->out[0][3002]) && isfinite(t->out[0][2999]), "finite neighbours of FLT_MAX");
    case_free(t);
}

/* Error feedback: the same tensor reduced 100 times; the accumulated outputs must
 * track the accumulated exact sums far better with the residuals than without. */
static double ef_drift(int use_ef)
{
    const int n = 4, calls = 100;
    sra_case_t *t = case_new(n, 3000, 2, QTOPO_ROUND_NEAREST, 4096, 0);
    double *acc_out = calloc(t->model.count, sizeof(double));
    double *acc_exact = calloc(t->model.count, sizeof(double));
    double worst = 0.0;
    unsigned long long s = 5;

    if (use_ef) {
        t->res = calloc((size_t) n, sizeof(float *));
        for (int r = 0; r < n; ++r) {
            t->res[r] = calloc(t->model.count, sizeof(float));
        }
    }
    for (int r = 0; r < n; ++r) {
        for (size_t i = 0; i < t->model.count; ++i) {
            t->model.in[r][i] = sample(&s, 0);
        }
    }
    for (int c = 0; c < calls; ++c) {
        t->model.args.call = (uint64_t) c;
        run_sra(t);
        for (size_t i = 0; i < t->model.count; ++i) {
            acc_out[i] += t->out[0][i];
            for (int r = 0; r < n; ++r) {
                acc_exact[i] += t->model.in[r][i];
            }
        }
    }
    for (size_t i = 0; i < t->model.count; ++i) {
        double d = fabs(acc_out[i] - acc_exact[i]);
        worst = d > worst ? d : worst;
    }
    free(acc_out);
    free(acc_exact);
    case_free(t);
    return worst;
}

/* ---- lifetime modes and faults ----------------------------------------------------------- */

static void fill_random(sra_case_t *t, unsigned long long s)
{
    for (int r = 0; r < t->model.n; ++r) {
        for (size_t i = 0; i < t->model.count; ++i) {
            t->model.in[r][i] = sample(&s, r % 2);
        }
    }
}

/* One call, or three with error feedback (residuals carried from call to call), in each
 * mock mode; the lifetime modes must give the eager mode's outputs and residuals bit for
 * bit (and the eager mode's match the model without error feedback). */
static void lifetime_sra(int n, size_t count, int bits, int rounding, int in_place, int ef)
{
    static const int modes[] = {MOCK_EAGER, MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE};
    sra_case_t *t = case_new(n, count, bits, rounding, 1024, in_place);
    float **out0 = NULL, **res0 = NULL;

    fill_random(t, 31ULL * (unsigned long long) (n * 100 + bits) + count);
    if (ef) {
        t->res = calloc((size_t) n, sizeof(float *));
        for (int r = 0; r < n; ++r) {
            t->res[r] = malloc(count * sizeof(float) + 1);
        }
    }
    for (int m = 0; m < 3; ++m) {
        t->mode = modes[m];
        for (int r = 0; ef && r < n; ++r) {
            memset(t->res[r], 0, count * sizeof(float));
        }
        for (int c = 0; c < (ef ? 3 : 1); ++c) {
            t->model.args.call = (uint64_t) c;
            run_sra(t);
        }
        if (!ef && 0 == m) {
            check_against_model(t, "eager");
        }
        if (0 == m) {
            out0 = mock_arrays_copy(t->out, n, count);
            res0 = ef ? mock_arrays_copy(t->res, n, count) : NULL;
            continue;
        }
        CHECK(0 == mock_arrays_differ(t->out, out0, n, count)
                  && (!ef || 0 == mock_arrays_differ(t->res, res0, n, count)),
              "mode %d n=%d count=%zu bits=%d round=%d inplace=%d ef=%d: outputs or residuals "
              "differ from the eager mode", t->mode, n, count, bits, rounding, in_place, ef);
    }
    mock_arrays_free(out0, n);
    mock_arrays_free(res0, n);
    case_free(t);
}

/* A scratch budget below what coll_qtopo_segment_size alone would need: finer segments,
 * within the budget, bit for bit the model's (which follows qtopo_sra_nsegments), with no
 * buffer-lifetime rule broken. */
static void test_budget(int n, size_t count, int bits, size_t scratch_max)
{
    sra_case_t *t = case_new(n, count, bits, QTOPO_ROUND_STOCHASTIC, 262144, 1);
    size_t have;
    int nseg;

    t->model.args.scratch_max = scratch_max;
    have = qtopo_sra_scratch_bytes(count, n, &t->model.args);
    nseg = qtopo_sra_nsegments(count, n, &t->model.args);
    CHECK(have <= scratch_max && 1 < nseg, "n=%d count=%zu bits=%d max=%zu: %zu bytes, %d "
          "segments", n, count, bits, scratch_max, have, nseg);
    fill_random(t, 7ULL * (unsigned long long) n + count);
    t->mode = MOCK_LIFETIME_LATE;
    run_sra(t);
    check_against_model(t, "budget");
    case_free(t);
}

/* Message k (first, middle, last) of rank src arrives `delta` bytes off: its receiver
 * returns an error and never blocks afterwards; nothing stays posted; no rank returns
 * success with a result other than the clean run's. */
static void fault_sra(int n, int mode, int src, int where, long delta, int silent)
{
    sra_case_t *t = case_new(n, 20011, 8, QTOPO_ROUND_STOCHASTIC, 4096, where % 2);
    float **clean;
    char what[128];

    fill_random(t, 17 + (unsigned long long) where);
    t->mode = mode;
    run_world(t);
    clean = mock_arrays_copy(t->out, n, t->model.count);
    t->fault = (mock_fault_t) {src, mock_fault_pick(mock_msgs_sent(t->w, src), where), delta,
                               silent};
    run_world(t);
    snprintf(what, sizeof(what), "sra n=%d mode=%d: message %zu of rank %d %+ld bytes%s", n,
             mode, t->fault.k, src, delta, silent ? ", then silent" : "");
    CHECK(mock_fault_check(t->w, what, t->rc, t->out, clean, t->model.count), "%s", what);
    mock_arrays_free(clean, n);
    case_free(t);
}

static void test_lifetime_and_faults(void)
{
    static const int ranks[] = {1, 2, 3, 5, 8};
    static const int widths[] = {16, 8, 4, 2, 1};
    static const long deltas[] = {-1, 4, 1 << 20};

    for (size_t ri = 0; ri < sizeof(ranks) / sizeof(ranks[0]); ++ri) {
        int n = ranks[ri];
        for (size_t wi = 0; wi < sizeof(widths) / sizeof(widths[0]); ++wi) {
            int b = widths[wi];
            lifetime_sra(n, 8009, b, (int) (wi + ri) % 2, 0, 0);
            lifetime_sra(n, (size_t) n + 1, b, (int) (wi + ri + 1) % 2, 1, 0);
            lifetime_sra(n, 8009, b, (int) (wi + ri + 1) % 2, 1, 2 == b || 8 == b);
        }
        lifetime_sra(n, 5003, 2, QTOPO_ROUND_STOCHASTIC, 0, 1);
    }
    for (int where = 0; where < 3; ++where) {
        for (size_t di = 0; di < sizeof(deltas) / sizeof(deltas[0]); ++di) {
            for (int silent = 0; silent < 2; ++silent) {
                fault_sra(3, MOCK_EAGER, where, where, deltas[di], silent);
                fault_sra(5, MOCK_LIFETIME_LATE, 4 - where, where, deltas[di], silent);
            }
        }
    }
}

int main(void)
{
    static const int ranks[] = {1, 2, 3, 4, 5, 8};
    static const int widths[] = {16, 8, 4, 2, 1};
    size_t ri, wi;
    int rounding;

    test_lifetime_and_faults();
    for (ri = 0; ri < sizeof(ranks) / sizeof(ranks[0]); ++ri) {
        int n = ranks[ri];
        size_t counts[] = {1, (size_t) n + 1, 1000, 65537};
        for (wi = 0; wi < sizeof(widths) / sizeof(widths[0]); ++wi) {
            for (rounding = 0; rounding < 2; ++rounding) {
                for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ++ci) {
                    test_random(n, counts[ci], widths[wi], rounding, 4096, (int) ci % 2);
                }
            }
            test_nonfinite(n > 1 ? n : 2, widths[wi]);
        }
    }
    test_random(16, 100003, 8, QTOPO_ROUND_STOCHASTIC, 65536, 1);
    test_random(3, 300001, 4, QTOPO_ROUND_NEAREST, 262144, 0);
    test_random(5, 7777, 1, QTOPO_ROUND_STOCHASTIC, 64, 1);
    test_budget(5, 100003, 8, 200000);
    test_budget(8, 65537, 4, 65536);
    test_budget(3, 30011, 16, 50000);
    test_budget(4, 65537, 8, 300000);
    test_budget(4, 100003, 8, 300000);
    {
        double without = ef_drift(0), with = ef_drift(1);
        printf("error feedback, 2-bit, 100 calls: max drift %.3g without, %.3g with\n", without,
               with);
        CHECK(with * 10.0 < without, "EF drift %.3g is not far below %.3g", with, without);
    }
    mock_fault_summary("sra");
    return qt_check_summary();
}
