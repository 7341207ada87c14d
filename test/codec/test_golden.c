/*
 * The CPU codec's bytes and floats, pinned: FNV-1a digests of encode, encode_ef and
 * decode_add over a fixed matrix of widths, roundings, block sizes, counts and data
 * (normal values, heavy tails, NaN/Inf blocks, +-0 blocks, constants), for the scalar
 * and the SIMD kernels. The expected digests were recorded from the codec before its
 * per-element math moved into coll_qtopo_codec_elem.h (shared with the CUDA kernels),
 * so any change of a bit on the wire fails here. The data come from integer arithmetic
 * only (no libm), so the digests do not depend on the C library.
 *
 * Second part: the per-element helpers of coll_qtopo_codec_elem.h run one element at a
 * time against the codec's messages (every code of every quantized block re-derived from
 * the block's header, every decoded value re-computed), so a kernel built from those
 * helpers (the CUDA one) is checked for the same arithmetic on the CPU.
 *
 * ./test_golden --print prints the digest table instead of checking it.
 */

#include "codec_test.h"
#include "coll_qtopo_codec.h"

#include <stdlib.h>
#include <string.h>

#define NSIZES 7
static const size_t sizes[NSIZES] = {1, 7, 255, 256, 257, 1000, 4099};
static const int widths[5] = {16, 8, 4, 2, 1};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; ++i) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

/* Digest of everything one (bits, rounding) produces over the matrix. */
static int digest(int bits, int rounding, uint64_t *h_p)
{
    size_t nmax = sizes[NSIZES - 1];
    float *x = malloc(nmax * sizeof(float)), *res = malloc(nmax * sizeof(float));
    float *acc = malloc(nmax * sizeof(float));
    size_t cap = 8 * nmax + 4096;
    uint8_t *msg = malloc(cap);
    uint64_t h = 0xcbf29ce484222325ull;
    int blocks[2] = {256, 32}, rc = 0;
    CHECK(NULL != x && NULL != res && NULL != acc && NULL != msg);
    for (int bi = 0; bi < 2; ++bi) {
        for (int si = 0; si < NSIZES; ++si) {
            for (int kind = 0; kind < 2; ++kind) {
                qtopo_codec_params_t p = {bits, blocks[bi], rounding};
                qtopo_codec_key_t key = {1234 + (uint64_t) kind, 5, 3, 777};
                size_t n = sizes[si], size = 0;
                fill_data(x, n, kind, 99 + 7 * (uint64_t) si);
                rc |= qtopo_codec_encode(x, n, &p, &key, msg, cap, &size);
                h = fnv(h, msg, size);
                for (size_t i = 0; i < n; ++i) {
                    acc[i] = (float) i * 0.125f;
                    res[i] = 0.0f;
                }
                rc |= qtopo_codec_decode_add(msg, size, n, &p, acc);
                h = fnv(h, acc, n * sizeof(float));
                for (int step = 0; step < 2; ++step) {
                    key.call = 6 + (uint64_t) step;
                    rc |= qtopo_codec_encode_ef(x, res, n, &p, &key, msg, cap, &size);
                    h = fnv(h, msg, size);
                    h = fnv(h, res, n * sizeof(float));
                }
            }
        }
    }
    free(x);
    free(res);
    free(acc);
    free(msg);
    CHECK(0 == rc);
    *h_p = h;
    return 0;
}

/* recorded from the codec as of main 93dc37a (scalar and AVX2 agree) */
static const uint64_t expected[5][2] = {
    {0x3ae85c5ea341c80bull, 0x529454d9c89b7feaull}, /* 16 bits: nearest, stochastic */
    {0x57529bed02a3b68dull, 0x29045b7e4af8ba97ull}, /* 8 */
    {0xb5d032b84e481810ull, 0xbfd4fd216ccaf6adull}, /* 4 */
    {0xa78999ce06bed0aaull, 0xb07f365fa177d477ull}, /* 2 */
    {0xad114a90f6a497f8ull, 0x24466fe2cb3332a6ull}, /* 1 */
};

static int check_digests(int scalar)
{
    qtopo_codec_force_scalar(scalar);
    for (int w = 0; w < 5; ++w) {
        for (int r = 0; r < 2; ++r) {
            uint64_t h = 0;
            CHECK(0 == digest(widths[w], r, &h));
            CHECKF(expected[w][r] == h, "bits %d rounding %d (%s): digest 0x%016llx, expected "
                   "0x%016llx", widths[w], r, qtopo_codec_kernel_name(), (unsigned long long) h,
                   (unsigned long long) expected[w][r]);
        }
    }
    qtopo_codec_force_scalar(0);
    return 0;
}

static int test_digests_scalar(void)
{
    return check_digests(1);
}

static int test_digests_simd(void)
{
    return check_digests(0);
}

/* Code j of a block's packed codes (b <= 8) or bfloat16 j (b == 16). */
static uint32_t code_at(const uint8_t *codes, size_t j, int bits)
{
    size_t bit = j * (size_t) bits;
    uint32_t w = (uint32_t) codes[bit / 8] | (16 == bits ? (uint32_t) codes[bit / 8 + 1] << 8 : 0);
    return 16 == bits ? w : (w >> (bit % 8)) & ((1u << bits) - 1);
}

/* One message: every code and decoded value of every quantized block, element by element
 * through coll_qtopo_codec_elem.h. */
static int elem_check_message(const float *x, size_t n, const qtopo_codec_params_t *p,
                              const qtopo_codec_key_t *key, const uint8_t *msg, size_t size,
                              const float *dec)
{
    size_t nblk = (n + (size_t) p->block - 1) / (size_t) p->block;
    const uint8_t *hdr = msg;
    uint64_t ck = qtopo_elem_call_key(key->seed, key->call, key->rank);
    for (size_t b = 0; b < nblk; ++b) {
        qtopo_codec_block_info_t info;
        qtopo_qblock_t q;
        qtopo_dqblock_t d;
        size_t off = b * (size_t) p->block;
        CHECK(QTOPO_CODEC_OK == qtopo_codec_block_info(msg, size, n, p, b, &info));
        if (!info.raw) {
            qtopo_elem_qblock(&q, p->bits, p->rounding, info.mid, info.scale, ck,
                              key->elem_offset + off);
            qtopo_elem_dqblock(&d, p->bits, info.mid, info.scale, 0);
        }
        for (size_t j = 0; !info.raw && j < info.len; ++j) {
            const uint8_t *codes = hdr + qtopo_elem_header_bytes(p->bits);
            uint32_t rnd = qtopo_elem_rng(&q, (int) j), c = code_at(codes, j, p->bits);
            uint32_t want = 16 == p->bits ? qtopo_elem_bf16(x[off + j], p->rounding, rnd)
                                          : qtopo_elem_quant(x[off + j], &q, rnd);
            float v = 16 == p->bits ? qtopo_elem_u2f(c << 16) : qtopo_elem_dequant(c, &d);
            CHECKF(want == c, "bits %d block %zu elem %zu: code %u, elem.h %u", p->bits, b, j,
                   c, want);
            if (16 == p->bits || 0.0f != info.scale) {
                CHECKF(qtopo_elem_f2u(v) == qtopo_elem_f2u(dec[off + j]), "bits %d block %zu "
                       "elem %zu: decoded %a, elem.h %a", p->bits, b, j, dec[off + j], v);
            }
        }
        hdr += qtopo_elem_block_bytes(info.len, p->bits);
    }
    return 0;
}

static int test_elem_against_codec(void)
{
    size_t n = 4099, cap = 8 * n + 4096, size = 0;
    float *x = malloc(n * sizeof(float)), *dec = malloc(n * sizeof(float));
    uint8_t *msg = malloc(cap);
    int rc = 0;
    CHECK(NULL != x && NULL != dec && NULL != msg);
    for (int w = 0; 0 == rc && w < 5; ++w) {
        for (int r = 0; 0 == rc && r < 2; ++r) {
            for (int kind = 0; 0 == rc && kind < 2; ++kind) {
                qtopo_codec_params_t p = {widths[w], 256, r};
                qtopo_codec_key_t key = {42, 9, 1, 1u << 20};
                fill_data(x, n, kind, 5 + (uint64_t) w);
                rc |= qtopo_codec_encode(x, n, &p, &key, msg, cap, &size);
                rc |= qtopo_codec_decode(msg, size, n, &p, dec);
                rc |= elem_check_message(x, n, &p, &key, msg, size, dec);
            }
        }
    }
    free(x);
    free(dec);
    free(msg);
    CHECK(0 == rc);
    return 0;
}

static int print_table(void)
{
    printf("static const uint64_t expected[5][2] = {\n");
    for (int w = 0; w < 5; ++w) {
        uint64_t h[2];
        for (int r = 0; r < 2; ++r) {
            CHECK(0 == digest(widths[w], r, &h[r]));
        }
        printf("    {0x%016llxull, 0x%016llxull},\n", (unsigned long long) h[0],
               (unsigned long long) h[1]);
    }
    printf("};\n");
    return 0;
}

int main(int argc, char **argv)
{
    static const test_case_t tests[] = {
        {"golden digests, scalar kernels", test_digests_scalar},
        {"golden digests, SIMD kernels", test_digests_simd},
        {"elem.h element by element vs the codec", test_elem_against_codec},
    };
    if (1 < argc && 0 == strcmp(argv[1], "--print")) {
        return print_table();
    }
    return run_tests(tests, (int) (sizeof(tests) / sizeof(tests[0])));
}
