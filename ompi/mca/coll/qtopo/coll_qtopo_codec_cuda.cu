/*
 * qtopo codec on the GPU: encode (with or without error feedback), decode and
 * decode-accumulate of the message format of coll_qtopo_codec.h, byte for byte
 * and float for float what the CPU codec produces for the same input, key and
 * parameters.  The arithmetic is coll_qtopo_codec_elem.h, compiled here as
 * __host__ __device__; this file only maps blocks to warps and moves bytes.
 *
 * Build: nvcc --fmad=false (no FMA contraction, as -ffp-contract=off on the
 * CPU), never --use_fast_math (no flush-to-zero, IEEE division).  The kernels
 * have C names and take one qtopo_cuda_job_t by value: the host side
 * (coll_qtopo_cuda.c) loads them from the fatbin embedded in the component
 * with the CUDA driver API, so the component links no CUDA library.
 *
 * Mapping: one warp per codec block (QTOPO_CUDA_WARPS blocks per kernel
 * block); lane l handles the groups of 8 elements l, l + 32, ... of its block
 * (block 256: one group per lane).  Block statistics (range, the 1-bit sign
 * code's sums) are warp reductions that keep the CPU's results: min and max do
 * not depend on the order (the +0.0f after them settles -0.0 against +0.0),
 * and the sums use the CPU's 8 partial sums, each added up in element order
 * by one lane.  Raw (NaN/Inf) blocks go to the appendix in a second pass after
 * an exclusive scan of their lengths (qtopo_k_scan), only when there are any.
 */

#include "coll_qtopo_codec.h"
#include "coll_qtopo_cuda_job.h"

#define FULL_MASK 0xffffffffu

__device__ static size_t blk_len(const qtopo_cuda_job_t &j, size_t b)
{
    size_t off = b * (size_t) j.block;
    return j.n - off < (size_t) j.block ? j.n - off : (size_t) j.block;
}

/* The codec block of this warp, or nblocks when the warp has none. */
__device__ static size_t warp_block(const qtopo_cuda_job_t &j)
{
    size_t b = (size_t) blockIdx.x * QTOPO_CUDA_WARPS + threadIdx.x / 32;
    return b < j.nblocks ? b : j.nblocks;
}

__device__ static uint8_t *blk_hdr(uint64_t base, const qtopo_cuda_job_t &j, size_t b)
{
    return (uint8_t *) base + b * qtopo_elem_block_bytes((size_t) j.block, j.bits);
}

/* nb <= 8 little-endian bytes at p (any alignment). */
__device__ static void store_bytes(uint8_t *p, uint64_t u, size_t nb)
{
    if (8 == nb && 0 == ((uintptr_t) p & 7)) {
        *(uint64_t *) p = u;
        return;
    }
    if (4 == nb && 0 == ((uintptr_t) p & 3)) {
        *(uint32_t *) p = (uint32_t) u;
        return;
    }
    for (size_t i = 0; i < nb; ++i) {
        p[i] = (uint8_t) (u >> (8 * i));
    }
}

__device__ static uint64_t load_bytes(const uint8_t *p, size_t nb)
{
    uint64_t u = 0;
    if (8 == nb && 0 == ((uintptr_t) p & 7)) {
        return *(const uint64_t *) p;
    }
    if (4 == nb && 0 == ((uintptr_t) p & 3)) {
        return *(const uint32_t *) p;
    }
    for (size_t i = 0; i < nb; ++i) {
        u |= (uint64_t) p[i] << (8 * i);
    }
    return u;
}

__device__ static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t) load_bytes(p, 4);
}

__device__ static void store_u32(uint8_t *p, uint32_t v)
{
    store_bytes(p, v, 4);
}

/* The CPU's sum_dev: part[k] = sum of x[i] - mid (or |x[i] - mid|) over i = k mod 8 in
 * element order (lane k), then the 8 partial sums in order (every lane). */
__device__ static double warp_sum_dev(const float *x, size_t len, double mid, int absolute,
                                      int lane)
{
    double part = 0.0, sum = 0.0;
    if (8 > lane) {
        for (size_t i = (size_t) lane; i < len; i += 8) {
            double d = (double) x[i] - mid;
            part += absolute ? fabs(d) : d;
        }
    }
    for (int k = 0; k < 8; ++k) {
        sum += __shfl_sync(FULL_MASK, part, k);
    }
    return sum;
}

/* Range of the block and whether every value is finite (the CPU's range_block). */
__device__ static int warp_range(const float *x, size_t len, int lane, float *lo_p, float *hi_p)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    int nonfinite = 0;
    for (size_t i = (size_t) lane; i < len; i += 32) {
        float v = x[i];
        nonfinite |= 0x7f800000u == (qtopo_elem_f2u(v) & 0x7f800000u);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    for (int o = 16; 0 < o; o >>= 1) {
        float l2 = __shfl_xor_sync(FULL_MASK, lo, o), h2 = __shfl_xor_sync(FULL_MASK, hi, o);
        lo = l2 < lo ? l2 : lo;
        hi = h2 > hi ? h2 : hi;
    }
    *lo_p = lo + 0.0f;
    *hi_p = hi + 0.0f;
    return !__any_sync(FULL_MASK, nonfinite);
}

__device__ static int warp_all_negative_zero(const float *x, size_t len, int lane)
{
    int all = 1;
    for (size_t i = (size_t) lane; i < len; i += 32) {
        all &= 0 != signbit(x[i]);
    }
    return __all_sync(FULL_MASK, all);
}

/* The header of a finite block (the CPU's encode_block); 0 if it must go raw. */
__device__ static int warp_header(const qtopo_cuda_job_t &j, const float *x, size_t len, int lane,
                                  float lo, float hi, float *mid_p, float *scale_p)
{
    float mid = 0.0f, scale = 0.0f;
    if (16 == j.bits) {
        *mid_p = *scale_p = 0.0f;
        return 1;
    }
    if (!qtopo_elem_make_header(lo, hi, (1 << j.bits) - 1, &mid, &scale)) {
        return 0;
    }
    if (j.sign_header) {
        float m2, s2;
        double m = qtopo_elem_sign_mid(warp_sum_dev(x, len, 0.0, 0, lane), len);
        if (qtopo_elem_sign_header(m, warp_sum_dev(x, len, m, 1, lane), len, lo, hi, &m2, &s2)) {
            mid = m2;
            scale = s2;
        }
    }
    if (0.0f == scale && 0.0f == mid && warp_all_negative_zero(x, len, lane)) {
        mid = -0.0f;
    }
    *mid_p = mid;
    *scale_p = scale;
    return 1;
}

/* Codes of the groups of this lane; with error feedback, residual += -decode(codes). */
__device__ static void warp_quantize(const qtopo_cuda_job_t &j, const float *x, size_t len,
                                     size_t off, int lane, float mid, float scale, uint8_t *codes,
                                     float *res)
{
    qtopo_qblock_t q;
    qtopo_dqblock_t d;
    qtopo_elem_qblock(&q, j.bits, j.stochastic, mid, scale, j.key, j.index + off);
    qtopo_elem_dqblock(&d, j.bits, mid, scale, 1);
    for (size_t g = (size_t) lane; 8 * g < len; g += 32) {
        int cnt = len - 8 * g < 8 ? (int) (len - 8 * g) : 8;
        qtopo_qblock_t qg = q;
        uint8_t *c = codes + g * (size_t) j.bits;
        qg.index += 8 * g;
        if (16 == j.bits) {
            qtopo_elem_quant_group(x + 8 * g, cnt, &qg, c);
        } else {
            store_bytes(c, qtopo_elem_quant8(x + 8 * g, cnt, &qg),
                        qtopo_elem_code_bytes((size_t) cnt, j.bits));
        }
        if (NULL != res) {
            qtopo_elem_dequant_group(c, cnt, &d, res + 8 * g, 1);
        }
    }
}

/* Pass 1 of encode: headers and codes; raw blocks get their mark and zero codes and
 * are counted (their values follow in qtopo_k_appendix). */
extern "C" __global__ void qtopo_k_encode(qtopo_cuda_job_t j)
{
    size_t b = warp_block(j), off, len;
    int lane = (int) (threadIdx.x % 32);
    const float *x;
    float *res = NULL;
    float lo, hi, mid, scale;
    uint8_t *hdr;
    if (b == j.nblocks) {
        return;
    }
    off = b * (size_t) j.block;
    len = blk_len(j, b);
    x = (const float *) j.src + off;
    hdr = blk_hdr(j.dst, j, b);
    if (0 != j.residual) {
        res = (float *) j.residual + off;
        for (size_t i = (size_t) lane; i < len; i += 32) {
            res[i] = qtopo_elem_add(x[i], res[i]);
        }
        __syncwarp();
        x = res;
    }
    if (!warp_range(x, len, lane, &lo, &hi)
        || !warp_header(j, x, len, lane, lo, hi, &mid, &scale)) {
        size_t nb = qtopo_elem_block_bytes(len, j.bits);
        for (size_t i = (size_t) lane; i < nb; i += 32) {
            hdr[i] = 0;
        }
        __syncwarp();
        if (0 == lane) {
            store_u32(hdr, QTOPO_CODEC_RAW_MARK);
            ((uint32_t *) j.rawflag)[b] = 1;
            atomicAdd((unsigned long long *) j.counters, (unsigned long long) len);
        }
        return;
    }
    if (0 == lane) {
        store_u32(hdr, 16 == j.bits ? 0 : qtopo_elem_f2u(scale));
        if (16 != j.bits) {
            store_u32(hdr + 4, qtopo_elem_f2u(mid));
        }
        ((uint32_t *) j.rawflag)[b] = 0;
    }
    warp_quantize(j, x, len, off, lane, mid, scale, hdr + qtopo_elem_header_bytes(j.bits), res);
}

/* rawoff[b] = elements of the raw blocks before b (one kernel block). */
extern "C" __global__ void qtopo_k_scan(qtopo_cuda_job_t j)
{
    __shared__ unsigned long long part[QTOPO_CUDA_SCAN_THREADS];
    size_t t = threadIdx.x, per = (j.nblocks + QTOPO_CUDA_SCAN_THREADS - 1)
                                  / QTOPO_CUDA_SCAN_THREADS;
    size_t b0 = t * per, b1 = b0 + per < j.nblocks ? b0 + per : j.nblocks;
    const uint32_t *flag = (const uint32_t *) j.rawflag;
    unsigned long long s = 0;
    for (size_t b = b0; b < b1; ++b) {
        s += flag[b] ? blk_len(j, b) : 0;
    }
    part[t] = s;
    __syncthreads();
    if (0 == t) {
        unsigned long long acc = 0;
        for (int k = 0; k < QTOPO_CUDA_SCAN_THREADS; ++k) {
            unsigned long long v = part[k];
            part[k] = acc;
            acc += v;
        }
    }
    __syncthreads();
    s = part[t];
    for (size_t b = b0; b < b1; ++b) {
        ((uint64_t *) j.rawoff)[b] = s;
        s += flag[b] ? blk_len(j, b) : 0;
    }
}

/* Pass 2 of encode, only with raw blocks: their values into the appendix, bit for
 * bit; with error feedback their residual becomes 0. */
extern "C" __global__ void qtopo_k_appendix(qtopo_cuda_job_t j)
{
    size_t b = warp_block(j), off, len;
    int lane = (int) (threadIdx.x % 32);
    const uint32_t *x;
    uint8_t *a;
    if (b == j.nblocks || 0 == ((const uint32_t *) j.rawflag)[b]) {
        return;
    }
    off = b * (size_t) j.block;
    len = blk_len(j, b);
    x = (const uint32_t *) (0 != j.residual ? j.residual : j.src) + off;
    a = (uint8_t *) j.dst + j.fixed + 4 * ((const uint64_t *) j.rawoff)[b];
    for (size_t i = (size_t) lane; i < len; i += 32) {
        store_u32(a + 4 * i, x[i]);
        if (0 != j.residual) {
            ((float *) j.residual)[off + i] = 0.0f;
        }
    }
}

/* Decode, pass 1 (one thread per block): the CPU's read_header on every header;
 * counters[0] += raw elements, counters[1] = 1 on a header the encoder cannot write. */
extern "C" __global__ void qtopo_k_validate(qtopo_cuda_job_t j)
{
    size_t b = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
    const uint8_t *hdr;
    uint32_t word;
    int raw = 0, bad;
    if (b >= j.nblocks) {
        return;
    }
    hdr = blk_hdr(j.src, j, b);
    word = load_u32(hdr);
    if (QTOPO_CODEC_RAW_MARK == word) {
        raw = 1;
        bad = 16 != j.bits && 0 != load_u32(hdr + 4);
    } else if (16 == j.bits) {
        bad = 0 != word;
    } else {
        bad = !qtopo_elem_header_ok(qtopo_elem_u2f(load_u32(hdr + 4)), qtopo_elem_u2f(word),
                                    (1 << j.bits) - 1);
    }
    ((uint32_t *) j.rawflag)[b] = raw && !bad;
    if (raw && !bad) {
        atomicAdd((unsigned long long *) j.counters, (unsigned long long) blk_len(j, b));
    }
    if (bad) {
        atomicExch((unsigned long long *) j.counters + 1, 1ull);
    }
}

/* Decode, pass 2, after validation: dst = (or +=, j.add) the decoded values. */
extern "C" __global__ void qtopo_k_decode(qtopo_cuda_job_t j)
{
    size_t b = warp_block(j), off, len;
    int lane = (int) (threadIdx.x % 32);
    const uint8_t *hdr;
    float *out, mid = 0.0f, scale = 0.0f;
    qtopo_dqblock_t d;
    if (b == j.nblocks) {
        return;
    }
    off = b * (size_t) j.block;
    len = blk_len(j, b);
    hdr = blk_hdr(j.src, j, b);
    out = (float *) j.dst + off;
    if (((const uint32_t *) j.rawflag)[b]) {
        const uint8_t *a = (const uint8_t *) j.src + j.fixed + 4 * ((const uint64_t *) j.rawoff)[b];
        for (size_t i = (size_t) lane; i < len; i += 32) {
            uint32_t w = load_u32(a + 4 * i);
            if (j.add) {
                out[i] = qtopo_elem_add(out[i], qtopo_elem_u2f(w));
            } else {
                ((uint32_t *) out)[i] = w; /* bit for bit, NaN payloads too */
            }
        }
        return;
    }
    if (16 != j.bits) {
        scale = qtopo_elem_u2f(load_u32(hdr));
        mid = qtopo_elem_u2f(load_u32(hdr + 4));
    }
    if (16 != j.bits && 0.0f == scale) {
        /* one value: mid itself, bit for bit (the CPU's const_block) */
        for (size_t i = (size_t) lane; i < len; i += 32) {
            out[i] = j.add ? qtopo_elem_add(out[i], mid) : mid;
        }
        return;
    }
    qtopo_elem_dqblock(&d, j.bits, mid, scale, 0);
    hdr += qtopo_elem_header_bytes(j.bits);
    for (size_t g = (size_t) lane; 8 * g < len; g += 32) {
        int cnt = len - 8 * g < 8 ? (int) (len - 8 * g) : 8;
        const uint8_t *c = hdr + g * (size_t) j.bits;
        if (16 == j.bits) {
            qtopo_elem_dequant_group(c, cnt, &d, out + 8 * g, j.add);
        } else {
            qtopo_elem_dequant8(load_bytes(c, qtopo_elem_code_bytes((size_t) cnt, j.bits)), cnt,
                                &d, out + 8 * g, j.add);
        }
    }
}
