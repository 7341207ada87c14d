/*
 * MPI tests of qtopo's agreement and failure paths (run by run_mpi_tests.sh, which sets
 * the parameters, per rank where a test needs ranks to differ):
 *
 *   test_agree --exact N        N calls of integer-valued data: the sums must be exact,
 *                               which an undetected quantized call would not give
 *                               (settings that differ across ranks must be handed on)
 *   test_agree --fault-alloc    coll_qtopo_fault=alloc:1:2: call 2 is handed on on every
 *                               rank, the others are run by qtopo; all sums exact
 *   test_agree --fault-xport    coll_qtopo_fault=xport:1:2 under MPI_ERRORS_RETURN: call
 *                               2 fails on rank 1 without a hang, qtopo is then off on
 *                               every rank and later calls are exact
 *   test_agree --ftz            rank 1 runs with flush-to-zero and denormals-are-zero on:
 *                               quantized results stay bit-identical on every rank
 *   test_agree --negzero        sums that are -0.0 stay -0.0 in every mode
 *   test_agree --ef-reset       error feedback turned off and on starts from zero
 *   test_agree --huge           an in-place call of more than 2^31 bytes
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "mpit.h"

#define COUNT 100003

/* Small integers: every partial sum is exact in float, whatever the order. */
static float int_value(int rank, size_t i)
{
    return (float) ((i * 2654435761u + (size_t) rank * 97u) % 1001u);
}

/* Runs one allreduce of integer data in place; returns its MPI error code and sets *bad
 * to the number of elements off the exact sum. */
static int int_allreduce(MPI_Comm comm, size_t count, size_t *bad)
{
    int rank, size, r, rc;
    float *buf = malloc(count * sizeof(float));
    size_t i;

    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    for (i = 0; i < count; ++i) {
        buf[i] = int_value(rank, i);
    }
    rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int) count, MPI_FLOAT, MPI_SUM, comm);
    *bad = 0;
    for (i = 0; MPI_SUCCESS == rc && i < count; ++i) {
        double ref = 0.0;
        for (r = 0; r < size; ++r) {
            ref += int_value(r, i);
        }
        *bad += (double) buf[i] != ref;
    }
    free(buf);
    return rc;
}

static void test_exact(int ncalls)
{
    size_t bad;
    int k;

    for (k = 0; k < ncalls; ++k) {
        int rc = int_allreduce(MPI_COMM_WORLD, COUNT, &bad);
        CHECK(MPI_SUCCESS == rc && 0 == bad, "call %d: rc %d, %zu elements off the exact sum",
              k, rc, bad);
    }
}

/* Every rank saw the same change of a counter. */
static void check_same_everywhere(unsigned long delta, const char *what)
{
    unsigned long lo, hi;

    MPI_Allreduce(&delta, &lo, 1, MPI_UNSIGNED_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&delta, &hi, 1, MPI_UNSIGNED_LONG, MPI_MAX, MPI_COMM_WORLD);
    CHECK(lo == hi, "%s differs across ranks: %lu..%lu", what, lo, hi);
}

/* --fault-alloc, --fault-device: rank 1 cannot run call 2 (its scratch allocation fails,
 * or it has a GPU buffer it cannot run): that call is handed on on every rank. */
static void test_fault_alloc(void)
{
    unsigned long h0 = mpit_counter("calls_handled"), f0 = mpit_counter("calls_fallback");
    unsigned long handled, fallback;

    test_exact(5);
    handled = mpit_counter("calls_handled") - h0;
    fallback = mpit_counter("calls_fallback") - f0;
    CHECK(4 == handled, "qtopo ran %lu of 5 calls, expected 4 (call 2 handed on)", handled);
    CHECK(1 == fallback, "%lu calls handed on, expected 1", fallback);
    check_same_everywhere(handled, "calls handled");
}

static void test_fault_xport(void)
{
    unsigned long h0 = mpit_counter("calls_handled"), handled;
    size_t bad;
    int k, rc;

    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    for (k = 0; k < 5; ++k) {
        rc = int_allreduce(MPI_COMM_WORLD, COUNT, &bad);
        if (2 == k && 1 == mpit_rank) {
            CHECK(MPI_SUCCESS != rc, "the call with the failing transport returned success");
        } else if (2 > k) {
            CHECK(MPI_SUCCESS == rc, "call %d before the failure: rc %d", k, rc);
        } else if (2 < k) {
            /* handed on: exact, also when qtopo quantized the calls before */
            CHECK(MPI_SUCCESS == rc && 0 == bad, "call %d: rc %d, %zu elements off", k, rc, bad);
        }
    }
    handled = mpit_counter("calls_handled") - h0;
    /* calls 0 and 1 ran; 3 and 4 were handed on everywhere (qtopo off) */
    CHECK(2 == handled || (3 == handled && 1 != mpit_rank),
          "qtopo ran %lu calls; expected calls 0 and 1 (and 2 where it completed)", handled);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
}

static uint64_t hash_floats(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    uint32_t u;
    size_t i;

    for (i = 0; i < n; ++i) {
        memcpy(&u, &x[i], sizeof(u));
        h = (h ^ u) * 1099511628211ULL;
    }
    return h;
}

/* Every rank holds the same bits in x[0..n). */
static void check_identical(const float *x, size_t n, const char *what)
{
    uint64_t h = hash_floats(x, n), root = h;

    MPI_Bcast(&root, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    CHECK(root == h, "%s: this rank's result differs from rank 0's", what);
}

static void test_ftz(void)
{
#if defined(__x86_64__)
    const unsigned ftz_daz = _MM_FLUSH_ZERO_ON | 0x0040;
    float *buf = malloc(COUNT * sizeof(float));
    unsigned before = 0;
    size_t i;

    for (i = 0; i < COUNT; ++i) {
        /* denormal and near-denormal values: FTZ/DAZ would change how they decode */
        buf[i] = (float) ((int) ((i * 7 + (size_t) mpit_rank * 13) % 200) - 100) * 1e-41f;
    }
    if (1 == mpit_rank) {
        _mm_setcsr(_mm_getcsr() | ftz_daz);
        before = _mm_getcsr();
    }
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (1 == mpit_rank) {
        /* the control bits (FTZ, DAZ, rounding, masks); the sticky flags may be raised */
        CHECK((before & 0xffc0) == (_mm_getcsr() & 0xffc0),
              "the caller's floating-point mode was not restored");
        _mm_setcsr(_mm_getcsr() & ~ftz_daz);
    }
    check_identical(buf, COUNT, "denormal data, FTZ/DAZ on rank 1");
    free(buf);
#else
    CHECK(1, "FTZ/DAZ test is x86 only");
#endif
}

static void test_negzero(void)
{
    float *buf = malloc(COUNT * sizeof(float));
    size_t i, positive = 0;

    for (i = 0; i < COUNT; ++i) {
        buf[i] = -0.0f;
    }
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (i = 0; i < COUNT; ++i) {
        positive += 0.0f != buf[i] || !signbit(buf[i]);
    }
    CHECK(0 == positive, "%zu of %d sums of -0.0 came back as something else", positive, COUNT);
    check_identical(buf, COUNT, "-0.0 sums");
    free(buf);
}

static void fill_gaussianish(float *x, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        x[i] = (float) ((int) ((i * 2654435761u + (size_t) mpit_rank * 40503u) % 2001u) - 1000)
               * 1e-3f;
    }
}

/* Error feedback turned off and on again starts from zero residuals: after 3 calls with
 * feedback, one without and one with it again, the last result equals that of a first
 * call with feedback on a fresh communicator (nearest rounding: no per-call keys). */
static void test_ef_reset(void)
{
    float *buf = malloc(COUNT * sizeof(float)), *again = malloc(COUNT * sizeof(float));
    int on = 1, off = 0, k;
    MPI_Comm fresh;

    MPI_Comm_dup(MPI_COMM_WORLD, &fresh);
    mpit_cvar_write("error_feedback", &on);
    for (k = 0; k < 3; ++k) {
        fill_gaussianish(buf, COUNT);
        MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    mpit_cvar_write("error_feedback", &off);
    fill_gaussianish(buf, COUNT);
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    mpit_cvar_write("error_feedback", &on);
    fill_gaussianish(buf, COUNT);
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    memcpy(again, buf, COUNT * sizeof(float));
    fill_gaussianish(buf, COUNT);
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, fresh);
    CHECK(0 == memcmp(again, buf, COUNT * sizeof(float)),
          "error feedback turned on again reused residuals from before it was turned off");
    MPI_Comm_free(&fresh);
    free(again);
    free(buf);
}

/* Resident memory of this process, bytes (0 where /proc is missing). */
static size_t resident_bytes(void)
{
    unsigned long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (NULL != f) {
        if (2 != fscanf(f, "%lu %lu", &pages, &resident)) {
            resident = 0;
        }
        fclose(f);
    }
    return (size_t) resident * 4096;
}

/* 2^29 + 3 floats (2 GiB + 12 bytes) in place: byte counts and offsets past 2^31. The
 * ring's scratch (a chunk, 1 GiB at 2 ranks) is released after the call. */
static void test_huge(void)
{
    size_t count = ((size_t) 1 << 29) + 3, bad, before = resident_bytes(), after;
    unsigned long h0 = mpit_counter("calls_handled");
    int rc = int_allreduce(MPI_COMM_WORLD, count, &bad);

    after = resident_bytes();
    CHECK(MPI_SUCCESS == rc && 0 == bad, "rc %d, %zu of %zu elements off", rc, bad, count);
    CHECK(1 == mpit_counter("calls_handled") - h0, "qtopo did not run the call");
    CHECK(after < before + ((size_t) 256 << 20), "%zu MiB more resident after the call",
          (after - before) >> 20);
}

int main(int argc, char **argv)
{
    int rc;

    MPI_Init(&argc, &argv);
    mpit_open();
    if (3 == argc && 0 == strcmp(argv[1], "--exact")) {
        test_exact(atoi(argv[2]));
    } else if (2 == argc && (0 == strcmp(argv[1], "--fault-alloc")
                             || 0 == strcmp(argv[1], "--fault-device"))) {
        test_fault_alloc();
    } else if (2 == argc && 0 == strcmp(argv[1], "--fault-xport")) {
        test_fault_xport();
    } else if (2 == argc && 0 == strcmp(argv[1], "--ftz")) {
        test_ftz();
    } else if (2 == argc && 0 == strcmp(argv[1], "--negzero")) {
        test_negzero();
    } else if (2 == argc && 0 == strcmp(argv[1], "--ef-reset")) {
        test_ef_reset();
    } else if (2 == argc && 0 == strcmp(argv[1], "--huge")) {
        test_huge();
    } else {
        if (0 == mpit_rank) {
            fprintf(stderr, "usage: %s --exact N | --fault-alloc | --fault-device | --fault-xport "
                    "| --ftz | --negzero | --ef-reset | --huge\n", argv[0]);
        }
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    rc = mpit_summary(argv[1]);
    MPI_Finalize();
    return rc;
}
