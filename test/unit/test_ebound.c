/*
 * Unit tests of the error-bounded mode (qtopo_sra_args_t.error_bounded) over the mock
 * transport: flat scatter-reduce-allgather at 2, 3, 5 and 8 "ranks" and split-rail on
 * M x L grids of those sizes, with Gaussian, Student-t(3), smooth (a sum of sines) and
 * sparse data, E = 1e-2, 1e-3, 1e-4. Every rank must hold the same bits and every
 * element must be within the documented guarantee of the exact (double) sum:
 *   flat:        |y - sum| <= max(E, E/2 + R),  R = gamma(n-1) (sum |x| + E/2)
 *   split-rail:  the same over the M node sums, plus the fp32 rounding of the node
 *                phase, gamma(L-1) sum |x|
 * and, on these data (where R is far below E/2), within E itself. Sparse and smooth data
 * must compress (a check that the widths follow the data).
 */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_algo.h"
#include "mock_xport.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

/* the four kinds of the issue, and all-zero data */
enum { K_GAUSS, K_STUDENT, K_SMOOTH, K_SPARSE, K_COUNT, K_ZERO = K_COUNT };
static const char *const kind_name[K_COUNT + 1] = {"gauss", "student-t3", "smooth", "sparse",
                                                   "zero"};

typedef struct eb_case {
    int nodes, local, n, hier;
    size_t count;
    qtopo_sra_args_t sra;
    mock_world_t *w;
    float **in, **out;
    qtopo_sra_stats_t *stats;
    int *rc;
} eb_case_t;

static unsigned long long lcg(unsigned long long *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 11;
}

static double uniform(unsigned long long *s) /* (0, 1) */
{
    return ((double) lcg(s) + 0.5) / 9007199254740992.0;
}

static double gauss(unsigned long long *s)
{
    return sqrt(-2.0 * log(uniform(s))) * cos(6.283185307179586 * uniform(s));
}

static double student3(unsigned long long *s)
{
    double v = 0.0;

    for (int i = 0; i < 3; ++i) {
        double g = gauss(s);
        v += g * g;
    }
    return gauss(s) / sqrt(v / 3.0);
}

/* Rank r's values: each rank its own sample (smooth: its own phases and amplitudes;
 * sparse: Gaussian in 1/16 of the 1024-value regions, a different set per rank, else 0). */
static void fill(int kind, int r, float *x, size_t count)
{
    unsigned long long s = 1234567 + 7919 * (unsigned long long) r;
    double a = 1.0 + 0.1 * r, ph = 0.3 * r;

    for (size_t i = 0; i < count; ++i) {
        double t = (double) i;
        switch (kind) {
        case K_GAUSS:
            x[i] = (float) gauss(&s);
            break;
        case K_STUDENT:
            x[i] = (float) student3(&s);
            break;
        case K_SMOOTH:
            x[i] = (float) (a * sin(t * 1e-3 + ph) + 0.5 * sin(t * 0.0137 + 2 * ph)
                            + 0.25 * cos(t * 0.071 + ph));
            break;
        case K_SPARSE:
            x[i] = 0 == (i / 1024 * 2654435761u + (size_t) r * 40503u) % 16 ? (float) gauss(&s)
                                                                          : 0.0f;
            break;
        default:
            x[i] = 0.0f;
            break;
        }
    }
}

static int rank_main(int rank, void *arg)
{
    eb_case_t *t = arg;
    qtopo_hier_args_t h = {t->sra.seg_bytes, 1, t->sra};
    size_t bytes = t->hier ? qtopo_hier_scratch_bytes(t->count, t->local, t->nodes, &h)
                           : qtopo_sra_scratch_bytes(t->count, t->n, &t->sra);
    void *scratch = malloc(bytes + 1);
    int node_ranks[64], rail_ranks[64], i;
    qtopo_xport_t node_x, rail_x;

    h.sra.key_rank = t->sra.key_rank = (uint32_t) rank;
    if (!t->hier) {
        mock_xport_init(t->w, rank, &rail_x);
        t->rc[rank] = qtopo_sra_allreduce(&rail_x, t->in[rank], t->out[rank], t->count, &t->sra,
                                          scratch, &t->stats[rank]);
        mock_xport_fini(&rail_x);
        free(scratch);
        return t->rc[rank];
    }
    for (i = 0; i < t->local; ++i) {
        node_ranks[i] = rank / t->local * t->local + i;
    }
    for (i = 0; i < t->nodes; ++i) {
        rail_ranks[i] = i * t->local + rank % t->local;
    }
    mock_xport_init_group(t->w, rank, node_ranks, t->local, rank % t->local, &node_x);
    mock_xport_init_group(t->w, rank, rail_ranks, t->nodes, rank / t->local, &rail_x);
    t->rc[rank] = qtopo_hier_allreduce(&node_x, &rail_x, t->in[rank], t->out[rank], t->count,
                                       &h, scratch, &t->stats[rank]);
    mock_xport_fini(&node_x);
    mock_xport_fini(&rail_x);
    free(scratch);
    return t->rc[rank];
}

static double gamma_of(int k)
{
    double ku = (double) k * 0x1p-24;
    return ku / (1.0 - ku);
}

/* Runs one case and checks identity and the bounds; returns the wire ratio (bytes sent
 * over those of fp32 scatter-reduce-allgather) of rank 0. */
static double run_case(int nodes, int local, int hier, int kind, double E, int block,
                       size_t count)
{
    eb_case_t t;
    size_t i, differ = 0, off_guarantee = 0, off_e = 0;
    double worst = 0.0, raw_bytes;
    int r, M = hier ? nodes : nodes * local, L = hier ? local : 1;

    memset(&t, 0, sizeof(t));
    t.nodes = nodes;
    t.local = local;
    t.n = nodes * local;
    t.hier = hier;
    t.count = count;
    t.sra.codec.bits = 8;
    t.sra.codec.block = block;
    t.sra.codec.rounding = QTOPO_ROUND_NEAREST;
    t.sra.seg_bytes = 16384;
    t.sra.error_bounded = 1;
    t.sra.error_bound = E;
    t.in = calloc((size_t) t.n, sizeof(float *));
    t.out = calloc((size_t) t.n, sizeof(float *));
    t.stats = calloc((size_t) t.n, sizeof(*t.stats));
    t.rc = calloc((size_t) t.n, sizeof(int));
    for (r = 0; r < t.n; ++r) {
        t.in[r] = malloc(count * sizeof(float) + 1);
        t.out[r] = malloc(count * sizeof(float) + 1);
        fill(kind, r, t.in[r], count);
    }
    t.w = mock_world_create(t.n);
    CHECK(0 == mock_world_run(t.w, rank_main, &t), "a rank failed or deadlocked");
    for (r = 0; r < t.n; ++r) {
        CHECK(0 == t.rc[r], "rank %d: rc %d", r, t.rc[r]);
        differ += 0 != memcmp(t.out[r], t.out[0], count * sizeof(float));
    }
    CHECK(0 == mock_unmatched(t.w), "%zu messages never received", mock_unmatched(t.w));
    for (i = 0; i < count; ++i) {
        double exact = 0.0, mag = 0.0, err, allowed;
        for (r = 0; r < t.n; ++r) {
            exact += t.in[r][i];
            mag += fabs(t.in[r][i]);
        }
        err = fabs((double) t.out[0][i] - exact);
        allowed = fmax(E, E / 2 + gamma_of(M - 1) * (mag * (1 + gamma_of(L - 1)) + E / 2))
                  + gamma_of(L - 1) * mag;
        off_guarantee += !(err <= allowed);
        off_e += !(err <= E);
        worst = fmax(worst, err);
    }
    CHECK(0 == differ, "%dx%d %s: %zu ranks differ", nodes, local, hier ? "hier" : "flat",
          differ);
    CHECK(0 == off_guarantee && 0 == off_e,
          "%dx%d %s %s E=%g block %d: %zu elements beyond the guarantee, %zu beyond E "
          "(worst %g)", nodes, local, hier ? "hier" : "flat", kind_name[kind], E, block,
          off_guarantee, off_e, worst);
    /* fp32 scatter-reduce-allgather sends 2 (n-1)/n of the buffer per rank */
    raw_bytes = 2.0 * (t.n - 1) / t.n * (double) count * sizeof(float);
    for (r = 0; r < t.n; ++r) {
        free(t.in[r]);
        free(t.out[r]);
    }
    mock_world_destroy(t.w);
    free(t.in);
    free(t.out);
    free(t.rc);
    worst = hier ? 0.0 : (double) t.stats[0].bytes_sent / raw_bytes;
    free(t.stats);
    return worst;
}

static void test_layouts(void)
{
    /* flat at n = 2, 3, 5, 8; split-rail at M x L = 2x1, 1x2, 3x1, 5x1, 4x2, 2x4 */
    static const int flat_n[] = {2, 3, 5, 8};
    static const int grids[][2] = {{2, 1}, {1, 2}, {3, 1}, {5, 1}, {4, 2}, {2, 4}};
    static const double bounds[] = {1e-2, 1e-3, 1e-4};
    size_t g;

    for (int k = 0; k < K_COUNT; ++k) {
        for (int e = 0; e < 3; ++e) {
            for (g = 0; g < sizeof(flat_n) / sizeof(flat_n[0]); ++g) {
                double ratio = run_case(flat_n[g], 1, 0, k, bounds[e], 256, 12007);
                printf("flat n=%d %-10s E=%g: wire %.3f of fp32\n", flat_n[g], kind_name[k],
                       bounds[e], ratio);
                if (K_SPARSE == k || (K_SMOOTH == k && 1e-2 == bounds[e])) {
                    CHECK(ratio < 0.5, "%s data did not compress: %.3f", kind_name[k], ratio);
                }
            }
            for (g = 0; g < sizeof(grids) / sizeof(grids[0]); ++g) {
                run_case(grids[g][0], grids[g][1], 1, k, bounds[e], 64, 9001);
            }
        }
    }
}

/* Zero blocks cost 5 bytes of 4 * block; a tighter bound never sends fewer bytes. */
static void test_zero_and_monotone(void)
{
    double zero = run_case(4, 1, 0, K_ZERO, 0.0, 256, 40960), prev = 0.0;
    static const double bounds[] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5};

    /* 5 bytes per block of 256 (1024 bytes), more with the short blocks at segment ends */
    CHECK(zero < 0.01, "zero blocks cost %.4f of fp32", zero);
    for (int e = 0; e < 5; ++e) {
        double ratio = run_case(4, 1, 0, K_SMOOTH, bounds[e], 256, 20000);
        CHECK(ratio >= prev, "E=%g sent less (%.3f) than a looser bound (%.3f)", bounds[e],
              ratio, prev);
        prev = ratio;
    }
}

int main(void)
{
    test_layouts();
    test_zero_and_monotone();
    return qt_check_summary();
}
