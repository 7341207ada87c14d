/*
 * MPI correctness test of coll/qtopo's allreduce.
 *
 *   test_allreduce --expect on|off|handed-on [--large]
 *
 * For float sums on several communicators (world, a dup, odd/even halves, reversed
 * ranks), counts around every boundary, in place and not: each element within the
 * float rounding bound of a double-precision reference, all ranks bit-identical, and
 * qtopo's calls_handled counter (an MPI_T performance variable) moving by exactly one
 * per call that qtopo must take (--expect on) or not at all (--expect off).
 * Calls qtopo must not take (double, int, MPI_MAX, a user op, a derived type) must
 * return bit for bit what the same call returns on a twin communicator from which
 * qtopo is excluded, and count as fallbacks. With --expect off, float sums too must
 * equal the twin's bit for bit (qtopo is inert). --expect handed-on: qtopo is selected (it
 * counts fallbacks) but hands every float sum on (coll_qtopo_exact auto or never), so
 * those too must equal the twin's bit for bit.
 *
 * Prints "N passed, M failed" on rank 0; exit status 1 on any failure.
 */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mpit.h"

static int g_expect_qtopo; /* float sums run in qtopo */
static int g_module;       /* qtopo is selected: it counts the calls it hands on */
static size_t g_min_bytes;


typedef struct test_comm {
    const char *name;
    MPI_Comm comm; /* qtopo may run here */
    MPI_Comm twin; /* same group, qtopo excluded */
} test_comm_t;

/* ---- data ----------------------------------------------------------------------------- */

static float input_value(int rank, size_t i)
{
    uint64_t h = ((uint64_t) rank + 1) * 0x9e3779b97f4a7c15ULL
                 ^ (uint64_t) i * 0xbf58476d1ce4e5b9ULL;

    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return (float) ((double) (h % 2000001) / 1000000.0 - 1.0) * (float) (1 + i % 5);
}

/* Every rank agrees with rank 0, bit for bit. */
static int same_on_all_ranks(MPI_Comm comm, const void *buf, size_t bytes)
{
    void *root = malloc(bytes ? bytes : 1);
    int bad, any;

    memcpy(root, buf, bytes);
    MPI_Bcast(root, (int) bytes, MPI_BYTE, 0, comm);
    bad = 0 != memcmp(root, buf, bytes);
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, comm);
    free(root);
    return !any;
}

/* ---- float sums ----------------------------------------------------------------------- */

static void check_float_sum(const test_comm_t *tc, int count, int in_place)
{
    int rank, size, r;
    size_t i, bad = 0;
    float *in = malloc(sizeof(float) * (size_t) count + 1);
    float *out = malloc(sizeof(float) * (size_t) count + 1);
    float *twin = malloc(sizeof(float) * (size_t) count + 1);
    unsigned long before, after, expected;

    MPI_Comm_rank(tc->comm, &rank);
    MPI_Comm_size(tc->comm, &size);
    for (i = 0; i < (size_t) count; ++i) {
        in[i] = input_value(rank, i);
        out[i] = in[i];
    }
    before = mpit_counter("calls_handled");
    MPI_Allreduce(in_place ? MPI_IN_PLACE : in, out, count, MPI_FLOAT, MPI_SUM, tc->comm);
    after = mpit_counter("calls_handled");

    expected = (g_expect_qtopo && size >= 2 && (size_t) count * 4 >= g_min_bytes) ? 1 : 0;
    CHECK(after - before == expected, "%s count=%d: qtopo handled %lu calls, expected %lu",
          tc->name, count, after - before, expected);
    for (i = 0; i < (size_t) count; ++i) {
        double ref = 0.0, mag = 0.0;
        for (r = 0; r < size; ++r) {
            ref += input_value(r, i);
            mag += fabs(input_value(r, i));
        }
        bad += fabs((double) out[i] - ref) > (size - 1) * (FLT_EPSILON / 2) * mag * 1.0001;
    }
    CHECK(0 == bad, "%s count=%d in_place=%d: %zu elements off the exact sum", tc->name, count,
          in_place, bad);
    CHECK(same_on_all_ranks(tc->comm, out, sizeof(float) * (size_t) count),
          "%s count=%d: ranks disagree", tc->name, count);
    if (!g_expect_qtopo) {
        MPI_Allreduce(in, twin, count, MPI_FLOAT, MPI_SUM, tc->twin);
        CHECK(0 == memcmp(out, twin, sizeof(float) * (size_t) count),
              "%s count=%d: inert qtopo changed Open MPI's result", tc->name, count);
    }
    free(in);
    free(out);
    free(twin);
}

/* ---- calls qtopo must hand to the previous module ------------------------------------- */

static void user_sum(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    int i, n = MPI_FLOAT == *dt ? *len : 2 * *len; /* the derived type is 2 floats */

    for (i = 0; i < n; ++i) {
        ((float *) inout)[i] += ((float *) in)[i];
    }
}

typedef struct fallback_case {
    const char *name;
    MPI_Datatype dtype;
    MPI_Op op;
    size_t elem_bytes;
    char kind; /* element values: 'f' float, 'd' double, 'i' int */
} fallback_case_t;

static void fill_input(unsigned char *buf, size_t bytes, int rank, char kind)
{
    size_t i;

    for (i = 0; i < bytes / ('d' == kind ? 8 : 4); ++i) {
        if ('d' == kind) {
            ((double *) buf)[i] = input_value(rank, i);
        } else if ('i' == kind) {
            ((int *) buf)[i] = (int) (input_value(rank, i) * 1000.0f);
        } else {
            ((float *) buf)[i] = input_value(rank, i);
        }
    }
}

static void check_fallback(const test_comm_t *tc, const fallback_case_t *fc, int count)
{
    int rank, size;
    size_t bytes = fc->elem_bytes * (size_t) count;
    unsigned char *in = malloc(bytes), *out = malloc(bytes), *twin = malloc(bytes);
    unsigned long h0, f0, h1, f1;

    MPI_Comm_rank(tc->comm, &rank);
    MPI_Comm_size(tc->comm, &size);
    fill_input(in, bytes, rank, fc->kind);
    h0 = mpit_counter("calls_handled");
    f0 = mpit_counter("calls_fallback");
    MPI_Allreduce(in, out, count, fc->dtype, fc->op, tc->comm);
    h1 = mpit_counter("calls_handled");
    f1 = mpit_counter("calls_fallback");
    MPI_Allreduce(in, twin, count, fc->dtype, fc->op, tc->twin);

    CHECK(h1 == h0, "%s %s: qtopo ran a call it must hand on", tc->name, fc->name);
    /* qtopo has no module on a communicator of one rank, so nothing to count there */
    CHECK(f1 - f0 == (g_module && size >= 2 ? 1u : 0u), "%s %s: %lu fallbacks counted",
          tc->name, fc->name, f1 - f0);
    CHECK(0 == memcmp(out, twin, bytes), "%s %s: result differs from Open MPI's own", tc->name,
          fc->name);
    free(in);
    free(out);
    free(twin);
}

static void run_fallbacks(const test_comm_t *tc, int count)
{
    MPI_Op user_op;
    MPI_Datatype pair;
    fallback_case_t cases[5];
    int i;

    MPI_Op_create(user_sum, 1, &user_op);
    MPI_Type_contiguous(2, MPI_FLOAT, &pair);
    MPI_Type_commit(&pair);
    cases[0] = (fallback_case_t){"MPI_DOUBLE/MPI_SUM", MPI_DOUBLE, MPI_SUM, 8, 'd'};
    cases[1] = (fallback_case_t){"MPI_FLOAT/MPI_MAX", MPI_FLOAT, MPI_MAX, 4, 'f'};
    cases[2] = (fallback_case_t){"MPI_FLOAT/user op", MPI_FLOAT, user_op, 4, 'f'};
    cases[3] = (fallback_case_t){"MPI_INT/MPI_SUM", MPI_INT, MPI_SUM, 4, 'i'};
    cases[4] = (fallback_case_t){"2xMPI_FLOAT derived/user op", pair, user_op, 8, 'f'};
    for (i = 0; i < 5; ++i) {
        check_fallback(tc, &cases[i], 4 == cases[i].elem_bytes ? count : count / 2);
    }
    MPI_Type_free(&pair);
    MPI_Op_free(&user_op);
}

/* ---- communicators -------------------------------------------------------------------- */

static MPI_Comm twin_of(MPI_Comm comm)
{
    MPI_Info info;
    MPI_Comm twin;

    MPI_Info_create(&info);
    MPI_Info_set(info, "ompi_comm_coll_preference", "^qtopo");
    MPI_Comm_dup_with_info(comm, info, &twin);
    MPI_Info_free(&info);
    return twin;
}

static int make_comms(test_comm_t *tc)
{
    int size, n = 0;

    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tc[n++] = (test_comm_t){"world", MPI_COMM_WORLD, MPI_COMM_NULL};
    tc[n].name = "dup";
    MPI_Comm_dup(MPI_COMM_WORLD, &tc[n++].comm);
    tc[n].name = "odd/even";
    MPI_Comm_split(MPI_COMM_WORLD, mpit_rank % 2, mpit_rank, &tc[n++].comm);
    tc[n].name = "reversed";
    MPI_Comm_split(MPI_COMM_WORLD, 0, size - mpit_rank, &tc[n++].comm);
    for (int i = 0; i < n; ++i) {
        tc[i].twin = twin_of(tc[i].comm);
    }
    return n;
}

static void free_comms(test_comm_t *tc, int n)
{
    for (int i = 0; i < n; ++i) {
        MPI_Comm_free(&tc[i].twin);
        if (MPI_COMM_WORLD != tc[i].comm) {
            MPI_Comm_free(&tc[i].comm);
        }
    }
}

static void run_suite(int large)
{
    test_comm_t tc[4];
    int ncomm = make_comms(tc), c, k;

    for (c = 0; c < ncomm; ++c) {
        int csize;
        MPI_Comm_size(tc[c].comm, &csize);
        int counts[] = {1, csize > 1 ? csize - 1 : 1, csize + 1, (int) (g_min_bytes / 4) - 1,
                        (int) (g_min_bytes / 4), 16385, 100003, (1 << 20) + 3};
        for (k = 0; k < (int) (sizeof(counts) / sizeof(counts[0])); ++k) {
            if (counts[k] > 0) {
                check_float_sum(&tc[c], counts[k], k % 2);
                check_float_sum(&tc[c], counts[k], !(k % 2));
            }
        }
        run_fallbacks(&tc[c], 100002);
    }
    if (large) {
        /* more than 2^28 elements: chunk and byte offsets beyond 32 bits */
        check_float_sum(&tc[0], (1 << 28) + 5, 1);
    }
    free_comms(tc, ncomm);
}

/* --expect on|off|handed-on into g_expect_qtopo (-1: not one of them) and g_module. */
static void parse_expect(const char *what)
{
    g_module = 0 != strcmp(what, "off");
    if (0 == strcmp(what, "on")) {
        g_expect_qtopo = 1;
    } else if (0 == strcmp(what, "off") || 0 == strcmp(what, "handed-on")) {
        g_expect_qtopo = 0;
    } else {
        g_expect_qtopo = -1;
    }
}

int main(int argc, char **argv)
{
    char what[64];
    int i, large = 0, rc;

    MPI_Init(&argc, &argv);
    mpit_open();
    g_expect_qtopo = -1;
    for (i = 1; i < argc; ++i) {
        if (0 == strcmp(argv[i], "--expect") && i + 1 < argc) {
            parse_expect(argv[++i]);
        } else if (0 == strcmp(argv[i], "--large")) {
            large = 1;
        }
    }
    if (g_expect_qtopo < 0) {
        if (0 == mpit_rank) {
            fprintf(stderr, "usage: %s --expect on|off|handed-on [--large]\n", argv[0]);
        }
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    mpit_cvar_read("min_bytes", &g_min_bytes);
    run_suite(large);

    snprintf(what, sizeof(what), "test_allreduce expect=%s",
             g_expect_qtopo ? "on" : (g_module ? "handed-on" : "off"));
    rc = mpit_summary(what);
    MPI_Finalize();
    return rc;
}
