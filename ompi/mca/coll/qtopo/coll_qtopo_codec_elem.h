/*
 * qtopo codec, per-element and per-block math shared by the CPU codec
 * (coll_qtopo_codec.c, and the AVX2 kernels for tails) and the CUDA kernels
 * (coll_qtopo_codec_cuda.cu): the block layout sizes, the min/max and 1-bit
 * sign headers, the quantizer constants, the counter-based RNG, quantizing
 * and dequantizing one element, and the packing of 8 codes.  Everything here
 * is one definition compiled by both compilers, so a GPU encodes exactly the
 * bytes a CPU does (see coll_qtopo_codec.h for the format).
 *
 * QTOPO_HD marks each function __host__ __device__ under nvcc and static
 * inline otherwise.  Bit identity needs the same IEEE operations on both
 * sides: no FMA contraction (gcc -ffp-contract=off, nvcc --fmad=false), no
 * flush-to-zero (never nvcc --use_fast_math / -ftz=true), float and double
 * division correctly rounded (nvcc's default -prec-div=true; all divisions
 * here are in double), round-to-nearest.  Pure C11 (and C++ for nvcc), no
 * Open MPI types.
 */

#ifndef MCA_COLL_QTOPO_CODEC_ELEM_H
#define MCA_COLL_QTOPO_CODEC_ELEM_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define QTOPO_HD static inline __host__ __device__
#else
#define QTOPO_HD static inline
#endif

#define QTOPO_ELEM_U24       0x1p-24f /* 2^-24: one step of the 24-bit uniform */
#define QTOPO_ELEM_BF16_MASK 0x7f80u  /* bfloat16 exponent field */

/* Per-block quantizer constants (b <= 8) or bfloat16 settings (b == 16). */
typedef struct qtopo_qblock {
    float mid;      /* block centre */
    float pre;      /* 1, or 2^-64 for s >= 2^63 (keeps inv2s a normal float) */
    float inv2s;    /* 1 / (2 s pre), or 0 when s == 0 */
    float half_l;   /* L / 2 */
    int levels;     /* L = 2^b - 1 */
    int bits;
    int stochastic;
    uint64_t key;   /* per-call RNG key, from (seed, call, rank) */
    uint64_t index; /* logical index of the first element handled */
} qtopo_qblock_t;

/* Dequantizer constants: value = mid + scale * (2q - L).  For b == 16,
 * sign is 0 or 0x8000 and is xor-ed into each bfloat16 (negation). */
typedef struct qtopo_dqblock {
    float mid;
    float scale;
    int levels;
    int bits;
    uint32_t sign;
} qtopo_dqblock_t;

/* ---- layout ------------------------------------------------------------------------ */

QTOPO_HD size_t qtopo_elem_header_bytes(int bits)
{
    return 16 == bits ? 4 : 8;
}

QTOPO_HD size_t qtopo_elem_code_bytes(size_t len, int bits)
{
    return (len * (size_t) bits + 7) / 8;
}

QTOPO_HD size_t qtopo_elem_block_bytes(size_t len, int bits)
{
    return qtopo_elem_header_bytes(bits) + qtopo_elem_code_bytes(len, bits);
}

QTOPO_HD uint32_t qtopo_elem_f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

QTOPO_HD float qtopo_elem_u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

/* ---- counter-based RNG ------------------------------------------------------------- */

/*
 * Counter-based RNG: the 32 random bits of logical element `index`.  With hi and lo its
 * upper and lower 32 bits and subkey = qtopo_codec_rng_subkey(key, hi), they are
 *   hash32((lo + (uint32_t) subkey) * QTOPO_CODEC_RNG_WEYL) ^ (uint32_t) (subkey >> 32),
 * one hash per element.  hash32 is a bijection (three multiply-xorshift rounds, the
 * "triple32" constants of Wellons' hash search), so 2^32 consecutive counters give every
 * value once; the Weyl multiplier spreads consecutive counters before it, and the SIMD
 * kernels step it with one addition of 8 W per group of 8.  This replaced two rounds of a
 * two-multiply hash on the bare counter (about twice the work).  Checked by `make -C
 * test/codec rng`, a chi-square test of pairs of 8-bit windows of the output at lags 1 to
 * 32 over 2^28 counters (45 z-scores, mean z^2 1.09, max |z| 2.9; a prototype of it failed
 * one two-multiply round on the bare counter at z = 195 and found lag 1 at z = 1.7 to 2.7
 * for every key with the Weyl step), and in test_codec by the unbiasedness and
 * independence tests of stochastic rounding; see docs/CODEC_BENCH.md.
 */
#define QTOPO_CODEC_RNG_WEYL 0x9e3779b9u

QTOPO_HD uint32_t qtopo_codec_hash32(uint32_t x)
{
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    x *= 0xac4c1b51u;
    x ^= x >> 15;
    x *= 0x31848babu;
    x ^= x >> 14;
    return x;
}

QTOPO_HD uint64_t qtopo_codec_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Keys for the 2^32 indices that share the upper half `hi`. */
QTOPO_HD uint64_t qtopo_codec_rng_subkey(uint64_t key, uint32_t hi)
{
    return qtopo_codec_mix64(key ^ ((uint64_t) hi * 0xd6e8feb86659fd93ull));
}

QTOPO_HD uint32_t qtopo_codec_rng_bits(uint64_t subkey, uint32_t lo)
{
    return qtopo_codec_hash32((lo + (uint32_t) subkey) * QTOPO_CODEC_RNG_WEYL)
           ^ (uint32_t) (subkey >> 32);
}

/* The per-call RNG key of (seed, call, rank). */
QTOPO_HD uint64_t qtopo_elem_call_key(uint64_t seed, uint64_t call, uint32_t rank)
{
    return qtopo_codec_mix64(qtopo_codec_mix64(qtopo_codec_mix64(seed) ^ call) ^ rank);
}

/* The random bits of element i of the group q describes (0 under nearest rounding). */
QTOPO_HD uint32_t qtopo_elem_rng(const qtopo_qblock_t *q, int i)
{
    uint64_t index = q->index + (uint64_t) i;
    if (!q->stochastic) {
        return 0;
    }
    return qtopo_codec_rng_bits(qtopo_codec_rng_subkey(q->key, (uint32_t) (index >> 32)),
                                (uint32_t) index);
}

/* ---- packing ------------------------------------------------------------------------ */

/* 8 codes, one per byte of u (each < 2^bits) -> 8*bits packed bits, and back. */
QTOPO_HD uint64_t qtopo_codec_pack8(uint64_t u, int bits)
{
    int w = 8 - bits;
    if (8 == bits) {
        return u;
    }
    u = (u | (u >> w)) & 0x00ff00ff00ff00ffull;
    u = (u | (u >> (2 * w))) & 0x0000ffff0000ffffull;
    return (u | (u >> (4 * w))) & 0x00000000ffffffffull;
}

QTOPO_HD uint64_t qtopo_codec_unpack8(uint64_t u, int bits)
{
    uint64_t m = (1ull << bits) - 1;     /* one code */
    uint64_t m2 = m | (m << bits);       /* two codes */
    uint64_t m4 = m2 | (m2 << 2 * bits); /* four codes */
    int w = 8 - bits;
    if (8 == bits) {
        return u;
    }
    u = (u | (u << (4 * w))) & (m4 | (m4 << 32));
    u = (u | (u << (2 * w))) & (m2 * 0x0000000100000001ull * 0x10001ull);
    return (u | (u << w)) & (m * 0x0101010101010101ull);
}

/* ---- one element ------------------------------------------------------------------- */

/* The code of x (b <= 8): nearest or stochastic, clipped to [0, L]. */
QTOPO_HD uint32_t qtopo_elem_quant(float x, const qtopo_qblock_t *q, uint32_t rnd)
{
    float d = x - q->mid;
    float t = d * q->pre;
    float f;
    t = t * q->inv2s;
    t = t + q->half_l;
    if (q->stochastic) {
        f = floorf(t);
        if ((float) (rnd >> 8) * QTOPO_ELEM_U24 < t - f) {
            f = f + 1.0f;
        }
    } else {
        f = rintf(t);
    }
    f = 0.0f > f ? 0.0f : f;
    f = f > (float) q->levels ? (float) q->levels : f;
    return (uint32_t) f;
}

/* The bfloat16 of a finite x: nearest-even or stochastic, saturating (never Inf). */
QTOPO_HD uint32_t qtopo_elem_bf16(float x, int stochastic, uint32_t rnd)
{
    uint32_t u = qtopo_elem_f2u(x), h;
    h = (u + (stochastic ? rnd >> 16 : 0x7fffu + ((u >> 16) & 1u))) >> 16;
    if (QTOPO_ELEM_BF16_MASK == (h & QTOPO_ELEM_BF16_MASK)) {
        h = ((u >> 16) & 0x8000u) | 0x7f7fu; /* x is finite: saturate, never Inf */
    }
    return h;
}

QTOPO_HD float qtopo_elem_dequant(uint32_t code, const qtopo_dqblock_t *d)
{
    float k = (float) (2 * (int32_t) code - d->levels);
    float v = d->scale * k;
    return d->mid + v;
}

/*
 * a + b with the CPU's NaN bits. The CPU codec adds in scalar SSE code (x86-64) or AVX2,
 * where a NaN operand comes out quieted (the first one, a, when both are NaN) and an
 * invalid sum (Inf - Inf) gives the default NaN 0xffc00000; a GPU returns 0x7fffffff
 * for all of them. On the GPU (QTOPO_ELEM_GPU_NAN, set for nvcc's device pass) the
 * CPU's bits are rebuilt; on the CPU this is a + b. Every sum in the codec that can
 * meet a NaN (error feedback's x + residual, decode_add) goes through it.
 */
#if defined(__CUDA_ARCH__) && !defined(QTOPO_ELEM_GPU_NAN)
#define QTOPO_ELEM_GPU_NAN 1
#endif

QTOPO_HD float qtopo_elem_add(float a, float b)
{
#if defined(QTOPO_ELEM_GPU_NAN)
    float r = a + b;
    if (!isnan(r)) {
        return r;
    }
    if (isnan(a)) {
        return qtopo_elem_u2f(qtopo_elem_f2u(a) | 0x00400000u);
    }
    if (isnan(b)) {
        return qtopo_elem_u2f(qtopo_elem_f2u(b) | 0x00400000u);
    }
    return qtopo_elem_u2f(0xffc00000u);
#else
    return a + b;
#endif
}

/* ---- groups of up to 8 elements ----------------------------------------------------- */

/* The packed codes of count <= 8 elements (b <= 8): count * bits bits, LSB first. */
QTOPO_HD uint64_t qtopo_elem_quant8(const float *x, int count, const qtopo_qblock_t *q)
{
    uint64_t u = 0;
    for (int i = 0; i < count; ++i) {
        u |= (uint64_t) qtopo_elem_quant(x[i], q, qtopo_elem_rng(q, i)) << (8 * i);
    }
    return qtopo_codec_pack8(u, q->bits);
}

/* Codes of count <= 8 elements at codes: packed (b <= 8) or two bytes each (b == 16). */
QTOPO_HD void qtopo_elem_quant_group(const float *x, int count, const qtopo_qblock_t *q,
                                     uint8_t *codes)
{
    if (16 != q->bits) {
        uint64_t u = qtopo_elem_quant8(x, count, q);
        memcpy(codes, &u, qtopo_elem_code_bytes((size_t) count, q->bits));
        return;
    }
    for (int i = 0; i < count; ++i) {
        uint32_t h = qtopo_elem_bf16(x[i], q->stochastic, qtopo_elem_rng(q, i));
        codes[2 * i] = (uint8_t) h;
        codes[2 * i + 1] = (uint8_t) (h >> 8);
    }
}

/* out[i] = (or +=, with add) the value of code i of 8 packed b-bit codes (b <= 8),
 * i < count <= 8. */
QTOPO_HD void qtopo_elem_dequant8(uint64_t packed, int count, const qtopo_dqblock_t *d, float *out,
                                  int add)
{
    uint64_t u = qtopo_codec_unpack8(packed, d->bits);
    for (int i = 0; i < count; ++i) {
        float v = qtopo_elem_dequant((uint32_t) (u >> (8 * i)) & 0xffu, d);
        out[i] = add ? qtopo_elem_add(out[i], v) : v;
    }
}

/* out[i] = (or +=, with add) the value of code i, i < count <= 8. */
QTOPO_HD void qtopo_elem_dequant_group(const uint8_t *codes, int count, const qtopo_dqblock_t *d,
                                       float *out, int add)
{
    uint64_t u = 0;
    if (16 != d->bits) {
        memcpy(&u, codes, qtopo_elem_code_bytes((size_t) count, d->bits));
        qtopo_elem_dequant8(u, count, d, out, add);
        return;
    }
    for (int i = 0; i < count; ++i) {
        uint32_t w = ((uint32_t) codes[2 * i] | ((uint32_t) codes[2 * i + 1] << 8)) ^ d->sign;
        float v = qtopo_elem_u2f(w << 16);
        out[i] = add ? qtopo_elem_add(out[i], v) : v;
    }
}

/* ---- block headers and constants ------------------------------------------------------ */

/* The decoder's acceptance test for a non-raw b <= 8 header; it also makes
 * sure that every code decodes to a finite value (rounding is monotonic, so
 * the two extreme codes bound all others). */
QTOPO_HD int qtopo_elem_header_ok(float mid, float scale, int levels)
{
    float span;
    if (!isfinite(mid) || !isfinite(scale) || signbit(scale)) {
        return 0;
    }
    if (0.0f != scale && FLT_MIN > scale) {
        return 0;
    }
    span = scale * (float) levels;
    return isfinite(mid + span) && isfinite(mid - span);
}

/* The next float toward zero of a finite non-zero x (nextafterf without
 * the library call). */
QTOPO_HD float qtopo_elem_toward_zero(float x)
{
    return qtopo_elem_u2f(qtopo_elem_f2u(x) - 1);
}

/*
 * Min/max header for a finite block with extremes lo <= hi.  The centre is
 * rounded toward zero so that mid +- (half range) stays inside [lo, hi]'s
 * hull and cannot overflow even for +-FLT_MAX; the ranges are computed in
 * double.  Returns 0 if no finite header fits (the block then goes raw).
 * (Why min/max: the comment on min/max headers in coll_qtopo_codec.c.)
 */
QTOPO_HD int qtopo_elem_make_header(float lo, float hi, int levels, float *mid_p, float *scale_p)
{
    double mid_d = 0.5 * (double) hi + 0.5 * (double) lo;
    float mid = (float) mid_d;
    double half;
    float scale;
    int ok;
    if (fabs((double) mid) > fabs(mid_d)) {
        mid = qtopo_elem_toward_zero(mid);
    }
    half = fmax((double) hi - (double) mid, (double) mid - (double) lo);
    scale = (float) (half / levels);
    if (0.0 < half && FLT_MIN > scale) {
        scale = FLT_MIN;
    }
    ok = qtopo_elem_header_ok(mid, scale, levels);
    for (int i = 0; i < 4 && !ok; ++i) {
        scale = qtopo_elem_toward_zero(scale);
        ok = qtopo_elem_header_ok(mid, scale, levels);
    }
    *mid_p = mid;
    *scale_p = scale;
    return ok;
}

/* The 1-bit sign header's centre from the block's sum (the mean, rounded to float). */
QTOPO_HD double qtopo_elem_sign_mid(double sum, size_t len)
{
    return (double) (float) (sum / (double) len);
}

/* The 1-bit sign header from its centre and the sum of |x - mid| over the block: s =
 * the mean absolute deviation, capped so that mid +- s stays in [lo, hi]. Returns 0 if
 * the decoder would not accept it (the min/max header stays). */
QTOPO_HD int qtopo_elem_sign_header(double mid, double sum_abs, size_t len, float lo, float hi,
                                    float *mid_p, float *scale_p)
{
    double room = fmin((double) hi - mid, mid - (double) lo); /* >= 0: lo <= mid <= hi */
    float s = (float) fmin(sum_abs / (double) len, room);
    if ((double) s > room) {
        s = qtopo_elem_toward_zero(s);
    }
    *mid_p = (float) mid;
    *scale_p = s;
    if (0.0f != s && FLT_MIN > s) {
        return 0;
    }
    return qtopo_elem_header_ok(*mid_p, s, 1);
}

/* Quantizer constants of a block with header (mid, scale). */
QTOPO_HD void qtopo_elem_qblock(qtopo_qblock_t *q, int bits, int stochastic, float mid,
                                float scale, uint64_t key, uint64_t index)
{
    q->bits = bits;
    q->levels = 16 == bits ? 0 : (1 << bits) - 1;
    q->stochastic = stochastic;
    q->mid = mid;
    q->pre = 0x1p63f <= scale ? 0x1p-64f : 1.0f;
    q->inv2s = 0.0f == scale ? 0.0f : (float) (1.0 / (2.0 * (double) scale * q->pre));
    q->half_l = 0.5f * (float) q->levels;
    q->key = key;
    q->index = index;
}

/* Dequantizer constants; negate gives the dequantizer of -value (error feedback). */
QTOPO_HD void qtopo_elem_dqblock(qtopo_dqblock_t *d, int bits, float mid, float scale,
                                 int negate)
{
    d->bits = bits;
    d->levels = 16 == bits ? 0 : (1 << bits) - 1;
    d->mid = negate ? -mid : mid;
    d->scale = negate ? -scale : scale;
    d->sign = negate ? 0x8000u : 0u;
}

#endif /* MCA_COLL_QTOPO_CODEC_ELEM_H */
