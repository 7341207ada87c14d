/*
 * qtopo quantization codec: turns a segment of fp32 values into per-block
 * scaled b-bit integer codes (b = 8, 4, 2, 1) or a bfloat16 payload (b = 16)
 * and back.  Pure C11, no Open MPI or MPI headers, so it can be unit-tested
 * and fuzzed on its own.  Scalar and AVX2 kernels give bit-identical bytes and
 * floats, so ranks on different CPUs agree.
 *
 * Requirements: no FMA contraction (the scalar and SIMD paths must perform
 * the very same IEEE operations; the .c files turn it off with a pragma, and
 * the build should pass -ffp-contract=off too; never clang's
 * -ffp-contract=fast, which overrides the pragma), default MXCSR state at run
 * time (round to nearest, no FTZ/DAZ), a little-endian host.  All calls are
 * reentrant (no hidden state, no allocation) except qtopo_codec_force_scalar.
 *
 * Message format (all multi-byte fields little-endian, no alignment needed):
 *
 *   fixed part: for each block of B elements (the last one may be shorter),
 *               in order: header, then ceil(len * b / 8) bytes of codes
 *   appendix:   for each flagged ("raw") block, in block order, its len fp32
 *               values exactly as given
 *
 *   header, b <= 8 (8 bytes): float scale s, float mid.  Element j of the block
 *       has code q_j in [0, L], L = 2^b - 1, packed LSB-first (element j at
 *       bit j*b of the code bytes), and decodes to  mid + s * (2*q_j - L).
 *       The encoder picks mid and s (the decoder just reads them):
 *       - min/max scaling (every width and rounding, except below): mid is the
 *         centre and s*L the half range of the block ([mid - s*L, mid + s*L]
 *         covers [min, max]);
 *       - b == 1, nearest, no error feedback (qtopo_codec_encode): a sign code,
 *         mid = the block mean, s = mean |x - mid| capped so that mid +- s stays
 *         in [min, max]; x decodes to mid + s or mid - s, the level on its
 *         side of mid (mid - s when x - mid vanishes in the rounding).
 *       Either way decoded values stay in the block's [min, max] (up to the
 *       float rounding of mid).
 *   header, b == 16 (4 bytes): a flag word, 0 for a normal block.  Codes are
 *       the upper 16 bits of the fp32 value (bfloat16).
 *   raw flag: the first header word is 0x80000000 (scale "-0.0") and, for
 *       b <= 8, mid is +0.0.  A block holding a NaN or an Inf is always raw
 *       (its codes are written as zeros and ignored), so non-finite values
 *       survive bit for bit.  The encoder may also send a finite block raw if
 *       no finite header can describe it (never seen in tests; it exists so
 *       that decoding can always be exact about finiteness).
 *
 * Error bound (qtopo_codec_error_bound), per element, |decode(x) - x| for a
 * finite x in a non-raw block, with u = 2^-24 and e(x) = max(0, |x - mid| - s*L),
 * how far x lies beyond the outer levels (0 under min/max scaling but for float
 * rounding; the distance to the nearer level of the 1-bit sign code):
 *   b <= 8, nearest:     <=     s * (1 + 8*L*u) + 2*u*|mid| + e(x)
 *   b <= 8, stochastic:  <= 2 * s * (1 + 8*L*u) + 2*u*|mid| + e(x)   (unbiased)
 *   (the grid step is 2*s: nearest is half a step, stochastic under one step;
 *    the small terms cover the float rounding of the encode/decode formulas)
 *   b == 16, nearest:    <= ulp(v) / 2,  stochastic: <= ulp(v),  where v is
 *       the original or decoded value and ulp(v) = 2^(max(e, -126) - 7) for
 *       2^e <= |v| < 2^(e+1); values beyond the largest finite bfloat16
 *       saturate to it (error <= ulp(v) then) and never become Inf.
 *   raw blocks: 0.
 * The decoder only accepts b <= 8 headers whose extreme codes decode to
 * finite values, so those blocks always decode to finite values.  bfloat16
 * payloads are not inspected: bytes the encoder did not write may decode to
 * Inf or NaN (never out-of-bounds accesses).
 */

#ifndef MCA_COLL_QTOPO_CODEC_H
#define MCA_COLL_QTOPO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "coll_qtopo_codec_elem.h"

#if defined(__BYTE_ORDER__) && (__ORDER_LITTLE_ENDIAN__ != __BYTE_ORDER__)
#error "the qtopo codec assumes a little-endian host"
#endif

enum { QTOPO_ROUND_NEAREST = 0, QTOPO_ROUND_STOCHASTIC = 1 };

enum {
    QTOPO_CODEC_OK = 0,
    QTOPO_CODEC_ERR_ARG = -1,     /* bad parameters or NULL pointers */
    QTOPO_CODEC_ERR_SIZE = -2,    /* output too small / message size does not match */
    QTOPO_CODEC_ERR_CORRUPT = -3  /* a block header is not one the encoder can write */
};

#define QTOPO_CODEC_BLOCK_MIN     32
#define QTOPO_CODEC_BLOCK_MAX     4096
/*
 * Default block size, from the sweep in test/codec/bench_codec.c (`make
 * bench`): relative L2 error * 2^(bits per element incl. headers), nearest,
 * lower is better (g = Gaussian, t = Student-t(3); 8/4/2 bits), and 8-bit
 * encode / decode_add speed relative to memcpy:
 *
 *   block   g8    g4    g2    t8    t4    t2    enc8  add8
 *      64  2.70  2.86  3.60  3.94  4.23  5.22   0.25  0.57
 *     128  2.12  2.25  2.83  3.58  3.87  4.72   0.45  0.97
 *     256  1.95  2.07  2.60  3.84  4.08  5.10   0.54  1.11
 *     512  1.92  2.05  2.57  4.45  4.67  6.15   0.63  1.25
 *    1024  1.96  2.08  2.63  5.40  5.66  7.55   0.67  1.24
 *    4096  2.11  2.24  2.85  8.43  9.36 11.65   0.63  1.30
 *
 * 256 is within 1.3 % of the best block on Gaussian data (512) and within
 * 8 % of the best on heavy tails (128, which loses 9 % on Gaussian data and
 * 17 % of encode speed); larger blocks are faster but fall apart on t(3).
 */
#define QTOPO_CODEC_DEFAULT_BLOCK 256
#define QTOPO_CODEC_RAW_MARK      0x80000000u
#define QTOPO_CODEC_MAX_COUNT     (SIZE_MAX / 16) /* larger n is rejected (sizes would overflow) */

typedef struct qtopo_codec_params {
    int bits;     /* 16 (bfloat16 payload), 8, 4, 2, 1 */
    int block;    /* elements per block, QTOPO_CODEC_BLOCK_MIN..MAX, a multiple of 8 */
    int rounding; /* QTOPO_ROUND_* */
} qtopo_codec_params_t;

/* Keys the counter-based RNG for stochastic rounding: the random bits of an
 * element are a hash of (seed, call, rank, elem_offset + i), so they do not
 * depend on how a logical buffer is cut into segments, nor on the CPU. */
typedef struct qtopo_codec_key {
    uint64_t seed;
    uint64_t call;
    uint32_t rank;
    uint64_t elem_offset; /* index of src[0] in the logical buffer */
} qtopo_codec_key_t;

/* One block's header as read back from a message. */
typedef struct qtopo_codec_block_info {
    int raw;     /* 1: values travel unquantized */
    float scale; /* s (b <= 8) */
    float mid;   /* mid (b <= 8) */
    size_t len;  /* elements in this block */
} qtopo_codec_block_info_t;

int qtopo_codec_params_check(const qtopo_codec_params_t *p);
/* Size without raw appendix; a pure function of (n, block, bits); 0 if p is invalid. */
size_t qtopo_codec_fixed_size(size_t n, const qtopo_codec_params_t *p);
/* Size when every block is raw: fixed + 4 * n.  Receivers post this. */
size_t qtopo_codec_max_size(size_t n, const qtopo_codec_params_t *p);

/* Encode n floats into dst (capacity dst_cap, at least the fixed size); the
 * message length is stored in *size_p.  key may be NULL for nearest rounding.
 * ERR_SIZE if the raw appendix does not fit (dst is then garbage). */
int qtopo_codec_encode(const float *src, size_t n, const qtopo_codec_params_t *p,
                       const qtopo_codec_key_t *key, void *dst, size_t dst_cap, size_t *size_p);
/* Decode a message of exactly size bytes; nothing is written unless it is valid. */
int qtopo_codec_decode(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                       float *dst);
/* acc[i] += decoded[i]; acc is left untouched if the message is invalid. */
int qtopo_codec_decode_add(const void *src, size_t size, size_t n,
                           const qtopo_codec_params_t *p, float *acc);
/* Error feedback: x = src + residual; encode x; residual = x - decode(encoded)
 * (0 for raw blocks).  dst_cap must be at least qtopo_codec_max_size(n), so the
 * call cannot fail half way with the residual half updated. */
int qtopo_codec_encode_ef(const float *src, float *residual, size_t n,
                          const qtopo_codec_params_t *p, const qtopo_codec_key_t *key, void *dst,
                          size_t dst_cap, size_t *size_p);

/* Header of block number blk of a message (validated like decode does). */
int qtopo_codec_block_info(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                           size_t blk, qtopo_codec_block_info_t *info_p);
/* The documented bound on |decode(x) - x| for one element of a block (see the
 * top of this file); value is the original element x (for b == 16 the decoded
 * one does as well). */
double qtopo_codec_error_bound(const qtopo_codec_params_t *p, const qtopo_codec_block_info_t *info,
                               float value);

/*
 * Error-bounded format (coll_qtopo_error_bound): the encoder picks the width of every
 * block from the data, the smallest block whose documented error bound (above) is at
 * most the block's tolerance; the width travels with the block, so a receiver needs
 * nothing but n and the block size (no agreement on widths). Rounding is always
 * nearest. Blocks follow each other without padding or appendix:
 *
 *   tag byte, then  0 (CONST):       float v; every value is exactly v (error 0)
 *                   1, 2, 4, 8, 16:  float s, float mid, ceil(len*w/8) bytes of codes,
 *                                    min/max scaling as in the fixed format, nearest
 *                                    (16: L = 65535, two little-endian bytes a code;
 *                                    bound s(1 + 8Lu) + 2u|mid| as for b <= 8)
 *                   32 (RAW):        len fp32 values as given (error 0; NaN/Inf blocks)
 *
 * (16 means integer codes here, not bfloat16: bfloat16's error is relative, 2^-9 of
 * the value, while an absolute bound wants the block's range cut evenly.)
 *
 * A message is at most qtopo_codec_eb_max_size(n, block) = nblocks + 4n bytes (the
 * encoder never picks a width larger than raw). The decoder checks every tag and
 * header and the exact size before writing anything and never reads past `size`.
 */
enum { QTOPO_CODEC_EB_CONST = 0, QTOPO_CODEC_EB_RAW = 32 };

/* Per-block accumulators (one double per block of the message, either may be NULL):
 * decoding adds each block's documented error bound to err[b] and a bound on its
 * largest decoded |value| to absmax[b]. */
typedef struct qtopo_codec_eb_tally {
    double *err;
    double *absmax;
} qtopo_codec_eb_tally_t;

size_t qtopo_codec_eb_max_size(size_t n, int block);
/* Encodes n floats so that |decode(x) - x| <= tol - spent[b] in block b (spent may be
 * NULL: 0). ERR_SIZE if dst_cap is too small. */
int qtopo_codec_eb_encode(const float *src, size_t n, int block, double tol, const double *spent,
                          void *dst, size_t dst_cap, size_t *size_p);
/* Decodes (add = 0) or adds (add = 1) a message of exactly size bytes into dst; nothing
 * is written, nor tallied, unless the whole message is valid. tally may be NULL. */
int qtopo_codec_eb_decode(const void *src, size_t size, size_t n, int block, float *dst, int add,
                          const qtopo_codec_eb_tally_t *tally);
/* absmax[b] += max |x| over block b of x (n values). */
void qtopo_codec_eb_absmax(const float *x, size_t n, int block, double *absmax);
/* count[tag] += number of blocks with that width tag (tests and statistics). */
int qtopo_codec_eb_widths(const void *src, size_t size, size_t n, int block,
                          size_t count[QTOPO_CODEC_EB_RAW + 1]);

/* Tests and benchmarks: 1 forces the portable scalar kernels, 0 restores the
 * best ones for this CPU.  Not thread-safe: call before any encode/decode. */
void qtopo_codec_force_scalar(int on);
/* Name of the kernels in use ("scalar" or "avx2"). */
const char *qtopo_codec_kernel_name(void);

/*
 * Internal: shared by coll_qtopo_codec.c (scalar kernels, drivers) and
 * coll_qtopo_codec_avx2.c.  The helpers of coll_qtopo_codec_elem.h define the
 * arithmetic (also for the CUDA kernels); the SIMD kernels perform exactly the
 * same operations in the same order.
 */

/* qtopo_qblock_t and qtopo_dqblock_t, the per-element arithmetic: coll_qtopo_codec_elem.h */

/* Kernels work on `groups` whole groups of 8 elements; codes of a group take
 * exactly `bits` bytes.  range() returns 1 if all values are finite. */
typedef struct qtopo_codec_kernels {
    const char *name;
    int (*range)(const float *x, size_t groups, float *lo_p, float *hi_p);
    void (*quant)(const float *x, size_t groups, const qtopo_qblock_t *q, uint8_t *codes);
    void (*dequant)(const uint8_t *codes, size_t groups, const qtopo_dqblock_t *d, float *out,
                    int add);
    /* 16-bit integer codes of the error-bounded format (L = 65535, nearest; two
     * little-endian bytes a code): the arithmetic of quant / dequant */
    void (*quant16)(const float *x, size_t groups, const qtopo_qblock_t *q, uint8_t *codes);
    void (*dequant16)(const uint8_t *codes, size_t groups, const qtopo_dqblock_t *d, float *out,
                      int add);
    /* statistics of the 1-bit sign code: part[i % 8] += (double) x[i] - mid, or its
     * absolute value, for i = 0 .. 8 groups - 1 in order (the summation order every
     * kernel keeps) */
    void (*dev_sums)(const float *x, size_t groups, double mid, int absolute, double part[8]);
} qtopo_codec_kernels_t;

/* NULL when this build or this CPU has no AVX2. */
const qtopo_codec_kernels_t *qtopo_codec_avx2_kernels(void);

/* Scalar group kernels (count <= 8 elements), also used by the SIMD kernels
 * for tails and for the rare group whose RNG counter crosses 2^32. */
void qtopo_codec_quant_group(const float *x, int count, const qtopo_qblock_t *q, uint8_t *codes);
void qtopo_codec_dequant_group(const uint8_t *codes, int count, const qtopo_dqblock_t *d,
                               float *out, int add);

#endif /* MCA_COLL_QTOPO_CODEC_H */
