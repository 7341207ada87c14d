/*
 * Unit tests of the qtopo quantization codec (coll_qtopo_codec.[ch]): sizes,
 * per-element error bounds, unbiased stochastic rounding, non-finite and
 * huge values, scalar/AVX2 bit identity, RNG independence from segmentation,
 * decoder robustness, error feedback.  Ends with "N passed, M failed".
 */

#include "codec_test.h"

#include "coll_qtopo_codec.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#define NBITS 5
static const int all_bits[NBITS] = { 16, 8, 4, 2, 1 };

enum { D_GAUSS, D_STUDENT, D_ZERO, D_CONST, D_DENORMAL, D_WIDE, D_HUGE, D_COUNT };
static const char *const dist_name[D_COUNT] = { "gauss",    "student-t3", "zero", "constant",
                                                "denormal", "wide-range", "huge" };

static qtopo_codec_params_t mkparams(int bits, int block, int rounding)
{
    qtopo_codec_params_t p = { bits, block, rounding };
    return p;
}

static float huge_value(uint64_t *s)
{
    static const float pick[5] = { FLT_MAX, -FLT_MAX, 0x1.fffffcp127f, -0x1.fep127f, 1.0f };
    uint64_t r = rng_next(s);
    return 0 == r % 3 ? (float) (FLT_MAX * (2.0 * rng_uniform(s) - 1.0)) : pick[r % 5];
}

static void fill(int dist, float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; ++i) {
        switch (dist) {
        case D_GAUSS:
            x[i] = (float) rng_gauss(&s);
            break;
        case D_STUDENT:
            x[i] = (float) (1e-3 * rng_student3(&s));
            break;
        case D_ZERO:
            x[i] = 0.0f;
            break;
        case D_CONST:
            x[i] = -3.25f;
            break;
        case D_DENORMAL:
            x[i] = (float) (FLT_MIN * (2.0 * rng_uniform(&s) - 1.0));
            break;
        case D_WIDE: /* mixed signs, magnitudes from 2^-140 to 2^120 */
            x[i] = (float) ldexp(rng_gauss(&s), (int) (rng_next(&s) % 261) - 140);
            break;
        default:
            x[i] = huge_value(&s);
            break;
        }
    }
}

typedef struct msg {
    uint8_t *base; /* allocation */
    uint8_t *buf;  /* base + offset, to exercise unaligned access */
    size_t cap;
    size_t size;
} msg_t;

static int msg_alloc(msg_t *m, size_t n, const qtopo_codec_params_t *p, size_t offset)
{
    m->cap = qtopo_codec_max_size(n, p) + 16;
    m->base = malloc(m->cap + offset);
    m->buf = NULL != m->base ? m->base + offset : NULL;
    m->size = 0;
    return NULL != m->base;
}

static int float_bits_equal(const float *a, const float *b, size_t n)
{
    return 0 == memcmp(a, b, n * sizeof(float));
}

/* ---- checks shared by several tests ---------------------------------- */

/* every element within qtopo_codec_error_bound of its block; raw blocks exact */
static int check_bounds(const float *x, const float *y, size_t n, const qtopo_codec_params_t *p,
                        const msg_t *m, size_t *raw_blocks_p)
{
    size_t nblk = (n + (size_t) p->block - 1) / (size_t) p->block;
    *raw_blocks_p = 0;
    for (size_t b = 0; b < nblk; ++b) {
        qtopo_codec_block_info_t info;
        size_t off = b * (size_t) p->block;
        CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m->buf, m->size, n, p, b, &info));
        *raw_blocks_p += (size_t) info.raw;
        if (info.raw) {
            CHECK(float_bits_equal(x + off, y + off, info.len));
            continue;
        }
        for (size_t i = off; i < off + info.len; ++i) {
            double err = fabs((double) y[i] - (double) x[i]);
            double bound = qtopo_codec_error_bound(p, &info, x[i]);
            CHECKF(isfinite(y[i]) && err <= bound,
                   "bits %d rnd %d B %d n %zu i %zu x %a y %a err %g bound %g", p->bits,
                   p->rounding, p->block, n, i, x[i], y[i], err, bound);
        }
    }
    return 0;
}

/* encode + decode x; y gets the decoded values; checks sizes and bounds */
static int roundtrip(const float *x, float *y, size_t n, const qtopo_codec_params_t *p,
                     uint64_t call, size_t *raw_blocks_p)
{
    qtopo_codec_key_t key = { 12345, call, 3, 1000 };
    msg_t m;
    size_t fixed = qtopo_codec_fixed_size(n, p), raw_blocks = 0;
    int rc;
    CHECK(msg_alloc(&m, n, p, (size_t) (call % 4)));
    rc = qtopo_codec_encode(x, n, p, &key, m.buf, m.cap, &m.size);
    rc = QTOPO_CODEC_OK == rc ? qtopo_codec_decode(m.buf, m.size, n, p, y) : rc;
    rc = QTOPO_CODEC_OK == rc ? check_bounds(x, y, n, p, &m, &raw_blocks) : rc;
    free(m.base);
    CHECKF(QTOPO_CODEC_OK == rc, "rc %d", rc);
    CHECK(m.size >= fixed && m.size <= qtopo_codec_max_size(n, p));
    CHECK(0 == (m.size - fixed) % 4);
    if (NULL != raw_blocks_p) {
        *raw_blocks_p = raw_blocks;
    }
    return 0;
}

/* ---- tests ------------------------------------------------------------ */

static int test_params(void)
{
    /* bits, block, rounding: bad bits, block too small / large / not a
     * multiple of 8, bad rounding */
    static const int bad[][3] = { { 3, 256, 0 },  { 32, 256, 0 }, { 8, 24, 0 },
                                  { 8, 4104, 0 }, { 8, 100, 0 },  { 8, 4096, 2 } };
    qtopo_codec_params_t p = mkparams(8, 256, QTOPO_ROUND_NEAREST);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_params_check(&p));
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_params_check(NULL));
    for (int i = 0; i < NBITS; ++i) {
        p = mkparams(all_bits[i], 32, QTOPO_ROUND_STOCHASTIC);
        CHECK(QTOPO_CODEC_OK == qtopo_codec_params_check(&p));
    }
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); ++k) {
        p = mkparams(bad[k][0], bad[k][1], bad[k][2]);
        CHECKF(QTOPO_CODEC_ERR_ARG == qtopo_codec_params_check(&p), "case %zu", k);
    }
    CHECK(0 == qtopo_codec_fixed_size(10, &p) && 0 == qtopo_codec_max_size(10, &p));
    return 0;
}

static int test_sizes(void)
{
    static const size_t counts[] = { 0, 1, 7, 8, 9, 255, 256, 257, 1000, 4096, 12345 };
    for (int bi = 0; bi < NBITS; ++bi) {
        int bits = all_bits[bi];
        qtopo_codec_params_t p = mkparams(bits, 256, QTOPO_ROUND_NEAREST);
        size_t hdr = 16 == bits ? 4 : 8;
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); ++c) {
            size_t n = counts[c], full = n / 256, rest = n % 256;
            size_t expect = full * (hdr + 256 * (size_t) bits / 8)
                            + (0 != rest ? hdr + (rest * (size_t) bits + 7) / 8 : 0);
            CHECK(expect == qtopo_codec_fixed_size(n, &p));
            CHECK(expect + 4 * n == qtopo_codec_max_size(n, &p));
        }
    }
    return 0;
}

static int test_roundtrip_bounds(void)
{
    static const int blocks[] = { 32, 256, 4096 };
    static const size_t counts[] = { 1, 7, 8, 33, 255, 256, 257, 1000, 8200 };
    size_t maxn = 8200;
    float *x = malloc(maxn * sizeof(float)), *y = malloc(maxn * sizeof(float));
    CHECK(NULL != x && NULL != y);
    for (int d = 0; d < D_COUNT; ++d) {
        for (int bi = 0; bi < NBITS; ++bi) {
            for (int r = 0; r < 2; ++r) {
                for (int k = 0; k < 3; ++k) {
                    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); ++c) {
                        qtopo_codec_params_t p = mkparams(all_bits[bi], blocks[k], r);
                        size_t raw_blocks;
                        fill(d, x, counts[c], 77 + c);
                        if (0 != roundtrip(x, y, counts[c], &p, c, &raw_blocks)) {
                            fprintf(stderr, "  data %s\n", dist_name[d]);
                            return 1;
                        }
                        CHECK(0 == raw_blocks); /* finite data never needs raw blocks */
                        CHECK(D_ZERO != d || 0 == memcmp(x, y, counts[c] * sizeof(float)));
                        CHECK(D_CONST != d || 0 == memcmp(x, y, counts[c] * sizeof(float)));
                    }
                }
            }
        }
    }
    free(x);
    free(y);
    return 0;
}

/* mean of many stochastic round trips equals x within 5 sigma, per element
 * (sigma <= bound / 2: a rounding between two neighbours one step apart has
 * standard deviation <= step / 2) and averaged over the block */
static int test_stochastic_unbiased(void)
{
    enum { N = 256, T = 2000 };
    float x[N], y[N], b[N];
    double sum[N];
    for (int bi = 0; bi < NBITS; ++bi) {
        qtopo_codec_params_t p = mkparams(all_bits[bi], N, QTOPO_ROUND_STOCHASTIC);
        double z = 0.0;
        int moved = 0;
        fill(D_GAUSS, x, N, 5);
        memset(sum, 0, sizeof(sum));
        for (int t = 0; t < T; ++t) {
            qtopo_codec_key_t key = { 99, (uint64_t) t, 1, 0 };
            uint8_t m[N * 2 + 8];
            size_t size;
            qtopo_codec_block_info_t info;
            CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, m, sizeof(m), &size));
            CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, size, N, &p, y));
            CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m, size, N, &p, 0, &info));
            for (int i = 0; i < N; ++i) {
                b[i] = (float) qtopo_codec_error_bound(&p, &info, x[i]);
                sum[i] += y[i];
                moved |= 0 == t && y[i] != x[i];
            }
        }
        for (int i = 0; i < N; ++i) {
            double bias = sum[i] / T - x[i], sigma = b[i] / 2.0;
            CHECKF(fabs(bias) <= 5.0 * sigma / sqrt((double) T), "bits %d i %d bias %g sigma %g",
                   p.bits, i, bias, sigma);
            z += bias / sigma;
        }
        CHECKF(fabs(z / N) <= 5.0 / sqrt((double) T * N), "bits %d mean z %g", p.bits, z / N);
        CHECK(moved);
    }
    return 0;
}

/* a count of n fair coin flips lies within 5 sigma of n / 2 */
static int fair(size_t count, size_t n)
{
    return fabs((double) count - 0.5 * (double) n) <= 5.0 * 0.5 * sqrt((double) n);
}

/* element i of the independence test: the block's extremes 0 and 255 at its first two
 * places, else halfway between two integers */
static float halfway(size_t i, size_t block)
{
    return 0 == i % block ? 0.0f : 1 == i % block ? 255.0f : (float) (i % 255) + 0.5f;
}

/* encodes x with key, decodes, and sets up[i] = 1 where element i was rounded up */
static int round_ups(const float *x, size_t n, const qtopo_codec_params_t *p,
                     const qtopo_codec_key_t *key, msg_t *m, float *y, uint8_t *up)
{
    qtopo_codec_block_info_t info;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, n, p, key, m->buf, m->cap, &m->size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m->buf, m->size, n, p, y));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m->buf, m->size, n, p, 0, &info));
    CHECK(0.5f == info.scale && 127.5f == info.mid); /* levels at the integers 0 .. 255 */
    for (size_t i = 0; i < n; ++i) {
        CHECK(y[i] == floorf(x[i]) || y[i] == ceilf(x[i]));
        up[i] = y[i] > x[i];
    }
    return 0;
}

/*
 * The decisions of stochastic rounding are fair coins and independent: 8 bits, blocks
 * with extremes 0 and 255 (so the levels are the integers) and every other value halfway
 * between two levels.  Over 2^20 elements, whose RNG counter crosses 2^32 on the way,
 * each within 5 sigma: half of them round up; a decision agrees with the one lag places
 * later half of the time (lag 1: neighbours; 8: the same SIMD lane in the next group;
 * 32: the next four-group step; 4096: the next block), and with the same element's
 * decision on another call or rank.  Both kernels produce these bits (see
 * simd_scalar_identical); a generator that repeats bits across lanes, groups, blocks or
 * keys fails here.
 */
static int test_stochastic_independent(void)
{
    enum { B = 4096, N = 1 << 20, KEYS = 3 };
    static const size_t lags[] = { 1, 2, 8, 32, B };
    qtopo_codec_params_t p = mkparams(8, B, QTOPO_ROUND_STOCHASTIC);
    qtopo_codec_key_t keys[KEYS] = { { 1, 2, 3, (1ull << 32) - N / 2 - 3 },
                                     { 1, 3, 3, (1ull << 32) - N / 2 - 3 },
                                     { 1, 2, 4, (1ull << 32) - N / 2 - 3 } };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *up = malloc((size_t) KEYS * N);
    size_t n_up = 0, n = 0;
    msg_t m = { NULL, NULL, 0, 0 };
    int rc = NULL == x || NULL == y || NULL == up || !msg_alloc(&m, N, &p, 0);
    for (size_t i = 0; i < N && 0 == rc; ++i) {
        x[i] = halfway(i, B);
    }
    for (int k = 0; k < KEYS && 0 == rc; ++k) {
        rc = round_ups(x, N, &p, &keys[k], &m, y, up + (size_t) k * N);
    }
    for (size_t i = 0; i < N && 0 == rc; ++i) {
        n_up += 1 < i % B ? up[i] : 0;
        n += 1 < i % B;
    }
    CHECKF(0 == rc && fair(n_up, n), "rc %d: %zu of %zu rounded up", rc, n_up, n);
    for (size_t l = 0; l < sizeof(lags) / sizeof(lags[0]); ++l) {
        size_t agree = 0, pairs = 0;
        for (size_t i = 0; i + lags[l] < N; ++i) {
            int both = 1 < i % B && 1 < (i + lags[l]) % B;
            agree += both && up[i] == up[i + lags[l]];
            pairs += both;
        }
        CHECKF(fair(agree, pairs), "lag %zu: %zu of %zu agree", lags[l], agree, pairs);
    }
    for (int k = 1; k < KEYS; ++k) {
        size_t agree = 0;
        for (size_t i = 0; i < N; ++i) {
            agree += 1 < i % B && up[i] == up[(size_t) k * N + i];
        }
        CHECKF(fair(agree, n), "key %d: %zu of %zu agree with key 0", k, agree, n);
    }
    free(m.base);
    free(up);
    free(y);
    free(x);
    return 0;
}

static int test_huge_values(void)
{
    static const float pairs[][2] = {
        { FLT_MAX, -FLT_MAX }, { FLT_MAX, 0x1.fffffcp127f }, { -FLT_MAX, -0x1.fffffcp127f },
        { FLT_MAX, 0.0f },     { FLT_MAX, FLT_MAX },         { -FLT_MAX, 1e30f },
        { 0x1p127f, -FLT_MAX }
    };
    float x[64], y[64];
    for (int bi = 0; bi < NBITS; ++bi) {
        for (int r = 0; r < 2; ++r) {
            qtopo_codec_params_t p = mkparams(all_bits[bi], 32, r);
            for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); ++k) {
                size_t raw_blocks;
                for (int i = 0; i < 64; ++i) {
                    x[i] = 0 == i % 2 ? pairs[k][0] : pairs[k][1];
                }
                x[5] = 0.5f * pairs[k][0] + 0.25f * pairs[k][1];
                if (0 != roundtrip(x, y, 64, &p, k, &raw_blocks)) {
                    return 1;
                }
                CHECKF(0 == raw_blocks, "bits %d pair %zu", p.bits, k);
            }
        }
    }
    return 0;
}

static int test_nonfinite(void)
{
    enum { N = 700 };
    float x[N], y[N], acc[N];
    const float special[4] = { NAN, INFINITY, -INFINITY, -NAN };
    for (int bi = 0; bi < NBITS; ++bi) {
        qtopo_codec_params_t p = mkparams(all_bits[bi], 128, QTOPO_ROUND_NEAREST);
        msg_t m;
        size_t raw_blocks;
        fill(D_GAUSS, x, N, 11);
        x[3] = special[0];   /* block 0 */
        x[300] = special[1]; /* block 2 */
        x[301] = special[3];
        x[699] = special[2]; /* block 5, short tail block of 60 */
        CHECK(0 == roundtrip(x, y, N, &p, 0, &raw_blocks));
        CHECK(3 == raw_blocks);
        CHECK(isnan(y[3]) && isnan(y[301]) && isinf(y[300]) && 0 < y[300]);
        CHECK(isinf(y[699]) && 0 > y[699]);
        CHECK(msg_alloc(&m, N, &p, 1));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, NULL, m.buf, m.cap, &m.size));
        CHECK(m.size == qtopo_codec_fixed_size(N, &p) + 4 * (128 + 128 + 60));
        for (int i = 0; i < N; ++i) {
            acc[i] = 1.0f;
        }
        CHECK(QTOPO_CODEC_OK == qtopo_codec_decode_add(m.buf, m.size, N, &p, acc));
        CHECK(isnan(acc[3]) && isinf(acc[300]) && isnan(acc[301]) && isinf(acc[699]));
        CHECK(1.0f + x[0] == acc[0]); /* block 0 is raw: exact sum */
        free(m.base);
    }
    return 0;
}

static int test_decode_add(void)
{
    enum { N = 1001 };
    float x[N], y[N], acc[N], ref[N];
    for (int bi = 0; bi < NBITS; ++bi) {
        qtopo_codec_params_t p = mkparams(all_bits[bi], 64, QTOPO_ROUND_STOCHASTIC);
        qtopo_codec_key_t key = { 1, 2, 3, 4 };
        msg_t m;
        fill(D_STUDENT, x, N, 3);
        fill(D_GAUSS, acc, N, 4);
        x[500] = INFINITY;
        CHECK(msg_alloc(&m, N, &p, 3));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, m.buf, m.cap, &m.size));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m.buf, m.size, N, &p, y));
        for (int i = 0; i < N; ++i) {
            ref[i] = acc[i] + y[i];
        }
        CHECK(QTOPO_CODEC_OK == qtopo_codec_decode_add(m.buf, m.size, N, &p, acc));
        CHECK(float_bits_equal(acc, ref, N));
        free(m.base);
    }
    return 0;
}

/* encode (and decode, decode_add, encode_ef) with the given kernels */
static int run_all_paths(int scalar, const float *x, size_t n, const qtopo_codec_params_t *p,
                         const qtopo_codec_key_t *key, msg_t *m, float *y, float *acc,
                         float *res)
{
    size_t size2 = 0;
    int rc;
    qtopo_codec_force_scalar(scalar);
    rc = qtopo_codec_encode(x, n, p, key, m->buf, m->cap, &m->size);
    rc = QTOPO_CODEC_OK == rc ? qtopo_codec_decode(m->buf, m->size, n, p, y) : rc;
    rc = QTOPO_CODEC_OK == rc ? qtopo_codec_decode_add(m->buf, m->size, n, p, acc) : rc;
    /* encode_ef output goes behind the first message */
    rc = QTOPO_CODEC_OK == rc ? qtopo_codec_encode_ef(x, res, n, p, key, m->buf + m->size,
                                                      m->cap - m->size, &size2)
                              : rc;
    m->size += size2;
    qtopo_codec_force_scalar(0);
    CHECKF(QTOPO_CODEC_OK == rc, "rc %d", rc);
    return 0;
}

static int compare_paths(const float *x, size_t n, const qtopo_codec_params_t *p,
                         const qtopo_codec_key_t *key)
{
    msg_t m[2];
    float *f[2][3];
    int rc = 0;
    for (int k = 0; k < 2; ++k) {
        CHECK(msg_alloc(&m[k], 3 * n, p, (size_t) k + 1));
        for (int j = 0; j < 3; ++j) {
            f[k][j] = calloc(n + 1, sizeof(float));
            CHECK(NULL != f[k][j]);
            fill(D_GAUSS, f[k][j], n, 9); /* same acc / residual start */
        }
        rc |= run_all_paths(k, x, n, p, key, &m[k], f[k][0], f[k][1], f[k][2]);
    }
    rc |= m[0].size != m[1].size || 0 != memcmp(m[0].buf, m[1].buf, m[0].size);
    for (int j = 0; j < 3; ++j) {
        rc |= !float_bits_equal(f[0][j], f[1][j], n);
        free(f[0][j]);
        free(f[1][j]);
    }
    free(m[0].base);
    free(m[1].base);
    CHECKF(0 == rc, "bits %d rounding %d n %zu offset %llu", p->bits, p->rounding, n,
           (unsigned long long) key->elem_offset);
    return 0;
}

/* every kernel path, data kind, width and rounding; stochastic rounding also at RNG
 * counters that cross a multiple of 2^32 inside a group, exactly between two groups (the
 * SIMD kernel then splits its run there), and wrap around 2^64 */
static int test_simd_scalar_identical(void)
{
    static const size_t counts[] = { 1, 13, 64, 1000, 4096 + 77 };
    static const uint64_t offsets[] = { 0, 5, (1ull << 32) - 13, (1ull << 32) - 8 * 37,
                                        (7ull << 32) + 3, UINT64_MAX - 100 };
    float *x = malloc((4096 + 78) * sizeof(float));
    CHECK(NULL != x);
    if (NULL == qtopo_codec_avx2_kernels()) {
        printf("  (no AVX2 on this CPU: SIMD/scalar identity skipped)\n");
        free(x);
        return 0;
    }
    for (int d = 0; d < D_COUNT; ++d) {
        for (int bi = 0; bi < NBITS; ++bi) {
            for (int r = 0; r < 2; ++r) {
                for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); ++c) {
                    size_t noff = r ? sizeof(offsets) / sizeof(offsets[0]) : 1;
                    for (size_t o = 0; o < noff; ++o) {
                        qtopo_codec_params_t p = mkparams(all_bits[bi], 0 == c % 2 ? 64 : 256,
                                                          r);
                        qtopo_codec_key_t key = { 7, 8, 9, offsets[o] };
                        fill(d, x + 1, counts[c], 100 + c); /* x + 1: not 32-byte aligned */
                        x[1 + counts[c] / 2] = 2 == c && D_GAUSS == d ? NAN
                                                                     : x[1 + counts[c] / 2];
                        if (0 != compare_paths(x + 1, counts[c], &p, &key)) {
                            free(x);
                            return 1;
                        }
                    }
                }
            }
        }
    }
    free(x);
    return 0;
}

/* the random bits of an element depend on elem_offset + i only */
static int test_segment_independence(void)
{
    enum { B = 128, N = 4 * B };
    float x[N];
    uint8_t whole[2 * N + 64], parts[2 * N + 64], other[2 * N + 64];
    qtopo_codec_params_t p = mkparams(4, B, QTOPO_ROUND_STOCHASTIC);
    qtopo_codec_key_t key = { 5, 6, 7, 1000 };
    size_t size, s1, s2, off;
    fill(D_GAUSS, x, N, 21);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, whole, sizeof(whole), &size));
    key.elem_offset = 1000;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, B, &p, &key, parts, sizeof(parts), &s1));
    key.elem_offset = 1000 + B;
    CHECK(QTOPO_CODEC_OK
          == qtopo_codec_encode(x + B, N - B, &p, &key, parts + s1, sizeof(parts) - s1, &s2));
    CHECK(s1 + s2 == size && 0 == memcmp(whole, parts, size));
    /* same again: reproducible; another call or rank: different bits */
    key.elem_offset = 1000;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, other, sizeof(other), &off));
    CHECK(0 == memcmp(whole, other, size));
    key.call = 1;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, other, sizeof(other), &off));
    CHECK(0 != memcmp(whole, other, size));
    key.call = 6;
    key.rank = 8;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, other, sizeof(other), &off));
    CHECK(0 != memcmp(whole, other, size));
    return 0;
}

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* decode and decode_add of m (with a size) must fail with rc and leave acc alone */
static int expect_reject(const msg_t *m, size_t size, size_t n, const qtopo_codec_params_t *p,
                         int rc)
{
    float acc[1024], ref[1024];
    for (size_t i = 0; i < n; ++i) {
        acc[i] = ref[i] = (float) i;
    }
    CHECKF(rc == qtopo_codec_decode_add(m->buf, size, n, p, acc), "expected %d", rc);
    CHECK(rc == qtopo_codec_decode(m->buf, size, n, p, acc));
    CHECK(float_bits_equal(acc, ref, n));
    return 0;
}

/* overwrite the header words at `at` (two words unless bits == 16), expect rc */
static int corrupt_header(msg_t *m, size_t at, uint32_t w0, uint32_t w1, size_t n,
                          const qtopo_codec_params_t *p, int rc)
{
    uint32_t saved[2], words[2] = { w0, w1 };
    size_t len = 16 == p->bits ? 4 : 8;
    int fail;
    memcpy(saved, m->buf + at, len);
    memcpy(m->buf + at, words, len);
    fail = expect_reject(m, m->size, n, p, rc);
    memcpy(m->buf + at, saved, len);
    CHECKF(0 == fail, "words %#x %#x at %zu bits %d", w0, w1, at, p->bits);
    return 0;
}

static int test_decoder_rejects(void)
{
    enum { N = 3 * 64 + 5 };
    /* scale: NaN, Inf, negative, denormal, negative; then mid: NaN, +-Inf */
    static const float bad_scale[] = { NAN, INFINITY, -1.0f, 1e-40f, -0.5f };
    static const float bad_mid[] = { NAN, INFINITY, -INFINITY };
    float x[N], y[N];
    for (int bi = 0; bi < NBITS; ++bi) {
        qtopo_codec_params_t p = mkparams(all_bits[bi], 64, QTOPO_ROUND_NEAREST), q = p;
        size_t blk = (16 == p.bits ? 4 : 8) + 64 * (size_t) p.bits / 8; /* bytes per block */
        uint32_t good_mid;
        msg_t m;
        fill(D_GAUSS, x, N, 8);
        CHECK(msg_alloc(&m, N, &p, 1));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, NULL, m.buf, m.cap, &m.size));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m.buf, m.size, N, &p, y));
        memcpy(&good_mid, m.buf + blk + 4, 4);
        CHECK(0 == expect_reject(&m, m.size - 1, N, &p, QTOPO_CODEC_ERR_SIZE));
        CHECK(0 == expect_reject(&m, m.size + 1, N, &p, QTOPO_CODEC_ERR_SIZE));
        CHECK(0 == expect_reject(&m, m.size + 4, N, &p, QTOPO_CODEC_ERR_SIZE));
        CHECK(0 == expect_reject(&m, 0, N, &p, QTOPO_CODEC_ERR_SIZE));
        CHECK(0 == expect_reject(&m, m.size, N - 8, &p, QTOPO_CODEC_ERR_SIZE));
        q.bits = 16 == p.bits ? 8 : 16;
        CHECK(0 != qtopo_codec_decode(m.buf, m.size, N, &q, y));
        /* a raw flag without its appendix */
        CHECK(0 == corrupt_header(&m, blk, QTOPO_CODEC_RAW_MARK, 0, N, &p,
                                  QTOPO_CODEC_ERR_SIZE));
        if (16 == p.bits) {
            CHECK(0 == corrupt_header(&m, 2 * blk, 1, 0, N, &p, QTOPO_CODEC_ERR_CORRUPT));
        }
        for (size_t k = 0; k < sizeof(bad_scale) / sizeof(bad_scale[0]) && 16 != p.bits; ++k) {
            CHECK(0 == corrupt_header(&m, blk, f2u(bad_scale[k]), good_mid, N, &p,
                                      QTOPO_CODEC_ERR_CORRUPT));
        }
        for (size_t k = 0; k < sizeof(bad_mid) / sizeof(bad_mid[0]) && 16 != p.bits; ++k) {
            CHECK(0 == corrupt_header(&m, 2 * blk, f2u(1.0f), f2u(bad_mid[k]), N, &p,
                                      QTOPO_CODEC_ERR_CORRUPT));
        }
        /* finite header whose extreme codes would decode to Inf */
        if (16 != p.bits) {
            CHECK(0 == corrupt_header(&m, blk, f2u(0.5f * FLT_MAX), f2u(0.75f * FLT_MAX), N, &p,
                                      QTOPO_CODEC_ERR_CORRUPT));
        }
        CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_decode(NULL, m.size, N, &p, y));
        CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_decode(m.buf, m.size, N, &p, NULL));
        free(m.base);
    }
    return 0;
}

static int test_raw_mark_needs_zero_mid(void)
{
    float x[64];
    uint8_t m[64 * 5 + 64];
    qtopo_codec_params_t p = mkparams(8, 64, QTOPO_ROUND_NEAREST);
    size_t size;
    uint32_t one = 1;
    fill(D_GAUSS, x, 64, 2);
    x[7] = NAN;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, 64, &p, NULL, m, sizeof(m), &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, size, 64, &p, x));
    memcpy(m + 4, &one, 4);
    CHECK(QTOPO_CODEC_ERR_CORRUPT == qtopo_codec_decode(m, size, 64, &p, x));
    return 0;
}

static int test_encode_errors(void)
{
    enum { N = 300 };
    float x[N], res[N] = { 0 };
    uint8_t m[N * 6 + 64];
    qtopo_codec_params_t p = mkparams(8, 128, QTOPO_ROUND_STOCHASTIC), bad = p;
    qtopo_codec_key_t key = { 0, 0, 0, 0 };
    size_t fixed = qtopo_codec_fixed_size(N, &p), size = 1;
    fill(D_GAUSS, x, N, 1);
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_encode(x, N, &p, NULL, m, sizeof(m), &size));
    CHECK(QTOPO_CODEC_ERR_SIZE == qtopo_codec_encode(x, N, &p, &key, m, fixed - 1, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, m, fixed, &size));
    CHECK(fixed == size);
    x[130] = NAN; /* needs 4 * 128 more bytes */
    CHECK(QTOPO_CODEC_ERR_SIZE == qtopo_codec_encode(x, N, &p, &key, m, fixed + 511, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, m, fixed + 512, &size));
    CHECK(QTOPO_CODEC_ERR_SIZE
          == qtopo_codec_encode_ef(x, res, N, &p, &key, m, fixed + 4 * N - 1, &size));
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_encode_ef(x, NULL, N, &p, &key, m, sizeof(m), &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, 0, &p, &key, m, 0, &size) && 0 == size);
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, 0, 0, &p, x));
    bad.block = 33;
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_encode(x, N, &bad, &key, m, sizeof(m), &size));
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_codec_decode(m, size, N, &bad, x));
    return 0;
}

/* sum of decoded messages + final residual == sum of inputs: each step rounds
 * x = src + r and r' = x - decoded once, so the exact identity is off by at
 * most 2^-24 (|x_k| + |r_k|) per call and element; we check that bound.  The
 * element that is NaN on one call is left out of the sums. */
typedef struct ef_arrays {
    float *src, *res, *x, *y;
    double *s_in, *s_out, *tol;
} ef_arrays_t;

static int ef_step(ef_arrays_t *a, size_t n, const qtopo_codec_params_t *p, msg_t *m, int k)
{
    qtopo_codec_key_t key = { 3, (uint64_t) k, 0, 0 };
    size_t raw_blocks, nan_at = n / 2;
    fill(k % 2 ? D_GAUSS : D_STUDENT, a->src, n, 40 + (uint64_t) k);
    a->src[nan_at] = 3 == k ? NAN : a->src[nan_at]; /* one raw block on one call */
    for (size_t i = 0; i < n; ++i) {
        a->x[i] = a->src[i] + a->res[i];
    }
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode_ef(a->src, a->res, n, p, &key, m->buf, m->cap,
                                                  &m->size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m->buf, m->size, n, p, a->y));
    CHECK(0 == check_bounds(a->x, a->y, n, p, m, &raw_blocks));
    CHECK((3 == k) == (1 == raw_blocks));
    CHECK(3 != k || 0.0f == a->res[nan_at]);
    for (size_t i = 0; i < n; ++i) {
        if (nan_at == i) {
            continue;
        }
        /* r' = x - y up to one rounding */
        CHECK(fabs((double) a->res[i]) <= fabs((double) a->x[i] - a->y[i]) * (1 + 0x1p-23));
        a->s_in[i] += a->src[i];
        a->s_out[i] += a->y[i];
        a->tol[i] += 0x1p-24 * (fabs((double) a->x[i]) + fabs((double) a->res[i]));
    }
    return 0;
}

static int ef_run(const qtopo_codec_params_t *p, size_t n, int calls)
{
    ef_arrays_t a = { calloc(n, 4), calloc(n, 4), calloc(n, 4), calloc(n, 4),
                      calloc(n, 8), calloc(n, 8), calloc(n, 8) };
    msg_t m = { NULL, NULL, 0, 0 };
    int rc = NULL == a.src || NULL == a.res || NULL == a.x || NULL == a.y || NULL == a.s_in
             || NULL == a.s_out || NULL == a.tol || !msg_alloc(&m, n, p, 2);
    for (int k = 0; k < calls && 0 == rc; ++k) {
        rc = ef_step(&a, n, p, &m, k);
    }
    for (size_t i = 0; i < n && 0 == rc; ++i) {
        double err = fabs(a.s_out[i] + a.res[i] - a.s_in[i]);
        rc = n / 2 != i && !(err <= a.tol[i] + 1e-12 * (fabs(a.s_in[i]) + fabs(a.s_out[i])));
    }
    free(a.src);
    free(a.res);
    free(a.x);
    free(a.y);
    free(a.s_in);
    free(a.s_out);
    free(a.tol);
    free(m.base);
    CHECKF(0 == rc, "bits %d rounding %d", p->bits, p->rounding);
    return 0;
}

static int test_error_feedback(void)
{
    for (int bi = 0; bi < NBITS; ++bi) {
        for (int r = 0; r < 2; ++r) {
            qtopo_codec_params_t p = mkparams(all_bits[bi], 128, r);
            CHECK(0 == ef_run(&p, 1000, 12));
        }
    }
    return 0;
}

static int test_error_bound_values(void)
{
    qtopo_codec_params_t p = mkparams(16, 64, QTOPO_ROUND_NEAREST);
    qtopo_codec_block_info_t info = { 0, 0.0f, 0.0f, 64 };
    CHECK(0x1p-8 == qtopo_codec_error_bound(&p, &info, 1.0f));
    CHECK(0x1p-8 == qtopo_codec_error_bound(&p, &info, -1.99f));
    CHECK(0x1p-134 == qtopo_codec_error_bound(&p, &info, 0.0f));
    CHECK(0x1p120 == qtopo_codec_error_bound(&p, &info, FLT_MAX));
    p.rounding = QTOPO_ROUND_STOCHASTIC;
    CHECK(0x1p-6 == qtopo_codec_error_bound(&p, &info, 3.0f));
    p = mkparams(8, 64, QTOPO_ROUND_NEAREST);
    info.scale = 1.0f;
    CHECK(fabs(qtopo_codec_error_bound(&p, &info, 0.0f) - 1.0) < 1e-3);
    p.rounding = QTOPO_ROUND_STOCHASTIC;
    CHECK(fabs(qtopo_codec_error_bound(&p, &info, 0.0f) - 2.0) < 1e-3);
    info.raw = 1;
    CHECK(0.0 == qtopo_codec_error_bound(&p, &info, 0.0f));
    /* a value beyond the outer level mid + s*L adds its distance to it: 1-bit, s = 1,
     * mid = 0.5, x = 4: 2.5 beyond the level at 1.5 */
    p = mkparams(1, 64, QTOPO_ROUND_NEAREST);
    info = (qtopo_codec_block_info_t) { 0, 1.0f, 0.5f, 64 };
    CHECK(fabs(qtopo_codec_error_bound(&p, &info, 4.0f) - 3.5) < 1e-3);
    CHECK(fabs(qtopo_codec_error_bound(&p, &info, -2.0f) - 2.5) < 1e-3);
    CHECK(fabs(qtopo_codec_error_bound(&p, &info, 1.0f) - 1.0) < 1e-3);
    return 0;
}

/* relative L2 error of one round trip */
static double rel_l2(const float *x, const float *y, size_t n)
{
    double e2 = 0.0, x2 = 0.0;
    for (size_t i = 0; i < n; ++i) {
        e2 += ((double) y[i] - x[i]) * ((double) y[i] - x[i]);
        x2 += (double) x[i] * x[i];
    }
    return sqrt(e2 / x2);
}

/*
 * Nearest rounding at 1 bit is a sign code around the block mean, scaled by the mean
 * absolute deviation: an element decodes to exactly mean +- mean|x - mean| by the sign
 * of x - mean, and one round trip keeps the relative L2 error below the levels the bench
 * measured (Gaussian 0.60, heavy tails 0.76; min/max: 2.1 and 3.7), so the code loses
 * less than the signal.  Error feedback and stochastic rounding keep min/max.
 */
static int test_sign_code(void)
{
    enum { N = 4096, B = 256 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    uint8_t *m = malloc(2 * N * sizeof(float));
    qtopo_codec_params_t p = mkparams(1, B, QTOPO_ROUND_NEAREST);
    qtopo_codec_key_t key = { 1, 2, 3, 0 };
    qtopo_codec_block_info_t info;
    double sum = 0.0, dev = 0.0;
    float mean;
    size_t size;
    for (int d = 0; d < 2; ++d) {
        fill(0 == d ? D_GAUSS : D_STUDENT, x, N, 11 + d);
        CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, NULL, m, 2 * N * 4, &size));
        CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, size, N, &p, y));
        CHECKF(rel_l2(x, y, N) < (0 == d ? 0.62 : 0.80), "%s: rel L2 %.3f",
               dist_name[0 == d ? D_GAUSS : D_STUDENT], rel_l2(x, y, N));
    }
    /* the levels of block 0 are mean +- mean |x - mean| */
    fill(D_GAUSS, x, N, 3);
    for (int i = 0; i < B; ++i) {
        sum += x[i];
    }
    mean = (float) (sum / B);
    for (int i = 0; i < B; ++i) {
        dev += fabs((double) x[i] - mean);
    }
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, NULL, m, 2 * N * 4, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, size, N, &p, y));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m, size, N, &p, 0, &info));
    CHECKF(mean == info.mid && (float) (dev / B) == info.scale, "mid %g/%g scale %g/%g",
           info.mid, mean, info.scale, dev / B);
    for (int i = 0; i < B; ++i) {
        CHECKF(y[i] == (x[i] > mean ? mean + info.scale : mean - info.scale), "i %d x %g y %g",
               i, x[i], y[i]);
    }
    /* a skewed block: the levels stay inside [min, max] (here the low level is min) */
    for (int i = 0; i < B; ++i) {
        x[i] = 0 == i ? 1000.0f : 0.0f;
    }
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, B, &p, NULL, m, 2 * N * 4, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_decode(m, size, B, &p, y));
    for (int i = 0; i < B; ++i) {
        CHECKF(0.0f <= y[i] && 1000.0f >= y[i], "skewed block: y[%d] = %g", i, y[i]);
    }
    /* with error feedback (encode_ef): min/max, so the scale is half the range, far above
     * the mean deviation; the same for stochastic rounding */
    fill(D_GAUSS, x, N, 3);
    memset(y, 0, N * sizeof(float)); /* the residual */
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode_ef(x, y, N, &p, NULL, m, 2 * N * 4, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m, size, N, &p, 0, &info));
    CHECKF(info.scale > 2.0f * (float) (dev / B), "error feedback scale %g", info.scale);
    p.rounding = QTOPO_ROUND_STOCHASTIC;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(x, N, &p, &key, m, 2 * N * 4, &size));
    CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(m, size, N, &p, 0, &info));
    CHECKF(info.scale > 2.0f * (float) (dev / B), "stochastic scale %g", info.scale);
    free(m);
    free(y);
    free(x);
    return 0;
}

int main(void)
{
    static const test_case_t tests[] = {
        { "params", test_params },
        { "sizes", test_sizes },
        { "roundtrip_bounds", test_roundtrip_bounds },
        { "stochastic_unbiased", test_stochastic_unbiased },
        { "stochastic_independent", test_stochastic_independent },
        { "huge_values", test_huge_values },
        { "nonfinite", test_nonfinite },
        { "decode_add", test_decode_add },
        { "simd_scalar_identical", test_simd_scalar_identical },
        { "segment_independence", test_segment_independence },
        { "decoder_rejects", test_decoder_rejects },
        { "raw_mark_needs_zero_mid", test_raw_mark_needs_zero_mid },
        { "encode_errors", test_encode_errors },
        { "error_feedback", test_error_feedback },
        { "error_bound_values", test_error_bound_values },
        { "sign_code", test_sign_code },
    };
    printf("codec kernels: %s\n", qtopo_codec_kernel_name());
    return run_tests(tests, (int) (sizeof(tests) / sizeof(tests[0])));
}
