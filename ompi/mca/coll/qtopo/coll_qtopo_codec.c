/*
 * qtopo quantization codec: message format, block headers, the portable
 * scalar kernels, kernel dispatch (scalar / AVX2) and the encode, decode,
 * decode_add and error-feedback drivers.  See coll_qtopo_codec.h for the
 * format and the error bounds.  No allocation anywhere in this file.
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

#include <float.h>
#include <math.h>
#include <string.h>

/* Per-call encoder state. */
typedef struct encoder {
    const qtopo_codec_kernels_t *kern;
    const qtopo_codec_params_t *p;
    uint64_t key;       /* RNG key of this call */
    uint64_t index;     /* logical index of the current block's first element */
    uint8_t *raw;       /* next free byte of the raw appendix */
    const uint8_t *end; /* end of the output buffer */
    int ef;             /* encoding with error feedback (encode_ef) */
} encoder_t;

static int force_scalar = 0;

/* ---- sizes ---------------------------------------------------------- */

int qtopo_codec_params_check(const qtopo_codec_params_t *p)
{
    if (NULL == p) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (16 != p->bits && 8 != p->bits && 4 != p->bits && 2 != p->bits && 1 != p->bits) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (QTOPO_CODEC_BLOCK_MIN > p->block || QTOPO_CODEC_BLOCK_MAX < p->block
        || 0 != p->block % 8) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (QTOPO_ROUND_NEAREST != p->rounding && QTOPO_ROUND_STOCHASTIC != p->rounding) {
        return QTOPO_CODEC_ERR_ARG;
    }
    return QTOPO_CODEC_OK;
}

size_t qtopo_codec_fixed_size(size_t n, const qtopo_codec_params_t *p)
{
    size_t full, rest;
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || QTOPO_CODEC_MAX_COUNT < n) {
        return 0;
    }
    full = n / (size_t) p->block;
    rest = n % (size_t) p->block;
    return full * qtopo_elem_block_bytes((size_t) p->block, p->bits)
           + (0 != rest ? qtopo_elem_block_bytes(rest, p->bits) : 0);
}

size_t qtopo_codec_max_size(size_t n, const qtopo_codec_params_t *p)
{
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || QTOPO_CODEC_MAX_COUNT < n) {
        return 0;
    }
    return qtopo_codec_fixed_size(n, p) + 4 * n;
}

/* ---- unaligned little-endian field access ---------------------------- */

static uint32_t load_u32(const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, sizeof(v));
    return v;
}

static float load_f32(const uint8_t *b)
{
    float v;
    memcpy(&v, b, sizeof(v));
    return v;
}

static void store_f32(uint8_t *b, float v)
{
    memcpy(b, &v, sizeof(v));
}

static void store_u32(uint8_t *b, uint32_t v)
{
    memcpy(b, &v, sizeof(v));
}

/* ---- groups (the definition the SIMD code follows: coll_qtopo_codec_elem.h) */

void qtopo_codec_quant_group(const float *x, int count, const qtopo_qblock_t *q, uint8_t *codes)
{
    qtopo_elem_quant_group(x, count, q, codes);
}

void qtopo_codec_dequant_group(const uint8_t *codes, int count, const qtopo_dqblock_t *d,
                               float *out, int add)
{
    qtopo_elem_dequant_group(codes, count, d, out, add);
}

/* ---- scalar kernels --------------------------------------------------- */

static int range_elems(const float *x, size_t n, float *lo_p, float *hi_p)
{
    float lo = *lo_p, hi = *hi_p;
    uint32_t nonfinite = 0;
    for (size_t i = 0; i < n; ++i) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof(u));
        nonfinite |= 0x7f800000u == (u & 0x7f800000u);
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    *lo_p = lo;
    *hi_p = hi;
    return !nonfinite;
}

static int range_scalar(const float *x, size_t groups, float *lo_p, float *hi_p)
{
    *lo_p = FLT_MAX;
    *hi_p = -FLT_MAX;
    return range_elems(x, 8 * groups, lo_p, hi_p);
}

static void quant_scalar(const float *x, size_t groups, const qtopo_qblock_t *q, uint8_t *codes)
{
    qtopo_qblock_t g = *q;
    for (size_t i = 0; i < groups; ++i, g.index += 8) {
        qtopo_codec_quant_group(x + 8 * i, 8, &g, codes + i * (size_t) q->bits);
    }
}

static void dequant_scalar(const uint8_t *codes, size_t groups, const qtopo_dqblock_t *d,
                           float *out, int add)
{
    for (size_t i = 0; i < groups; ++i) {
        qtopo_codec_dequant_group(codes + i * (size_t) d->bits, 8, d, out + 8 * i, add);
    }
}

/* 16-bit codes (error-bounded format), any element count */
static void quant16_elems(const float *x, size_t n, const qtopo_qblock_t *q, uint8_t *codes)
{
    for (size_t i = 0; i < n; ++i) {
        uint32_t c = qtopo_elem_quant(x[i], q, 0);
        codes[2 * i] = (uint8_t) c;
        codes[2 * i + 1] = (uint8_t) (c >> 8);
    }
}

static void dequant16_elems(const uint8_t *codes, size_t n, const qtopo_dqblock_t *d, float *out,
                            int add)
{
    for (size_t i = 0; i < n; ++i) {
        float v = qtopo_elem_dequant((uint32_t) codes[2 * i] | (uint32_t) codes[2 * i + 1] << 8, d);
        out[i] = add ? out[i] + v : v;
    }
}

static void quant16_scalar(const float *x, size_t groups, const qtopo_qblock_t *q, uint8_t *codes)
{
    quant16_elems(x, 8 * groups, q, codes);
}

static void dequant16_scalar(const uint8_t *codes, size_t groups, const qtopo_dqblock_t *d,
                             float *out, int add)
{
    dequant16_elems(codes, 8 * groups, d, out, add);
}

static void dev_sums_scalar(const float *x, size_t groups, double mid, int absolute,
                            double part[8])
{
    for (size_t i = 0; i < 8 * groups; ++i) {
        double d = (double) x[i] - mid;
        part[i % 8] += absolute ? fabs(d) : d;
    }
}

static const qtopo_codec_kernels_t scalar_kernels = {
    .name = "scalar",
    .range = range_scalar,
    .quant = quant_scalar,
    .dequant = dequant_scalar,
    .quant16 = quant16_scalar,
    .dequant16 = dequant16_scalar,
    .dev_sums = dev_sums_scalar,
};

void qtopo_codec_force_scalar(int on)
{
    force_scalar = on;
}

static const qtopo_codec_kernels_t *kernels(void)
{
    const qtopo_codec_kernels_t *k = force_scalar ? NULL : qtopo_codec_avx2_kernels();
    return NULL != k ? k : &scalar_kernels;
}

const char *qtopo_codec_kernel_name(void)
{
    return kernels()->name;
}

/* ---- whole blocks (kernel on full groups, scalar group on the tail) --- */

static int range_block(const qtopo_codec_kernels_t *kern, const float *x, size_t len,
                       float *lo_p, float *hi_p)
{
    size_t groups = len / 8;
    int finite = kern->range(x, groups, lo_p, hi_p);
    finite &= range_elems(x + 8 * groups, len % 8, lo_p, hi_p);
    /* -0.0 and +0.0 compare equal: make the extremes independent of the order
     * in which the kernel met them, so every path builds the same header */
    *lo_p = *lo_p + 0.0f;
    *hi_p = *hi_p + 0.0f;
    return finite;
}

static void quant_block(const qtopo_codec_kernels_t *kern, const float *x, size_t len,
                        const qtopo_qblock_t *q, uint8_t *codes)
{
    size_t groups = len / 8;
    qtopo_qblock_t tail = *q;
    kern->quant(x, groups, q, codes);
    if (0 != len % 8) {
        tail.index += 8 * groups;
        qtopo_codec_quant_group(x + 8 * groups, (int) (len % 8), &tail,
                                codes + groups * (size_t) q->bits);
    }
}

static void dequant_block(const qtopo_codec_kernels_t *kern, const uint8_t *codes, size_t len,
                          const qtopo_dqblock_t *d, float *out, int add)
{
    size_t groups = len / 8;
    kern->dequant(codes, groups, d, out, add);
    if (0 != len % 8) {
        qtopo_codec_dequant_group(codes + groups * (size_t) d->bits, (int) (len % 8), d,
                                  out + 8 * groups, add);
    }
}

/* A block of one value (scale 0): every element is the header's mid, bit for bit, so a
 * block of -0.0 (whose sum in fp32 is -0.0) stays -0.0 rather than mid + 0 * code. */
static void const_block(float mid, size_t len, float *out, int add)
{
    for (size_t i = 0; i < len; ++i) {
        out[i] = add ? out[i] + mid : mid;
    }
}

/* Every element is -0.0 (the range, which compares -0.0 and +0.0 as equal, was 0..0). */
static int all_negative_zero(const float *x, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (!signbit(x[i])) {
            return 0;
        }
    }
    return 1;
}

/* ---- block headers ---------------------------------------------------- */

/*
 * Min/max headers (qtopo_elem_make_header in coll_qtopo_codec_elem.h): the
 * block's centre and half range; a block no finite header fits goes raw.
 *
 * Why min/max and not absmax-symmetric (one float less per block): `make
 * bench` in test/codec, block 256, 2^18 samples, metric = relative L2 error
 * * 2^(bits per element, headers included), lower is better, nearest /
 * stochastic (absmax-symmetric = 2^b levels over [-max|x|, max|x|]):
 *
 *   data      b   absmax-sym (4 B hdr)    min/max (8 B hdr)
 *   Gaussian  8   1.926 / 2.729           1.949 / 2.750
 *   Gaussian  4   2.047 / 2.897           2.069 / 2.924
 *   Gaussian  2   2.587 / 3.641           2.597 / 3.663
 *   Gaussian  1   5.107 / 6.288           5.007 / 6.270
 *   t(3)      8   4.913 / 7.022           3.835 / 5.407
 *   t(3)      4   5.996 / 7.836           4.075 / 5.761
 *   t(3)      2   9.526 / 10.83           5.099 / 7.226
 *   t(3)      1   15.84 / 16.77           8.874 / 11.69
 *
 * Min/max costs at most 1.2 % on Gaussian data and wins 23-46 % on the
 * heavy-tailed Student-t(3), which is what gradients look like; it also
 * keeps a constant block exact.  (A symmetric grid with an exact zero,
 * 2^b - 1 levels, measured in a prototype: worse on t(3) at 8 and 4 bits,
 * 4.748 / 4.783 against 3.807 / 4.071 nearest; better on t(3) at 2 bits
 * nearest, 3.495 against 5.142, but worse on Gaussian there, 3.521 against
 * 2.606; no 1-bit form.)
 */

/* sum of x[i] - mid (absolute: of |x[i] - mid|) in double, in 8 interleaved partial
 * sums added in a fixed order (fast, and the same bits on every rank and kernel): the
 * kernel takes the whole groups of 8, the tail goes on in the same partial sums.  (32
 * partial sums, 8 independent chains in the AVX2 kernel and a tree for the final sum,
 * measured no faster on the Zen 3 development host: 1-bit encode 3.8 against 3.9 GB/s,
 * medians of 7 runs; and these 8 keep the headers of earlier versions bit for bit.) */
static double sum_dev(const qtopo_codec_kernels_t *kern, const float *x, size_t len, double mid,
                      int absolute)
{
    double part[8] = { 0, 0, 0, 0, 0, 0, 0, 0 }, sum = 0.0;
    size_t groups = len / 8;
    kern->dev_sums(x, groups, mid, absolute, part);
    for (size_t i = 8 * groups; i < len; ++i) {
        double d = (double) x[i] - mid;
        part[i % 8] += absolute ? fabs(d) : d;
    }
    for (int k = 0; k < 8; ++k) {
        sum += part[k];
    }
    return sum;
}

/*
 * 1-bit header for nearest rounding: a sign code around the block mean, scaled by the
 * mean absolute deviation (mid = mean(x), s = mean |x - mid|, the L2-optimal scale of a
 * sign code, as in 1-bit SGD/Adam), so an element decodes to mid + s or mid - s by the
 * sign of x - mid.  s is capped so that both levels stay inside the block's [lo, hi] (as
 * with min/max, no decoded value leaves the range of its block, so decoded sums cannot
 * overflow where the exact ones do not).  Returns 0 if the decoder would not accept the
 * header (e.g. a subnormal scale); the caller then keeps the min/max header.
 *
 * Why (`make bench` in test/codec, block 256, relative L2 error of one round trip,
 * min/max -> mean-abs): Gaussian 2.13 -> 0.60, Student-t(3) 3.72 -> 0.76, a gradient of
 * examples/train's MLP after 100 steps 3.44 -> 0.76.  The min/max levels sit at the
 * block's extremes and return more than twice the signal; training the MLP of
 * examples/train (4 ranks, 3 epochs of 15360 images) at 1 bit reached 0.100 test
 * accuracy with min/max and 0.844 with this code (fp32: 0.847).  With error feedback
 * it is the other way round (0.745 with this code, 0.821 with min/max: the residual
 * corrects min/max's error within a step, while elements beyond the sign code's levels
 * pile up in the residual), so encode_ef keeps min/max.  At 2 bits a clipped variant
 * (s = 0.8 mean |x - mid|, 4 levels) cut the round-trip error from 0.55 to 0.38 but
 * trained no better without error feedback (0.847 both) and worse with it (0.833
 * against 0.848), so b >= 2 keeps min/max; stochastic rounding keeps it at every width
 * (it must stay unbiased).
 */
static int make_header_sign(const qtopo_codec_kernels_t *kern, const float *x, size_t len,
                            float lo, float hi, float *mid_p, float *scale_p)
{
    double mid = qtopo_elem_sign_mid(sum_dev(kern, x, len, 0.0, 0), len);
    return qtopo_elem_sign_header(mid, sum_dev(kern, x, len, mid, 1), len, lo, hi, mid_p,
                                  scale_p);
}

/* Whether a block gets the sign header (see above): 1 bit, nearest, no error feedback.
 * A pure function of the parameters and of which entry point encodes, so the same on
 * every rank (the decoder does not need to know: it reads mid and s from the header). */
static int use_sign_header(const encoder_t *e)
{
    return 1 == e->p->bits && QTOPO_ROUND_NEAREST == e->p->rounding && !e->ef;
}

static void qblock_init(qtopo_qblock_t *q, const encoder_t *e, float mid, float scale)
{
    qtopo_elem_qblock(q, e->p->bits, QTOPO_ROUND_STOCHASTIC == e->p->rounding, mid, scale, e->key,
                      e->index);
}


/* ---- encoder ---------------------------------------------------------- */

static int encode_raw(encoder_t *e, const float *x, size_t len, uint8_t *hdr)
{
    size_t bytes = len * sizeof(float);
    if ((size_t) (e->end - e->raw) < bytes) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    memset(hdr, 0, qtopo_elem_block_bytes(len, e->p->bits));
    store_u32(hdr, QTOPO_CODEC_RAW_MARK);
    memcpy(e->raw, x, bytes);
    e->raw += bytes;
    return 1;
}

/* Encodes one block at hdr; returns 1 if it went raw, 0 if quantized, or
 * an error.  *d_p receives the negated dequantizer of the bytes written. */
static int encode_block(encoder_t *e, const float *x, size_t len, uint8_t *hdr,
                        qtopo_dqblock_t *d_p)
{
    int bits = e->p->bits;
    float lo = FLT_MAX, hi = -FLT_MAX, mid = 0.0f, scale = 0.0f;
    qtopo_qblock_t q;
    if (!range_block(e->kern, x, len, &lo, &hi)) {
        return encode_raw(e, x, len, hdr);
    }
    if (16 == bits) {
        store_u32(hdr, 0);
    } else if (qtopo_elem_make_header(lo, hi, (1 << bits) - 1, &mid, &scale)) {
        float m2, s2;
        if (use_sign_header(e) && make_header_sign(e->kern, x, len, lo, hi, &m2, &s2)) {
            mid = m2;
            scale = s2;
        }
        if (0.0f == scale && 0.0f == mid && all_negative_zero(x, len)) {
            mid = -0.0f;
        }
        store_f32(hdr, scale);
        store_f32(hdr + 4, mid);
    } else {
        return encode_raw(e, x, len, hdr);
    }
    qblock_init(&q, e, mid, scale);
    quant_block(e->kern, x, len, &q, hdr + qtopo_elem_header_bytes(bits));
    qtopo_elem_dqblock(d_p, bits, mid, scale, 1);
    return 0;
}

static int encode_args(size_t n, const qtopo_codec_params_t *p, const qtopo_codec_key_t *key,
                       const void *dst, size_t *size_p)
{
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || NULL == size_p
        || QTOPO_CODEC_MAX_COUNT < n || (NULL == dst && 0 != n)) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (NULL == key && QTOPO_ROUND_STOCHASTIC == p->rounding) {
        return QTOPO_CODEC_ERR_ARG;
    }
    return QTOPO_CODEC_OK;
}

static uint64_t call_key(const qtopo_codec_key_t *key)
{
    return NULL == key ? 0 : qtopo_elem_call_key(key->seed, key->call, key->rank);
}

/* Shared by encode and encode_ef: with residual != NULL, each block is
 * x = src + residual (kept in residual), encoded, then residual -= decode
 * (done as residual + (-decode), which rounds identically). */
static int encode_all(const float *src, float *residual, size_t n, const qtopo_codec_params_t *p,
                      const qtopo_codec_key_t *key, uint8_t *dst, size_t dst_cap,
                      size_t *size_p)
{
    size_t fixed = qtopo_codec_fixed_size(n, p), block = (size_t) p->block;
    encoder_t e = { kernels(), p, call_key(key), NULL == key ? 0 : key->elem_offset,
                    dst + fixed, dst + dst_cap, NULL != residual };
    uint8_t *hdr = dst;
    for (size_t off = 0; off < n; off += block, e.index += block) {
        size_t len = n - off < block ? n - off : block;
        const float *x = src + off;
        qtopo_dqblock_t d;
        int rc;
        if (NULL != residual) {
            for (size_t i = 0; i < len; ++i) {
                residual[off + i] = src[off + i] + residual[off + i];
            }
            x = residual + off;
        }
        rc = encode_block(&e, x, len, hdr, &d);
        if (0 > rc) {
            return rc;
        }
        if (NULL != residual && 1 == rc) {
            memset(residual + off, 0, len * sizeof(float));
        } else if (NULL != residual) {
            dequant_block(e.kern, hdr + qtopo_elem_header_bytes(p->bits), len, &d, residual + off, 1);
        }
        hdr += qtopo_elem_block_bytes(len, p->bits);
    }
    *size_p = (size_t) (e.raw - dst);
    return QTOPO_CODEC_OK;
}

int qtopo_codec_encode(const float *src, size_t n, const qtopo_codec_params_t *p,
                       const qtopo_codec_key_t *key, void *dst, size_t dst_cap, size_t *size_p)
{
    int rc = encode_args(n, p, key, dst, size_p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    if (NULL == src && 0 != n) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (dst_cap < qtopo_codec_fixed_size(n, p)) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    return encode_all(src, NULL, n, p, key, dst, dst_cap, size_p);
}

int qtopo_codec_encode_ef(const float *src, float *residual, size_t n,
                          const qtopo_codec_params_t *p, const qtopo_codec_key_t *key, void *dst,
                          size_t dst_cap, size_t *size_p)
{
    int rc = encode_args(n, p, key, dst, size_p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    if ((NULL == src || NULL == residual) && 0 != n) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (dst_cap < qtopo_codec_max_size(n, p)) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    return encode_all(src, residual, n, p, key, dst, dst_cap, size_p);
}

/* ---- decoder ---------------------------------------------------------- */

/* Reads and checks one header; returns 1 raw, 0 quantized, or an error. */
static int read_header(const uint8_t *hdr, int bits, float *mid_p, float *scale_p)
{
    uint32_t word = load_u32(hdr);
    *mid_p = 0.0f;
    *scale_p = 0.0f;
    if (QTOPO_CODEC_RAW_MARK == word) {
        return 16 == bits || 0 == load_u32(hdr + 4) ? 1 : QTOPO_CODEC_ERR_CORRUPT;
    }
    if (16 == bits) {
        return 0 == word ? 0 : QTOPO_CODEC_ERR_CORRUPT;
    }
    *scale_p = load_f32(hdr);
    *mid_p = load_f32(hdr + 4);
    return qtopo_elem_header_ok(*mid_p, *scale_p, (1 << bits) - 1) ? 0 : QTOPO_CODEC_ERR_CORRUPT;
}

/* Validates every header and the exact message size. */
static int validate(const uint8_t *src, size_t size, size_t n, const qtopo_codec_params_t *p)
{
    size_t fixed, raw = 0, block = (size_t) p->block;
    const uint8_t *hdr = src;
    if (QTOPO_CODEC_MAX_COUNT < n) {
        return QTOPO_CODEC_ERR_ARG;
    }
    fixed = qtopo_codec_fixed_size(n, p);
    if (size < fixed) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    for (size_t off = 0; off < n; off += block) {
        size_t len = n - off < block ? n - off : block;
        float mid, scale;
        int rc = read_header(hdr, p->bits, &mid, &scale);
        if (0 > rc) {
            return rc;
        }
        raw += 1 == rc ? len : 0;
        hdr += qtopo_elem_block_bytes(len, p->bits);
    }
    return size == fixed + 4 * raw ? QTOPO_CODEC_OK : QTOPO_CODEC_ERR_SIZE;
}

static void raw_block(const uint8_t *raw, size_t len, float *out, int add)
{
    if (!add) {
        memcpy(out, raw, len * sizeof(float));
        return;
    }
    for (size_t i = 0; i < len; ++i) {
        out[i] += load_f32(raw + 4 * i);
    }
}

static int decode_all(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                      float *out, int add)
{
    const qtopo_codec_kernels_t *kern = kernels();
    const uint8_t *hdr = src, *raw;
    size_t block;
    int rc;
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || ((NULL == src || NULL == out) && 0 != n)) {
        return QTOPO_CODEC_ERR_ARG;
    }
    rc = validate(src, size, n, p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    block = (size_t) p->block;
    raw = hdr + qtopo_codec_fixed_size(n, p);
    for (size_t off = 0; off < n; off += block) {
        size_t len = n - off < block ? n - off : block;
        float mid, scale;
        qtopo_dqblock_t d;
        if (1 == read_header(hdr, p->bits, &mid, &scale)) {
            raw_block(raw, len, out + off, add);
            raw += len * sizeof(float);
        } else if (16 != p->bits && 0.0f == scale) {
            const_block(mid, len, out + off, add);
        } else {
            qtopo_elem_dqblock(&d, p->bits, mid, scale, 0);
            dequant_block(kern, hdr + qtopo_elem_header_bytes(p->bits), len, &d, out + off, add);
        }
        hdr += qtopo_elem_block_bytes(len, p->bits);
    }
    return QTOPO_CODEC_OK;
}

int qtopo_codec_decode(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                       float *dst)
{
    return decode_all(src, size, n, p, dst, 0);
}

int qtopo_codec_decode_add(const void *src, size_t size, size_t n,
                           const qtopo_codec_params_t *p, float *acc)
{
    return decode_all(src, size, n, p, acc, 1);
}

/* ---- inspection and bounds -------------------------------------------- */

int qtopo_codec_block_info(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                           size_t blk, qtopo_codec_block_info_t *info_p)
{
    size_t block, full_bytes;
    const uint8_t *hdr;
    int rc;
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || NULL == src || NULL == info_p) {
        return QTOPO_CODEC_ERR_ARG;
    }
    block = (size_t) p->block;
    if (blk >= (n + block - 1) / block) {
        return QTOPO_CODEC_ERR_ARG;
    }
    rc = validate(src, size, n, p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    full_bytes = qtopo_elem_block_bytes(block, p->bits);
    hdr = (const uint8_t *) src + blk * full_bytes;
    info_p->len = n - blk * block < block ? n - blk * block : block;
    info_p->raw = read_header(hdr, p->bits, &info_p->mid, &info_p->scale);
    return QTOPO_CODEC_OK;
}

double qtopo_codec_error_bound(const qtopo_codec_params_t *p, const qtopo_codec_block_info_t *info,
                               float value)
{
    int stochastic, exp2;
    double ulp, u = 0x1p-24, levels, excess;
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || NULL == info || info->raw) {
        return 0.0;
    }
    stochastic = QTOPO_ROUND_STOCHASTIC == p->rounding;
    if (16 == p->bits) {
        (void) frexp((double) value, &exp2); /* 2^(exp2-1) <= |value| < 2^exp2 */
        exp2 = 0.0f == value ? -125 : exp2;  /* zero: the denormal spacing */
        ulp = ldexp(1.0, (exp2 - 1 > -126 ? exp2 - 1 : -126) - 7);
        /* 0x1.fep127 is the largest finite bfloat16: saturation costs <= 1 ulp */
        return stochastic || 0x1.fep127 <= fabs((double) value) ? ulp : ulp / 2;
    }
    levels = (double) ((1 << p->bits) - 1);
    /* plus how far value lies beyond the grid's outer levels (clipped, b <= 2 nearest) */
    excess = fabs((double) value - (double) info->mid) - (double) info->scale * levels;
    return (stochastic ? 2.0 : 1.0) * info->scale * (1.0 + 8.0 * levels * u)
           + 2.0 * u * fabs((double) info->mid) + (0.0 < excess ? excess : 0.0);
}

/* ---- error-bounded format (coll_qtopo_error_bound) --------------------- */

/* Width tags of the error-bounded format (see coll_qtopo_codec.h). */
static const int eb_tags[] = {QTOPO_CODEC_EB_CONST, 1, 2, 4, 8, 16, QTOPO_CODEC_EB_RAW};
#define EB_NTAGS ((int) (sizeof(eb_tags) / sizeof(eb_tags[0])))

static int eb_tag_valid(int tag)
{
    for (int i = 0; i < EB_NTAGS; ++i) {
        if (eb_tags[i] == tag) {
            return 1;
        }
    }
    return 0;
}

/* Bytes of one block of len values with width tag `tag`, the tag byte included. */
static size_t eb_block_bytes(int tag, size_t len)
{
    switch (tag) {
    case QTOPO_CODEC_EB_CONST:
        return 1 + 4;
    case QTOPO_CODEC_EB_RAW:
        return 1 + 4 * len;
    default:
        return 1 + 8 + qtopo_elem_code_bytes(len, tag);
    }
}

static int eb_block_check(int block)
{
    qtopo_codec_params_t p = {8, block, QTOPO_ROUND_NEAREST};
    return qtopo_codec_params_check(&p);
}

size_t qtopo_codec_eb_max_size(size_t n, int block)
{
    if (QTOPO_CODEC_OK != eb_block_check(block) || QTOPO_CODEC_MAX_COUNT < n) {
        return 0;
    }
    return (n + (size_t) block - 1) / (size_t) block + 4 * n;
}

/* The documented nearest-rounding bound of a block of w-bit codes with this header,
 * s (1 + 8 L u) + 2 u |mid| (see coll_qtopo_codec.h); for w <= 8 the codec's own
 * qtopo_codec_error_bound, for w = 16 (L = 65535, only in this format) the same formula. */
static double eb_bound(int w, int block, float scale, float mid)
{
    qtopo_codec_params_t p = {w, block, QTOPO_ROUND_NEAREST};
    qtopo_codec_block_info_t info = {0, scale, mid, 0};
    if (16 != w) {
        /* a value on the grid (mid): min/max headers clip nothing, so the bound is the
         * same for every value of the block */
        return qtopo_codec_error_bound(&p, &info, mid);
    }
    return scale * (1.0 + 8.0 * 65535.0 * 0x1p-24) + 2.0 * 0x1p-24 * fabs((double) mid);
}

/* 16-bit codes of a block of len values: the quantizer and dequantizer of the narrower
 * widths with L = 65535, two little-endian bytes per code (kernels for whole groups of 8,
 * the scalar definition for the rest). */
static void eb_quant16(const float *x, size_t len, float mid, float scale, uint8_t *codes)
{
    size_t groups = len / 8;
    qtopo_qblock_t q;
    memset(&q, 0, sizeof(q));
    q.mid = mid;
    q.pre = 0x1p63f <= scale ? 0x1p-64f : 1.0f;
    q.inv2s = 0.0f == scale ? 0.0f : (float) (1.0 / (2.0 * (double) scale * q.pre));
    q.levels = 65535;
    q.half_l = 0.5f * (float) q.levels;
    q.bits = 8; /* not bfloat16: the kernels take these as integer codes */
    kernels()->quant16(x, groups, &q, codes);
    quant16_elems(x + 8 * groups, len % 8, &q, codes + 16 * groups);
}

static void eb_dequant16(const uint8_t *codes, size_t len, float mid, float scale, float *out,
                         int add)
{
    size_t groups = len / 8;
    qtopo_dqblock_t d = {mid, scale, 65535, 16, 0};
    kernels()->dequant16(codes, groups, &d, out, add);
    dequant16_elems(codes + 16 * groups, len % 8, &d, out + 8 * groups, add);
}

/* The chosen width of one block and its header. */
typedef struct eb_choice {
    int tag;
    float scale, mid;
} eb_choice_t;

/*
 * The smallest block (in bytes) whose documented error bound is at most tol: an exactly
 * constant block, min/max codes of 1, 2, 4, 8 or 16 bits, else raw fp32. A block with
 * NaN or Inf is always raw; tol < 0 (or NaN) leaves only raw.
 */
static void eb_choose(const float *x, size_t len, int block, double tol, eb_choice_t *c)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    size_t best = eb_block_bytes(QTOPO_CODEC_EB_RAW, len);
    c->tag = QTOPO_CODEC_EB_RAW;
    c->scale = c->mid = 0.0f;
    if (!range_block(kernels(), x, len, &lo, &hi)) {
        return;
    }
    if (lo == hi && 0.0 <= tol && eb_block_bytes(QTOPO_CODEC_EB_CONST, len) <= best) {
        c->tag = QTOPO_CODEC_EB_CONST;
        c->mid = lo; /* every value is exactly lo */
        return;
    }
    /* widths in increasing size: the first that is good enough is the smallest */
    for (int i = 1; i < EB_NTAGS - 1; ++i) {
        int w = eb_tags[i];
        float scale = 0.0f, mid = 0.0f;
        if (eb_block_bytes(w, len) >= best) {
            return;
        }
        if (qtopo_elem_make_header(lo, hi, (int) ((1u << w) - 1), &mid, &scale)
            && eb_bound(w, block, scale, mid) <= tol) {
            c->tag = w;
            c->scale = scale;
            c->mid = mid;
            return;
        }
    }
}

/* Writes block x (len values) with the chosen width at out (enough room checked). */
static void eb_write_block(const float *x, size_t len, const eb_choice_t *c, uint8_t *out)
{
    qtopo_codec_params_t wp = {c->tag, QTOPO_CODEC_DEFAULT_BLOCK, QTOPO_ROUND_NEAREST};
    encoder_t e = {kernels(), &wp, 0, 0, NULL, NULL, 0};
    qtopo_qblock_t q;
    out[0] = (uint8_t) c->tag;
    if (QTOPO_CODEC_EB_RAW == c->tag) {
        memcpy(out + 1, x, len * sizeof(float));
        return;
    }
    store_f32(out + 1, c->mid);
    if (QTOPO_CODEC_EB_CONST == c->tag) {
        return;
    }
    store_f32(out + 1, c->scale);
    store_f32(out + 5, c->mid);
    if (16 == c->tag) {
        eb_quant16(x, len, c->mid, c->scale, out + 9);
        return;
    }
    qblock_init(&q, &e, c->mid, c->scale);
    quant_block(e.kern, x, len, &q, out + 9);
}

int qtopo_codec_eb_encode(const float *src, size_t n, int block, double tol, const double *spent,
                          void *dst, size_t dst_cap, size_t *size_p)
{
    uint8_t *out = dst;
    size_t used = 0, b = 0;
    if (QTOPO_CODEC_OK != eb_block_check(block) || NULL == size_p || QTOPO_CODEC_MAX_COUNT < n
        || ((NULL == src || NULL == dst) && 0 != n)) {
        return QTOPO_CODEC_ERR_ARG;
    }
    for (size_t off = 0; off < n; off += (size_t) block, ++b) {
        size_t len = n - off < (size_t) block ? n - off : (size_t) block, bytes;
        eb_choice_t c;
        eb_choose(src + off, len, block, NULL != spent ? tol - spent[b] : tol, &c);
        bytes = eb_block_bytes(c.tag, len);
        if (dst_cap - used < bytes) {
            return QTOPO_CODEC_ERR_SIZE;
        }
        eb_write_block(src + off, len, &c, out + used);
        used += bytes;
    }
    *size_p = used;
    return QTOPO_CODEC_OK;
}

/* Largest |value| of len floats stored at p (Inf for any NaN or Inf). */
static float eb_stored_absmax(const uint8_t *p, size_t len)
{
    uint32_t top = 0, u;
    float v;
    for (size_t i = 0; i < len; ++i) {
        memcpy(&u, p + 4 * i, sizeof(u));
        u &= 0x7fffffffu;
        top = u > top ? u : top;
    }
    top = top > 0x7f800000u ? 0x7f800000u : top;
    memcpy(&v, &top, sizeof(v));
    return v;
}

/* Reads (and checks) the block at p with `avail` bytes left: its tag, header, size, and
 * what it adds to a tally (bound on |decoded - original|, bound on |decoded|). */
typedef struct eb_block {
    int tag;
    float scale, mid;
    size_t bytes;
    double err, absmax;
} eb_block_t;

static int eb_read_block(const uint8_t *p, size_t avail, size_t len, int block, eb_block_t *bk)
{
    if (1 > avail || !eb_tag_valid(p[0])) {
        return 1 > avail ? QTOPO_CODEC_ERR_SIZE : QTOPO_CODEC_ERR_CORRUPT;
    }
    bk->tag = p[0];
    bk->bytes = eb_block_bytes(bk->tag, len);
    bk->scale = bk->mid = 0.0f;
    bk->err = 0.0;
    if (avail < bk->bytes) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    if (QTOPO_CODEC_EB_RAW == bk->tag) {
        bk->absmax = eb_stored_absmax(p + 1, len);
        return QTOPO_CODEC_OK;
    }
    bk->mid = load_f32(p + 1);
    if (QTOPO_CODEC_EB_CONST == bk->tag) {
        bk->absmax = fabs((double) bk->mid);
        return isfinite(bk->mid) ? QTOPO_CODEC_OK : QTOPO_CODEC_ERR_CORRUPT;
    }
    bk->scale = bk->mid;
    bk->mid = load_f32(p + 5);
    if (!qtopo_elem_header_ok(bk->mid, bk->scale, (1 << bk->tag) - 1)) {
        return QTOPO_CODEC_ERR_CORRUPT;
    }
    /* decoded values are mid + s(2q - L), |.| <= |mid| + sL up to two roundings */
    bk->absmax = (fabs((double) bk->mid) + (double) bk->scale * ((1 << bk->tag) - 1))
                 * (1.0 + 0x1p-20);
    bk->err = eb_bound(bk->tag, block, bk->scale, bk->mid);
    return QTOPO_CODEC_OK;
}

static void eb_decode_block(const uint8_t *p, size_t len, const eb_block_t *bk, float *out,
                            int add)
{
    qtopo_dqblock_t d;
    if (QTOPO_CODEC_EB_RAW == bk->tag) {
        raw_block(p + 1, len, out, add);
        return;
    }
    if (QTOPO_CODEC_EB_CONST == bk->tag) {
        for (size_t i = 0; i < len; ++i) {
            out[i] = add ? out[i] + bk->mid : bk->mid;
        }
        return;
    }
    if (16 == bk->tag) {
        eb_dequant16(p + 9, len, bk->mid, bk->scale, out, add);
        return;
    }
    qtopo_elem_dqblock(&d, bk->tag, bk->mid, bk->scale, 0);
    dequant_block(kernels(), p + 9, len, &d, out, add);
}

/* One pass over the message: checks it (decode == 0) or decodes it (decode == 1). */
static int eb_walk(const uint8_t *src, size_t size, size_t n, int block, float *out, int add,
                   const qtopo_codec_eb_tally_t *tally, int decode)
{
    size_t used = 0, b = 0;
    for (size_t off = 0; off < n; off += (size_t) block, ++b) {
        size_t len = n - off < (size_t) block ? n - off : (size_t) block;
        eb_block_t bk;
        int rc = eb_read_block(src + used, size - used, len, block, &bk);
        if (QTOPO_CODEC_OK != rc) {
            return rc;
        }
        if (decode) {
            eb_decode_block(src + used, len, &bk, out + off, add);
        }
        if (decode && NULL != tally && NULL != tally->err) {
            tally->err[b] += bk.err;
        }
        if (decode && NULL != tally && NULL != tally->absmax) {
            tally->absmax[b] += bk.absmax;
        }
        used += bk.bytes;
    }
    return size == used ? QTOPO_CODEC_OK : QTOPO_CODEC_ERR_SIZE;
}

int qtopo_codec_eb_decode(const void *src, size_t size, size_t n, int block, float *dst, int add,
                          const qtopo_codec_eb_tally_t *tally)
{
    int rc;
    if (QTOPO_CODEC_OK != eb_block_check(block) || QTOPO_CODEC_MAX_COUNT < n
        || ((NULL == src || NULL == dst) && 0 != n)) {
        return QTOPO_CODEC_ERR_ARG;
    }
    rc = eb_walk(src, size, n, block, dst, add, tally, 0);
    return QTOPO_CODEC_OK != rc ? rc : eb_walk(src, size, n, block, dst, add, tally, 1);
}

void qtopo_codec_eb_absmax(const float *x, size_t n, int block, double *absmax)
{
    size_t b = 0;
    for (size_t off = 0; off < n; off += (size_t) block, ++b) {
        size_t len = n - off < (size_t) block ? n - off : (size_t) block;
        absmax[b] += (double) eb_stored_absmax((const uint8_t *) (x + off), len);
    }
}

int qtopo_codec_eb_widths(const void *src, size_t size, size_t n, int block,
                          size_t count[QTOPO_CODEC_EB_RAW + 1])
{
    const uint8_t *p = src;
    size_t used = 0;
    int rc;
    if (QTOPO_CODEC_OK != eb_block_check(block) || QTOPO_CODEC_MAX_COUNT < n
        || (NULL == src && 0 != n) || NULL == count) {
        return QTOPO_CODEC_ERR_ARG;
    }
    rc = eb_walk(p, size, n, block, NULL, 0, NULL, 0);
    for (size_t off = 0; QTOPO_CODEC_OK == rc && off < n; off += (size_t) block) {
        size_t len = n - off < (size_t) block ? n - off : (size_t) block;
        count[p[used]] += 1;
        used += eb_block_bytes(p[used], len);
    }
    return rc;
}
