/*
 * MPI test of coll/qtopo's error-bounded mode (coll_qtopo_error_bound, _mode, and the
 * eE / rE forms of coll_qtopo_rules), all set through MPI_T between calls as every rank
 * does alike. For Gaussian, Student-t(3), smooth (a sum of sines) and sparse data and
 * E = 1e-2, 1e-3, 1e-4, every element of the result must be within the documented
 * guarantee of the exact (double) sum and, on these data, within E itself; every rank
 * must hold the same bits; calls_quantized must count the call. Relative mode: within
 * E * max |exact sum|. Split-rail is used when coll_qtopo_node_size makes nodes.
 * Prints "N passed, M failed" on rank 0.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mpit.h"

enum { K_GAUSS, K_STUDENT, K_SMOOTH, K_SPARSE, K_COUNT };
static const char *const kind_name[K_COUNT] = {"gauss", "student-t3", "smooth", "sparse"};

#define EB_ABS 1
#define EB_REL 2

static uint64_t mix(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static double unit(uint64_t h) /* (0, 1) */
{
    return ((double) (h >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss_at(int rank, size_t i, int salt)
{
    uint64_t h = mix(((uint64_t) rank + 1) * 0x9e3779b97f4a7c15ULL
                     ^ ((uint64_t) i * 8 + (uint64_t) salt) * 0xd6e8feb86659fd93ULL);
    return sqrt(-2.0 * log(unit(h))) * cos(6.283185307179586 * unit(mix(h)));
}

/* Rank r's element i of the given kind (any rank can compute any rank's values). */
static float value(int kind, int r, size_t i)
{
    double t = (double) i, v = 0.0;

    switch (kind) {
    case K_GAUSS:
        return (float) gauss_at(r, i, 0);
    case K_STUDENT:
        for (int k = 1; k <= 3; ++k) {
            double g = gauss_at(r, i, k);
            v += g * g;
        }
        return (float) (gauss_at(r, i, 0) / sqrt(v / 3.0));
    case K_SMOOTH:
        return (float) ((1.0 + 0.1 * r) * sin(t * 1e-3 + 0.3 * r) + 0.5 * sin(t * 0.0137 + r)
                        + 0.25 * cos(t * 0.071 + 0.3 * r));
    default: /* Gaussian in 1/16 of the 1024-value regions, another set per rank */
        return 0 == (i / 1024 * 2654435761u + (size_t) r * 40503u) % 16
                   ? (float) gauss_at(r, i, 0) : 0.0f;
    }
}

static double gamma_of(int k)
{
    double ku = (double) k * 0x1p-24;
    return ku / (1.0 - ku);
}

/* One call of `kind` data with the current parameters; E_abs is the absolute bound the
 * result must meet (relative mode: E * max |exact|, computed here). */
static void check_call(int kind, double E, int mode, size_t count, int L, const char *what)
{
    int n, rank;
    float *x = malloc(count * sizeof(float)), *y = malloc(count * sizeof(float));
    double *exact = malloc(count * sizeof(double)), *mag = malloc(count * sizeof(double));
    double Eabs = E, maxabs = 0.0, worst = 0.0;
    size_t off_guarantee = 0, off_e = 0;
    unsigned long q0 = mpit_counter("calls_quantized");
    int M;

    MPI_Comm_size(MPI_COMM_WORLD, &n);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    M = L > 1 ? n / L : n;
    L = L > 1 ? L : 1;
    for (size_t i = 0; i < count; ++i) {
        exact[i] = mag[i] = 0.0;
        for (int r = 0; r < n; ++r) {
            float v = value(kind, r, i);
            exact[i] += v;
            mag[i] += fabs(v);
            if (r == rank) {
                x[i] = v;
            }
        }
        maxabs = fmax(maxabs, fabs(exact[i]));
    }
    Eabs = EB_REL == mode ? E * maxabs : E;
    MPI_Allreduce(x, y, (int) count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (size_t i = 0; i < count; ++i) {
        double err = fabs((double) y[i] - exact[i]);
        double allowed = fmax(Eabs, Eabs / 2 + gamma_of(M - 1) * (mag[i] * (1 + gamma_of(L - 1))
                                                                  + Eabs / 2))
                         + gamma_of(L - 1) * mag[i];
        off_guarantee += !(err <= allowed);
        off_e += !(err <= Eabs);
        worst = fmax(worst, err);
    }
    CHECK(0 == off_guarantee && 0 == off_e,
          "%s %s E=%g (%s): %zu elements beyond the guarantee, %zu beyond %g (worst %g)", what,
          kind_name[kind], E, EB_REL == mode ? "rel" : "abs", off_guarantee, off_e, Eabs, worst);
    CHECK(mpit_same_everywhere(y, count, MPI_COMM_WORLD), "%s %s E=%g: ranks differ", what,
          kind_name[kind], E);
    CHECK(mpit_counter("calls_quantized") == q0 + 1, "%s: the call was not quantized", what);
    free(x);
    free(y);
    free(exact);
    free(mag);
}

static void set_bound(double E, int mode)
{
    mpit_cvar_write("error_bound", &E);
    mpit_cvar_write("error_bound_mode", &mode);
}

int main(int argc, char **argv)
{
    static const double bounds[3] = {1e-2, 1e-3, 1e-4};
    char rules_abs[] = "<=64K:32,*:e1e-3/128", rules_rel[] = "*:r1e-3", empty[] = "";
    int L, alg;
    size_t count = 50021;
    int rc;

    MPI_Init(&argc, &argv);
    mpit_open();
    mpit_cvar_read("node_size", &L);
    mpit_cvar_read("algorithm", &alg);
    L = 1 == alg ? 0 : L; /* algorithm=flat */
    for (int k = 0; k < K_COUNT; ++k) {
        for (int e = 0; e < 3; ++e) {
            set_bound(bounds[e], EB_ABS);
            check_call(k, bounds[e], EB_ABS, count, L, "error_bound");
        }
        set_bound(1e-3, EB_REL);
        check_call(k, 1e-3, EB_REL, count, L, "error_bound rel");
    }
    set_bound(0.0, EB_ABS);
    mpit_cvar_write("rules", rules_abs);
    check_call(K_STUDENT, 1e-3, EB_ABS, count, L, rules_abs);
    mpit_cvar_write("rules", rules_rel);
    check_call(K_SMOOTH, 1e-3, EB_REL, count, L, rules_rel);
    mpit_cvar_write("rules", empty);
    rc = mpit_summary("test_ebound");
    MPI_Finalize();
    return rc;
}
