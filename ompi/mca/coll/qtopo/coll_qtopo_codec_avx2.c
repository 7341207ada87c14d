/*
 * qtopo quantization codec: AVX2 kernels (range scan, quantize, dequantize
 * and dequantize-accumulate), selected at run time when the CPU has AVX2.
 * Every vector operation mirrors one scalar operation of coll_qtopo_codec.c
 * in the same order (no FMA), so both paths produce bit-identical bytes and
 * floats.  Compiled with a function-level target attribute, so the file
 * itself needs no -mavx2 flag; on other architectures it provides no kernels.
 */

/* The scalar and SIMD paths must round identically: no FMA contraction,
 * whatever the build flags say (clang ignores this under -ffp-contract=fast,
 * so never build this file with that). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "coll_qtopo_codec.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <float.h>
#include <immintrin.h>

#define QTOPO_AVX2     __attribute__((target("avx2")))
#define QTOPO_PREFETCH 2048 /* floats ahead of the quantizer (8 KiB) */

/* Codes of one group of 8 elements are exactly `bits` bytes; constant-size
 * copies let the compiler emit plain loads and stores. */
static inline uint64_t load_group(const uint8_t *c, int bits)
{
    uint64_t u = 0;
    switch (bits) {
    case 8:
        memcpy(&u, c, 8);
        break;
    case 4:
        memcpy(&u, c, 4);
        break;
    case 2:
        memcpy(&u, c, 2);
        break;
    default:
        u = c[0];
        break;
    }
    return u;
}

static inline void store_group(uint8_t *c, uint64_t u, int bits)
{
    u = qtopo_codec_pack8(u, bits);
    switch (bits) {
    case 8:
        memcpy(c, &u, 8);
        break;
    case 4:
        memcpy(c, &u, 4);
        break;
    case 2:
        memcpy(c, &u, 2);
        break;
    default:
        c[0] = (uint8_t) u;
        break;
    }
}

QTOPO_AVX2 static inline __m256i mix32x8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int) 0x7feb352du));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int) 0x846ca68bu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
}

/* qtopo_codec_rng_bits() for the 8 indices lo .. lo + 7 */
QTOPO_AVX2 static inline __m256i rng_x8(uint64_t subkey, uint32_t lo)
{
    __m256i x = _mm256_add_epi32(_mm256_set1_epi32((int) (lo + (uint32_t) subkey)),
                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    x = mix32x8(x);
    x = _mm256_xor_si256(x, _mm256_set1_epi32((int) (uint32_t) (subkey >> 32)));
    return mix32x8(x);
}

QTOPO_AVX2 static float hreduce(__m256 v, int take_max)
{
    __m128 a = _mm256_castps256_ps128(v), b = _mm256_extractf128_ps(v, 1);
    a = take_max ? _mm_max_ps(a, b) : _mm_min_ps(a, b);
    b = _mm_movehl_ps(a, a);
    a = take_max ? _mm_max_ps(a, b) : _mm_min_ps(a, b);
    b = _mm_shuffle_ps(a, a, 1);
    a = take_max ? _mm_max_ps(a, b) : _mm_min_ps(a, b);
    return _mm_cvtss_f32(a);
}

QTOPO_AVX2 static inline void range_x8(const float *x, __m256 *lo, __m256 *hi, __m256i *bad)
{
    const __m256i expo = _mm256_set1_epi32(0x7f800000);
    __m256 v = _mm256_loadu_ps(x);
    __m256i e = _mm256_and_si256(_mm256_castps_si256(v), expo);
    *bad = _mm256_or_si256(*bad, _mm256_cmpeq_epi32(e, expo));
    *lo = _mm256_min_ps(*lo, v);
    *hi = _mm256_max_ps(*hi, v);
}

/* four accumulators: min/max latency would otherwise bound the loop */
QTOPO_AVX2 static int range_avx2(const float *x, size_t groups, float *lo_p, float *hi_p)
{
    __m256 lo[4], hi[4];
    __m256i bad = _mm256_setzero_si256();
    size_t g = 0;
    for (int k = 0; k < 4; ++k) {
        lo[k] = _mm256_set1_ps(FLT_MAX);
        hi[k] = _mm256_set1_ps(-FLT_MAX);
    }
    for (; g + 4 <= groups; g += 4) {
        for (int k = 0; k < 4; ++k) {
            range_x8(x + 8 * (g + (size_t) k), &lo[k], &hi[k], &bad);
        }
    }
    for (; g < groups; ++g) {
        range_x8(x + 8 * g, &lo[0], &hi[0], &bad);
    }
    *lo_p = hreduce(_mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3])), 0);
    *hi_p = hreduce(_mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3])), 1);
    return _mm256_testz_si256(bad, bad);
}

/* The block constants as vectors, in locals: code stores through uint8_t *
 * may alias anything, so fields read through q would be reloaded per group. */
typedef struct qvec {
    __m256 mid, pre, inv2s, half_l, levels;
    __m256i shifts; /* decoder: bit offset of each of 8 codes in a group */
    int bits, stochastic;
} qvec_t;

QTOPO_AVX2 static inline qvec_t qvec_of(const qtopo_qblock_t *q)
{
    qvec_t c = { _mm256_set1_ps(q->mid),    _mm256_set1_ps(q->pre),
                 _mm256_set1_ps(q->inv2s),  _mm256_set1_ps(q->half_l),
                 _mm256_set1_ps((float) q->levels), _mm256_setzero_si256(),
                 q->bits, q->stochastic };
    return c;
}

/* Codes (as floats) of 8 elements with b <= 8; mirrors quant_one(). */
QTOPO_AVX2 static inline __m256 quant_x8(__m256 v, const qvec_t *c, __m256i rnd)
{
    __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, c->mid), c->pre);
    __m256 f;
    t = _mm256_mul_ps(t, c->inv2s);
    t = _mm256_add_ps(t, c->half_l);
    if (c->stochastic) {
        __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(rnd, 8)),
                                 _mm256_set1_ps(0x1p-24f));
        f = _mm256_floor_ps(t);
        f = _mm256_add_ps(f, _mm256_and_ps(_mm256_cmp_ps(u, _mm256_sub_ps(t, f), _CMP_LT_OQ),
                                           _mm256_set1_ps(1.0f)));
    } else {
        f = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    f = _mm256_max_ps(f, _mm256_setzero_ps());
    return _mm256_min_ps(f, c->levels);
}

/* bfloat16 of 8 finite floats, one per 32-bit lane; mirrors bf16_one(). */
QTOPO_AVX2 static inline __m256i bf16_x8(__m256 v, int stochastic, __m256i rnd)
{
    const __m256i bexp = _mm256_set1_epi32(0x7f80);
    __m256i u = _mm256_castps_si256(v), hi16 = _mm256_srli_epi32(u, 16), h, sat;
    __m256i add = stochastic ? _mm256_srli_epi32(rnd, 16)
                             : _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                                _mm256_and_si256(hi16, _mm256_set1_epi32(1)));
    h = _mm256_srli_epi32(_mm256_add_epi32(u, add), 16);
    sat = _mm256_or_si256(_mm256_and_si256(hi16, _mm256_set1_epi32(0x8000)),
                          _mm256_set1_epi32(0x7f7f));
    return _mm256_blendv_epi8(h, sat, _mm256_cmpeq_epi32(_mm256_and_si256(h, bexp), bexp));
}

/* 16 bfloat16 lanes (8 in a, then 8 in b) stored in element order */
QTOPO_AVX2 static inline void store_bf16_x16(__m256i a, __m256i b, uint8_t *out)
{
    __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    _mm256_storeu_si256((__m256i *) out, h);
}

QTOPO_AVX2 static inline uint64_t bytes_x8(__m256i c)
{
    c = _mm256_packus_epi32(c, c);
    c = _mm256_packus_epi16(c, c);
    c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    return (uint64_t) _mm_cvtsi128_si64(_mm256_castsi256_si128(c));
}

/* RNG state of a kernel call: the subkey of the current upper index half */
typedef struct rng_run {
    uint64_t key, hi, subkey;
} rng_run_t;

/* random bits of the 8 elements from index on; the caller has checked that
 * they share the upper 32 bits of the counter */
QTOPO_AVX2 static inline __m256i rng_group(rng_run_t *r, uint64_t index)
{
    if ((index >> 32) != r->hi) {
        r->hi = index >> 32;
        r->subkey = qtopo_codec_rng_subkey(r->key, (uint32_t) r->hi);
    }
    return rng_x8(r->subkey, (uint32_t) index);
}

/* one group of 8 (any b) */
QTOPO_AVX2 static inline void quant_group_x8(const float *x, uint64_t index, const qvec_t *c,
                                             rng_run_t *r, uint8_t *out)
{
    __m256i rnd = c->stochastic ? rng_group(r, index) : _mm256_setzero_si256();
    __m256 v = _mm256_loadu_ps(x);
    if (16 == c->bits) {
        __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(bf16_x8(v, c->stochastic, rnd),
                                                                 _mm256_setzero_si256()),
                                             0xd8);
        _mm_storeu_si128((__m128i *) out, _mm256_castsi256_si128(h));
    } else {
        store_group(out, bytes_x8(_mm256_cvttps_epi32(quant_x8(v, c, rnd))), c->bits);
    }
}

/* 32 codes, one per byte in element order, packed LSB-first to 4*b bytes */
QTOPO_AVX2 static inline void pack_x32(__m256i b, int bits, uint8_t *out)
{
    const __m256i lane_lo = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
    uint32_t mask;
    switch (bits) {
    case 8:
        _mm256_storeu_si256((__m256i *) out, b);
        break;
    case 4: /* byte pairs -> c0 + 16 c1 */
        b = _mm256_maddubs_epi16(b, _mm256_set1_epi16(0x1001));
        b = _mm256_permute4x64_epi64(_mm256_packus_epi16(b, b), 0x08);
        _mm_storeu_si128((__m128i *) out, _mm256_castsi256_si128(b));
        break;
    case 2: /* byte quads -> c0 + 4 c1 + 16 c2 + 64 c3 */
        b = _mm256_maddubs_epi16(b, _mm256_set1_epi16(0x0401));
        b = _mm256_madd_epi16(b, _mm256_set1_epi32(0x00100001));
        b = _mm256_packus_epi32(b, b);
        b = _mm256_packus_epi16(b, b);
        b = _mm256_permutevar8x32_epi32(b, lane_lo);
        _mm_storel_epi64((__m128i *) out, _mm256_castsi256_si128(b));
        break;
    default: /* one bit per byte: the sign bit after a shift by 7 */
        mask = (uint32_t) _mm256_movemask_epi8(_mm256_slli_epi16(b, 7));
        memcpy(out, &mask, sizeof(mask));
        break;
    }
}

/* four groups: bfloat16 goes out as two 32-byte stores; b <= 8 codes are
 * packed to bytes with 4 shuffles instead of 12, then squeezed to b bits */
QTOPO_AVX2 static inline void quant_groups_x32(const float *x, uint64_t index, const qvec_t *c,
                                               rng_run_t *r, uint8_t *out)
{
    __m256i k[4], b;
    /* the range scan of the next block would otherwise wait for memory */
    _mm_prefetch((const char *) (x + QTOPO_PREFETCH), _MM_HINT_T0);
    _mm_prefetch((const char *) (x + QTOPO_PREFETCH + 16), _MM_HINT_T0);
    for (int j = 0; j < 4; ++j) {
        __m256i rnd = c->stochastic ? rng_group(r, index + 8 * (uint64_t) j)
                                    : _mm256_setzero_si256();
        __m256 v = _mm256_loadu_ps(x + 8 * j);
        k[j] = 16 == c->bits ? bf16_x8(v, c->stochastic, rnd)
                             : _mm256_cvttps_epi32(quant_x8(v, c, rnd));
    }
    if (16 == c->bits) {
        store_bf16_x16(k[0], k[1], out);
        store_bf16_x16(k[2], k[3], out + 32);
        return;
    }
    b = _mm256_packus_epi16(_mm256_packus_epi32(k[0], k[1]), _mm256_packus_epi32(k[2], k[3]));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    pack_x32(b, c->bits, out);
}

QTOPO_AVX2 static void quant_avx2(const float *x, size_t groups, const qtopo_qblock_t *q,
                                  uint8_t *codes)
{
    const qvec_t c = qvec_of(q);
    rng_run_t r = { q->key, UINT64_MAX, 0 };
    size_t g = 0;
    while (g < groups) {
        uint64_t index = q->index + 8 * g;
        size_t span = g + 4 <= groups ? 4 : 1; /* groups in this step */
        uint8_t *out = codes + g * (size_t) c.bits;
        if (c.stochastic && (index >> 32) != ((index + 8 * span - 1) >> 32)) {
            qtopo_qblock_t cross = *q; /* the RNG counter crosses 2^32 */
            cross.index = index;
            qtopo_codec_quant_group(x + 8 * g, 8, &cross, out);
            span = 1;
        } else if (4 == span) {
            quant_groups_x32(x + 8 * g, index, &c, &r, out);
        } else {
            quant_group_x8(x + 8 * g, index, &c, &r, out);
        }
        g += span;
    }
}

/* Values of 8 elements; mirrors qtopo_codec_dequant_group(). */
QTOPO_AVX2 static inline __m256 dequant_x8(const uint8_t *c, const qvec_t *d, __m256i sign)
{
    __m256i k;
    if (16 == d->bits) {
        k = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) c));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_xor_si256(k, sign), 16));
    }
    if (8 == d->bits) {
        k = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long) load_group(c, 8)));
    } else { /* code i is bits i*b .. i*b + b - 1 of the group's word */
        k = _mm256_set1_epi32((int) (uint32_t) load_group(c, d->bits));
        k = _mm256_and_si256(_mm256_srlv_epi32(k, d->shifts), _mm256_cvttps_epi32(d->levels));
    }
    k = _mm256_sub_epi32(_mm256_slli_epi32(k, 1), _mm256_cvttps_epi32(d->levels));
    return _mm256_add_ps(d->mid, _mm256_mul_ps(d->pre, _mm256_cvtepi32_ps(k)));
}

QTOPO_AVX2 static void dequant_avx2(const uint8_t *codes, size_t groups, const qtopo_dqblock_t *d,
                                    float *out, int add)
{
    /* pre holds the scale here; see qvec_t for why the constants are local */
    const qvec_t c = { _mm256_set1_ps(d->mid),
                       _mm256_set1_ps(d->scale),
                       _mm256_setzero_ps(),
                       _mm256_setzero_ps(),
                       _mm256_set1_ps((float) d->levels),
                       _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(d->bits)),
                       d->bits,
                       0 };
    const __m256i sign = _mm256_set1_epi32((int) d->sign);
    for (size_t g = 0; g < groups; ++g) {
        __m256 v = dequant_x8(codes + g * (size_t) c.bits, &c, sign);
        if (add) {
            v = _mm256_add_ps(_mm256_loadu_ps(out + 8 * g), v);
        }
        _mm256_storeu_ps(out + 8 * g, v);
    }
}

/* 16-bit integer codes of the error-bounded format (nearest rounding, L = 65535):
 * quant_x8's arithmetic, codes stored as 16-bit lanes */
QTOPO_AVX2 static void quant16_avx2(const float *x, size_t groups, const qtopo_qblock_t *q,
                                    uint8_t *codes)
{
    const qvec_t c = qvec_of(q);
    const __m256i none = _mm256_setzero_si256();
    size_t g = 0;
    for (; g + 2 <= groups; g += 2) {
        __m256i a = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g), &c, none));
        __m256i b = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g + 8), &c, none));
        store_bf16_x16(a, b, codes + 16 * g); /* 16 lanes of 16 bits in element order */
    }
    if (g < groups) {
        __m256i a = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g), &c, none));
        __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, none), 0xd8);
        _mm_storeu_si128((__m128i *) (codes + 16 * g), _mm256_castsi256_si128(h));
    }
}

/* mirrors dequant_one() with L = 65535 */
QTOPO_AVX2 static void dequant16_avx2(const uint8_t *codes, size_t groups,
                                      const qtopo_dqblock_t *d, float *out, int add)
{
    const __m256 mid = _mm256_set1_ps(d->mid), scale = _mm256_set1_ps(d->scale);
    const __m256i levels = _mm256_set1_epi32(d->levels);
    for (size_t g = 0; g < groups; ++g) {
        __m256i k = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) (codes + 16 * g)));
        __m256 v;
        k = _mm256_sub_epi32(_mm256_slli_epi32(k, 1), levels);
        v = _mm256_add_ps(mid, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(k)));
        if (add) {
            v = _mm256_add_ps(_mm256_loadu_ps(out + 8 * g), v);
        }
        _mm256_storeu_ps(out + 8 * g, v);
    }
}

static const qtopo_codec_kernels_t avx2_kernels = {
    .name = "avx2",
    .range = range_avx2,
    .quant = quant_avx2,
    .dequant = dequant_avx2,
    .quant16 = quant16_avx2,
    .dequant16 = dequant16_avx2,
};

const qtopo_codec_kernels_t *qtopo_codec_avx2_kernels(void)
{
    static int has_avx2 = -1; /* racing first calls store the same value */
    int has = __atomic_load_n(&has_avx2, __ATOMIC_RELAXED);
    if (0 > has) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&has_avx2, has, __ATOMIC_RELAXED);
    }
    return has ? &avx2_kernels : NULL;
}

#else /* no x86-64 GCC-compatible compiler: scalar kernels only */

const qtopo_codec_kernels_t *qtopo_codec_avx2_kernels(void)
{
    return NULL;
}

#endif
