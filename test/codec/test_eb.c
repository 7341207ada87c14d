/*
 * Unit tests of the codec's error-bounded format (qtopo_codec_eb_*): every decoded
 * value within the tolerance, the tally (error and magnitude bounds) valid and within
 * the tolerance, the smallest qualifying width chosen (1..16-bit codes), constant and
 * zero blocks at 5 bytes, per-block budgets, NaN/Inf raw, scalar = AVX2 bytes, sizes, and a decoder
 * that rejects every truncation and bad tag or header. Ends with "N passed, M failed".
 */

#include "codec_test.h"

#include "coll_qtopo_codec.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define N_MAX 5000

enum { K_GAUSS, K_STUDENT, K_SMOOTH, K_SPARSE, K_ZERO, K_WIDE, K_HUGE, K_DENORMAL, K_COUNT };
static const char *const kind_name[K_COUNT] = {"gauss", "student-t3", "smooth", "sparse",
                                               "zero",  "wide",       "huge",   "denormal"};

static void fill(int kind, float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; ++i) {
        double t = (double) i;
        switch (kind) {
        case K_GAUSS:
            x[i] = (float) rng_gauss(&s);
            break;
        case K_STUDENT:
            x[i] = (float) rng_student3(&s);
            break;
        case K_SMOOTH:
            x[i] = (float) (sin(t * 0.001) + 0.5 * sin(t * 0.0173 + 1.0) + 0.1 * cos(t * 0.05));
            break;
        case K_SPARSE:
            x[i] = 0 == rng_next(&s) % 50 ? (float) rng_gauss(&s) : 0.0f;
            break;
        case K_ZERO:
            x[i] = 0.0f;
            break;
        case K_WIDE:
            x[i] = (float) ldexp(rng_gauss(&s), (int) (rng_next(&s) % 200) - 100);
            break;
        case K_HUGE:
            x[i] = (float) (FLT_MAX * (2.0 * rng_uniform(&s) - 1.0));
            break;
        default:
            x[i] = (float) (FLT_MIN * (2.0 * rng_uniform(&s) - 1.0));
            break;
        }
    }
}

/* Encodes x with tolerance tol, decodes it, checks every element against tol and the
 * tally against the actual errors; returns the message size through *size_p. */
static int roundtrip(const float *x, size_t n, int block, double tol, size_t *size_p)
{
    static uint8_t msg[N_MAX * 4 + N_MAX];
    static float y[N_MAX];
    static double err[N_MAX], absmax[N_MAX];
    size_t nblk = (n + (size_t) block - 1) / (size_t) block, size;
    qtopo_codec_eb_tally_t tally = {err, absmax};
    CHECK(QTOPO_CODEC_OK
          == qtopo_codec_eb_encode(x, n, block, tol, NULL, msg, sizeof(msg), &size));
    CHECK(size <= qtopo_codec_eb_max_size(n, block));
    memset(err, 0, nblk * sizeof(double));
    memset(absmax, 0, nblk * sizeof(double));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(msg, size, n, block, y, 0, &tally));
    for (size_t i = 0; i < n; ++i) {
        double e = fabs((double) y[i] - (double) x[i]);
        size_t b = i / (size_t) block;
        CHECKF(e <= tol, "element %zu: %.9g -> %.9g, error %g > tol %g", i, x[i], y[i], e, tol);
        CHECKF(e <= err[b] && err[b] <= tol, "block %zu: error %g, tally %g, tol %g", b, e,
               err[b], tol);
        CHECKF(fabs((double) y[i]) <= absmax[b], "block %zu: |%g| > absmax %g", b, y[i],
               absmax[b]);
    }
    *size_p = size;
    return 0;
}

static int test_bounds_all_kinds(void)
{
    static float x[N_MAX];
    static const int blocks[3] = {32, 256, 4096};
    static const double tols[6] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 0.0};
    for (int k = 0; k < K_COUNT; ++k) {
        for (int bi = 0; bi < 3; ++bi) {
            for (int ti = 0; ti < 6; ++ti) {
                size_t n = 4001 + (size_t) (k * 7 + bi), size;
                fill(k, x, n, (uint64_t) (k * 100 + bi * 10 + ti + 1));
                if (0 != roundtrip(x, n, blocks[bi], tols[ti], &size)) {
                    fprintf(stderr, "  kind %s block %d tol %g\n", kind_name[k], blocks[bi],
                            tols[ti]);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* A block is never smaller than it may be: the next smaller width would break tol. */
static int test_widths_chosen(void)
{
    static float x[N_MAX];
    static uint8_t msg[N_MAX * 5];
    size_t size, count[QTOPO_CODEC_EB_RAW + 1] = {0};
    /* one block of uniform values on [-1, 1]: s = 1/L, bound ~ 1/L */
    uint64_t s = 7;
    for (int i = 0; i < 256; ++i) {
        x[i] = (float) (2.0 * rng_uniform(&s) - 1.0);
    }
    x[0] = -1.0f;
    x[1] = 1.0f;
    CHECK(0 == roundtrip(x, 256, 256, 1.01 / 15.0, &size));
    CHECK(1 + 8 + 128 == size); /* 4 bits: L = 15 */
    CHECK(0 == roundtrip(x, 256, 256, 0.99 / 15.0, &size));
    CHECK(1 + 8 + 256 == size); /* 8 bits */
    CHECK(0 == roundtrip(x, 256, 256, 0x1p-8, &size));
    CHECK(1 + 8 + 512 == size); /* 16 bits: 2^-8 < 1/255 */
    CHECK(0 == roundtrip(x, 256, 256, 1.04 / 65535, &size));
    CHECK(1 + 8 + 512 == size);
    CHECK(0 == roundtrip(x, 256, 256, 1.0 / 65535, &size));
    CHECK(1 + 1024 == size); /* raw */
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, 256, 256, 1.01, NULL, msg, sizeof(msg),
                                                  &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_widths(msg, size, 256, 256, count));
    CHECK(1 == count[1] && 1 + 8 + 32 == size);
    return 0;
}

static int test_constant_and_zero_blocks(void)
{
    static float x[N_MAX], y[N_MAX];
    static uint8_t msg[N_MAX * 5];
    size_t size, n = 1000, count[QTOPO_CODEC_EB_RAW + 1] = {0};
    for (size_t i = 0; i < n; ++i) {
        x[i] = i < 512 ? 0.0f : (i < 768 ? -0.0f : 123.456f);
    }
    /* tol 0: constant blocks are exact, so they qualify */
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 256, 0.0, NULL, msg, sizeof(msg), &size));
    CHECK(4 * 5 == size);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_widths(msg, size, n, 256, count));
    CHECK(4 == count[QTOPO_CODEC_EB_CONST]);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(msg, size, n, 256, y, 0, NULL));
    for (size_t i = 0; i < n; ++i) {
        CHECK(x[i] == y[i]);
    }
    /* a negative tolerance leaves only raw */
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 256, -1.0, NULL, msg, sizeof(msg), &size));
    CHECK(qtopo_codec_eb_max_size(n, 256) == size);
    return 0;
}

/* spent[b] is taken off the tolerance of block b only */
static int test_spent_budget(void)
{
    static float x[N_MAX];
    static uint8_t msg[N_MAX * 5];
    double spent[4] = {0.0, 0.5, 1.0, 0.0};
    size_t size, count[QTOPO_CODEC_EB_RAW + 1] = {0};
    uint64_t s = 3;
    for (int i = 0; i < 1024; ++i) {
        x[i] = (float) (2.0 * rng_uniform(&s) - 1.0);
    }
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, 1024, 256, 1.01, spent, msg, sizeof(msg),
                                                  &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_widths(msg, size, 1024, 256, count));
    /* tolerances 1.01, 0.51 (2 bits: s = 1/3), 0.01 (8 bits), 1.01 */
    CHECK(2 == count[1] && 1 == count[2] && 1 == count[8]);
    return 0;
}

static int test_nonfinite_raw(void)
{
    static float x[N_MAX], y[N_MAX];
    static uint8_t msg[N_MAX * 5];
    size_t size, n = 600;
    fill(K_GAUSS, x, n, 11);
    x[10] = NAN;
    x[300] = INFINITY;
    x[599] = -INFINITY;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 256, 10.0, NULL, msg, sizeof(msg), &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(msg, size, n, 256, y, 0, NULL));
    CHECK(0 == memcmp(x, y, n * sizeof(float))); /* every block held a non-finite value */
    return 0;
}

static int test_simd_scalar_identical(void)
{
    static float x[N_MAX], y0[N_MAX], y1[N_MAX];
    static uint8_t m0[N_MAX * 5], m1[N_MAX * 5];
    for (int k = 0; k < 3 * K_COUNT; ++k) { /* every kind at tolerances 1, 1e-3, 1e-6 */
        size_t n = 4093, s0, s1;
        double tol = pow(1e-3, k / K_COUNT);
        fill(k % K_COUNT, x, n, (uint64_t) k + 5);
        for (int pass = 0; pass < 2; ++pass) {
            qtopo_codec_force_scalar(pass);
            CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 128, tol, NULL,
                                                          pass ? m1 : m0, sizeof(m0),
                                                          pass ? &s1 : &s0));
            CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(pass ? m1 : m0, pass ? s1 : s0, n,
                                                          128, pass ? y1 : y0, 0, NULL));
        }
        qtopo_codec_force_scalar(0);
        CHECK(s0 == s1 && 0 == memcmp(m0, m1, s0) && 0 == memcmp(y0, y1, n * sizeof(float)));
    }
    return 0;
}

/* Every truncation, every extension and every bad tag is rejected without writing. */
static int test_decoder_rejects(void)
{
    static float x[N_MAX], y[N_MAX];
    static uint8_t msg[N_MAX * 5 + 8];
    size_t size, n = 700;
    fill(K_SMOOTH, x, n, 1);
    x[600] = NAN; /* one raw block */
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 64, 1e-3, NULL, msg, sizeof(msg), &size));
    for (size_t cut = 0; cut < size; ++cut) {
        y[0] = 42.0f;
        CHECK(QTOPO_CODEC_OK != qtopo_codec_eb_decode(msg, cut, n, 64, y, 0, NULL));
        CHECK(42.0f == y[0]);
    }
    CHECK(QTOPO_CODEC_ERR_SIZE == qtopo_codec_eb_decode(msg, size + 1, n, 64, y, 0, NULL));
    for (int tag = 0; tag < 256; ++tag) {
        uint8_t save = msg[0];
        int ok = 0 == tag || 1 == tag || 2 == tag || 4 == tag || 8 == tag || 16 == tag
                 || 32 == tag;
        msg[0] = (uint8_t) tag; /* any tag: never a crash, the bad ones rejected */
        if (!ok) {
            CHECK(QTOPO_CODEC_ERR_CORRUPT == qtopo_codec_eb_decode(msg, size, n, 64, y, 0, NULL));
        } else {
            (void) qtopo_codec_eb_decode(msg, size, n, 64, y, 0, NULL);
        }
        msg[0] = save;
    }
    /* a quantized header with a negative scale */
    if (8 >= msg[0] && 0 != msg[0]) {
        msg[4] |= 0x80;
        CHECK(QTOPO_CODEC_ERR_CORRUPT == qtopo_codec_eb_decode(msg, size, n, 64, y, 0, NULL));
    }
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_eb_decode(msg, size, n, 60, y, 0, NULL));
    CHECK(QTOPO_CODEC_ERR_SIZE == qtopo_codec_eb_encode(x, n, 64, 1e-3, NULL, msg, 100, &size));
    return 0;
}

static int test_decode_add_and_absmax(void)
{
    static float x[N_MAX], acc[N_MAX], y[N_MAX];
    static uint8_t msg[N_MAX * 5];
    double am[8] = {0};
    size_t size, n = 1000;
    fill(K_STUDENT, x, n, 9);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_encode(x, n, 256, 1e-2, NULL, msg, sizeof(msg), &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(msg, size, n, 256, y, 0, NULL));
    for (size_t i = 0; i < n; ++i) {
        acc[i] = 1.5f;
    }
    CHECK(QTOPO_CODEC_OK == qtopo_codec_eb_decode(msg, size, n, 256, acc, 1, NULL));
    for (size_t i = 0; i < n; ++i) {
        CHECK(acc[i] == 1.5f + y[i]);
    }
    qtopo_codec_eb_absmax(x, n, 256, am);
    for (size_t i = 0; i < n; ++i) {
        CHECK(fabs((double) x[i]) <= am[i / 256]);
    }
    return 0;
}

int main(void)
{
    static const test_case_t tests[] = {
        {"eb_bounds_all_kinds", test_bounds_all_kinds},
        {"eb_widths_chosen", test_widths_chosen},
        {"eb_constant_and_zero_blocks", test_constant_and_zero_blocks},
        {"eb_spent_budget", test_spent_budget},
        {"eb_nonfinite_raw", test_nonfinite_raw},
        {"eb_simd_scalar_identical", test_simd_scalar_identical},
        {"eb_decoder_rejects", test_decoder_rejects},
        {"eb_decode_add_and_absmax", test_decode_add_and_absmax},
    };
    printf("codec kernels: %s\n", qtopo_codec_kernel_name());
    return run_tests(tests, (int) (sizeof(tests) / sizeof(tests[0])));
}
