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
/* helpers of the quantizer, inlined into each (width, rounding) instance so that the
 * width and the rounding are constants there */
#define QTOPO_AVX2_INLINE __attribute__((target("avx2"), always_inline)) static inline
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

/* qtopo_codec_hash32() of 8 lanes */
QTOPO_AVX2_INLINE __m256i hash32x8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 17));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int) 0xed5ad4bbu));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 11));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int) 0xac4c1b51u));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int) 0x31848babu));
    return _mm256_xor_si256(x, _mm256_srli_epi32(x, 14));
}

/* RNG lanes of a run of groups whose indices share the upper 32 bits (see
 * qtopo_codec_rng_bits()): lane i of ctr is the Weyl counter
 * ((uint32_t) (index + i) + (uint32_t) subkey) * W of the next group's element i, hi the
 * subkey's upper half.  All of it wraps modulo 2^32, as in the scalar code. */
typedef struct rng_lanes {
    __m256i ctr, hi;
} rng_lanes_t;

QTOPO_AVX2_INLINE rng_lanes_t rng_lanes_at(uint64_t key, uint64_t index)
{
    uint64_t subkey = qtopo_codec_rng_subkey(key, (uint32_t) (index >> 32));
    __m256i lo = _mm256_add_epi32(_mm256_set1_epi32((int) ((uint32_t) index
                                                           + (uint32_t) subkey)),
                                  _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    rng_lanes_t r = { _mm256_mullo_epi32(lo, _mm256_set1_epi32((int) QTOPO_CODEC_RNG_WEYL)),
                      _mm256_set1_epi32((int) (uint32_t) (subkey >> 32)) };
    return r;
}

/* the random bits of the next group; steps the counters by 8 elements */
QTOPO_AVX2_INLINE __m256i rng_next_x8(rng_lanes_t *r)
{
    __m256i x = hash32x8(r->ctr);
    r->ctr = _mm256_add_epi32(r->ctr, _mm256_set1_epi32((int) (8u * QTOPO_CODEC_RNG_WEYL)));
    return _mm256_xor_si256(x, r->hi);
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
    int bits;
} qvec_t;

QTOPO_AVX2_INLINE qvec_t qvec_of(const qtopo_qblock_t *q)
{
    qvec_t c = { _mm256_set1_ps(q->mid),    _mm256_set1_ps(q->pre),
                 _mm256_set1_ps(q->inv2s),  _mm256_set1_ps(q->half_l),
                 _mm256_set1_ps((float) q->levels), _mm256_setzero_si256(),
                 q->bits };
    return c;
}

/* Codes (as floats) of 8 elements with b <= 8; mirrors quant_one(). */
QTOPO_AVX2_INLINE __m256 quant_x8(__m256 v, const qvec_t *c, int stochastic, __m256i rnd)
{
    __m256 t = _mm256_mul_ps(_mm256_sub_ps(v, c->mid), c->pre);
    __m256 f;
    t = _mm256_mul_ps(t, c->inv2s);
    t = _mm256_add_ps(t, c->half_l);
    if (stochastic) {
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
QTOPO_AVX2_INLINE __m256i bf16_x8(__m256 v, int stochastic, __m256i rnd)
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
QTOPO_AVX2_INLINE void store_bf16_x16(__m256i a, __m256i b, uint8_t *out)
{
    __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
    _mm256_storeu_si256((__m256i *) out, h);
}

QTOPO_AVX2_INLINE uint64_t bytes_x8(__m256i c)
{
    c = _mm256_packus_epi32(c, c);
    c = _mm256_packus_epi16(c, c);
    c = _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    return (uint64_t) _mm_cvtsi128_si64(_mm256_castsi256_si128(c));
}

/* Codes of the 8 elements at x, one per 32-bit lane (bfloat16 or b <= 8). */
QTOPO_AVX2_INLINE __m256i codes_x8(const float *x, const qvec_t *c, rng_lanes_t *r, int bits,
                                   int stochastic)
{
    __m256i rnd = stochastic ? rng_next_x8(r) : _mm256_setzero_si256();
    __m256 v = _mm256_loadu_ps(x);
    return 16 == bits ? bf16_x8(v, stochastic, rnd)
                      : _mm256_cvttps_epi32(quant_x8(v, c, stochastic, rnd));
}

/* one group of 8 */
QTOPO_AVX2_INLINE void quant_group_x8(const float *x, const qvec_t *c, rng_lanes_t *r,
                                      uint8_t *out, int bits, int stochastic)
{
    __m256i k = codes_x8(x, c, r, bits, stochastic);
    if (16 == bits) {
        k = _mm256_permute4x64_epi64(_mm256_packus_epi32(k, _mm256_setzero_si256()), 0xd8);
        _mm_storeu_si128((__m128i *) out, _mm256_castsi256_si128(k));
    } else {
        store_group(out, bytes_x8(k), bits);
    }
}

/* 32 codes, one per byte in element order, packed LSB-first to 4*b bytes */
QTOPO_AVX2_INLINE void pack_x32(__m256i b, int bits, uint8_t *out)
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
QTOPO_AVX2_INLINE void quant_groups_x32(const float *x, const qvec_t *c, rng_lanes_t *r,
                                        uint8_t *out, int bits, int stochastic)
{
    __m256i k0, k1, k2, k3, b; /* not an array: it would live on the stack */
    /* the range scan of the next block would otherwise wait for memory */
    _mm_prefetch((const char *) (x + QTOPO_PREFETCH), _MM_HINT_T0);
    _mm_prefetch((const char *) (x + QTOPO_PREFETCH + 16), _MM_HINT_T0);
    k0 = codes_x8(x, c, r, bits, stochastic);
    k1 = codes_x8(x + 8, c, r, bits, stochastic);
    k2 = codes_x8(x + 16, c, r, bits, stochastic);
    k3 = codes_x8(x + 24, c, r, bits, stochastic);
    if (16 == bits) {
        store_bf16_x16(k0, k1, out);
        store_bf16_x16(k2, k3, out + 32);
        return;
    }
    b = _mm256_packus_epi16(_mm256_packus_epi32(k0, k1), _mm256_packus_epi32(k2, k3));
    b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    pack_x32(b, bits, out);
}

/* `groups` groups that share the RNG lanes r (bits of codes a group) */
QTOPO_AVX2_INLINE void quant_span(const float *x, size_t groups, const qvec_t *c, rng_lanes_t *r,
                                  uint8_t *out, int bits, int stochastic)
{
    size_t g = 0;
    for (; g + 4 <= groups; g += 4) {
        quant_groups_x32(x + 8 * g, c, r, out + g * (size_t) bits, bits, stochastic);
    }
    for (; g < groups; ++g) {
        quant_group_x8(x + 8 * g, c, r, out + g * (size_t) bits, bits, stochastic);
    }
}

/*
 * The quantizer for one width and rounding (constants once inlined into quant_avx2).
 * Stochastic rounding runs in spans whose counters share their upper 32 bits, so the
 * lanes only add 8 per group; the rare group whose counter crosses a multiple of 2^32
 * takes the scalar definition.
 */
QTOPO_AVX2_INLINE void quant_run(const float *x, size_t groups, const qtopo_qblock_t *q,
                                 uint8_t *codes, int bits, int stochastic)
{
    const qvec_t c = qvec_of(q);
    rng_lanes_t r = { _mm256_setzero_si256(), _mm256_setzero_si256() };
    size_t g = 0;
    while (g < groups) {
        size_t span = groups - g;
        uint8_t *out = codes + g * (size_t) bits;
        if (stochastic) {
            uint64_t index = q->index + 8 * g;
            uint64_t left = (1ull << 32) - (uint32_t) index; /* to the next multiple of 2^32 */
            if (8 > left) {
                qtopo_qblock_t cross = *q;
                cross.index = index;
                qtopo_codec_quant_group(x + 8 * g, 8, &cross, out);
                ++g;
                continue;
            }
            span = span < left / 8 ? span : (size_t) (left / 8);
            r = rng_lanes_at(q->key, index);
        }
        quant_span(x + 8 * g, span, &c, &r, out, bits, stochastic);
        g += span;
    }
}

QTOPO_AVX2_INLINE void quant_bits(const float *x, size_t groups, const qtopo_qblock_t *q,
                                  uint8_t *codes, int bits)
{
    if (q->stochastic) {
        quant_run(x, groups, q, codes, bits, 1);
    } else {
        quant_run(x, groups, q, codes, bits, 0);
    }
}

/* each call below is its own instance of quant_run with the width and the rounding as
 * constants (10 in all).  The earlier kernel tested them per group and kept the four
 * groups of a step in a stack array: 8-bit encode of 16 MiB ran at 6.2 GB/s nearest and
 * 2.6 GB/s stochastic against 7.4 and 3.8 with this (the same RNG; CPU time, one run) */
QTOPO_AVX2 static void quant_avx2(const float *x, size_t groups, const qtopo_qblock_t *q,
                                  uint8_t *codes)
{
    switch (q->bits) {
    case 16:
        quant_bits(x, groups, q, codes, 16);
        break;
    case 8:
        quant_bits(x, groups, q, codes, 8);
        break;
    case 4:
        quant_bits(x, groups, q, codes, 4);
        break;
    case 2:
        quant_bits(x, groups, q, codes, 2);
        break;
    default:
        quant_bits(x, groups, q, codes, 1);
        break;
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
                       d->bits };
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
        __m256i a = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g), &c, 0, none));
        __m256i b = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g + 8), &c, 0, none));
        store_bf16_x16(a, b, codes + 16 * g); /* 16 lanes of 16 bits in element order */
    }
    if (g < groups) {
        __m256i a = _mm256_cvttps_epi32(quant_x8(_mm256_loadu_ps(x + 8 * g), &c, 0, none));
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

/* dev_sums for one value of `absolute` (a constant once inlined): partial sums 0-3 in
 * lo, 4-7 in hi, each in group order as in the scalar loop; fabs() is the cleared sign
 * bit */
QTOPO_AVX2_INLINE void dev_sums_run(const float *x, size_t groups, double mid, int absolute,
                                    double part[8])
{
    const __m256d m = _mm256_set1_pd(mid);
    const __m256d magnitude = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));
    __m256d lo = _mm256_loadu_pd(part), hi = _mm256_loadu_pd(part + 4);
    for (size_t g = 0; g < groups; ++g) {
        __m256 v = _mm256_loadu_ps(x + 8 * g);
        __m256d a = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m);
        __m256d b = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m);
        if (absolute) {
            a = _mm256_and_pd(a, magnitude);
            b = _mm256_and_pd(b, magnitude);
        }
        lo = _mm256_add_pd(lo, a);
        hi = _mm256_add_pd(hi, b);
    }
    _mm256_storeu_pd(part, lo);
    _mm256_storeu_pd(part + 4, hi);
}

QTOPO_AVX2 static void dev_sums_avx2(const float *x, size_t groups, double mid, int absolute,
                                     double part[8])
{
    if (absolute) {
        dev_sums_run(x, groups, mid, 1, part);
    } else {
        dev_sums_run(x, groups, mid, 0, part);
    }
}

static const qtopo_codec_kernels_t avx2_kernels = {
    .name = "avx2",
    .range = range_avx2,
    .quant = quant_avx2,
    .dequant = dequant_avx2,
    .quant16 = quant16_avx2,
    .dequant16 = dequant16_avx2,
    .dev_sums = dev_sums_avx2,
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
