/*
 * libFuzzer target for the qtopo codec.  Input: 5 bytes of parameters
 * (bits, block, count, mode) then a payload.  Mode 0 decodes the payload as
 * a message (must never crash or read/write out of bounds; accepted messages
 * decode to finite values in every non-raw b <= 8 block).  Mode 1 encodes
 * the payload as floats and checks the round trip against the documented
 * bound.  With bit 2 of the mode byte set, both run on the error-bounded
 * format instead (the tolerance is 2^-k, k from the bits byte): decoded
 * blocks must stay within their tallied bound, round trips within the
 * tolerance.  Built with -DQTOPO_FUZZ_GEN_SEEDS=1 instead, it writes a few valid
 * inputs into the directory given as argv[1] (the seed corpus).
 */

#include "coll_qtopo_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNT 2048

static const int fuzz_bits[5] = { 16, 8, 4, 2, 1 };

static void params_of(const uint8_t *d, qtopo_codec_params_t *p, size_t *n_p)
{
    p->bits = fuzz_bits[d[0] % 5];
    p->block = 32 + 8 * (d[1] % 64);
    p->rounding = d[4] >> 1 & 1;
    *n_p = ((size_t) d[2] | (size_t) d[3] << 8) % (MAX_COUNT + 1);
}

static void check_decoded(const uint8_t *msg, size_t size, size_t n,
                          const qtopo_codec_params_t *p, const float *out)
{
    size_t nblk = (n + (size_t) p->block - 1) / (size_t) p->block;
    for (size_t b = 0; b < nblk; ++b) {
        qtopo_codec_block_info_t info;
        if (QTOPO_CODEC_OK != qtopo_codec_block_info(msg, size, n, p, b, &info)) {
            abort(); /* decode accepted the message */
        }
        for (size_t i = 0; i < info.len && 16 != p->bits && !info.raw; ++i) {
            if (!isfinite(out[b * (size_t) p->block + i])) {
                abort();
            }
        }
    }
}

static void fuzz_decode(const uint8_t *msg, size_t size, size_t n, const qtopo_codec_params_t *p)
{
    static float out[MAX_COUNT], acc[MAX_COUNT];
    uint8_t *copy = malloc(size + 1); /* exact-size heap copy: ASan sees overreads */
    if (NULL == copy) {
        return;
    }
    memcpy(copy, msg, size);
    if (QTOPO_CODEC_OK == qtopo_codec_decode(copy, size, n, p, out)) {
        check_decoded(copy, size, n, p, out);
        memset(acc, 0, sizeof(acc));
        if (QTOPO_CODEC_OK != qtopo_codec_decode_add(copy, size, n, p, acc)) {
            abort();
        }
    }
    free(copy);
}

static void fuzz_roundtrip(const uint8_t *data, size_t size, const qtopo_codec_params_t *p)
{
    static float x[MAX_COUNT], y[MAX_COUNT];
    static uint8_t msg[MAX_COUNT * 7 + 64];
    qtopo_codec_key_t key = { 1, 2, 3, 4 };
    size_t n = size / 4 > MAX_COUNT ? MAX_COUNT : size / 4, len;
    memcpy(x, data, n * 4);
    if (QTOPO_CODEC_OK != qtopo_codec_encode(x, n, p, &key, msg, sizeof(msg), &len)
        || QTOPO_CODEC_OK != qtopo_codec_decode(msg, len, n, p, y)) {
        abort();
    }
    for (size_t i = 0; i < n; ++i) {
        qtopo_codec_block_info_t info;
        size_t b = i / (size_t) p->block;
        if (QTOPO_CODEC_OK != qtopo_codec_block_info(msg, len, n, p, b, &info)) {
            abort();
        }
        if (info.raw ? 0 != memcmp(&x[i], &y[i], 4)
                     : !(fabs((double) y[i] - x[i]) <= qtopo_codec_error_bound(p, &info, x[i]))) {
            abort();
        }
    }
}

/* Error-bounded format: a forged message must be rejected or decode with every
 * non-raw, non-bfloat16 value finite and within the tallied magnitude bound. */
static void fuzz_eb_decode(const uint8_t *msg, size_t size, size_t n, int block)
{
    static float out[MAX_COUNT];
    static double err[MAX_COUNT], absmax[MAX_COUNT];
    qtopo_codec_eb_tally_t tally = { err, absmax };
    uint8_t *copy = malloc(size + 1);
    if (NULL == copy) {
        return;
    }
    memcpy(copy, msg, size);
    memset(absmax, 0, sizeof(absmax));
    if (QTOPO_CODEC_OK == qtopo_codec_eb_decode(copy, size, n, block, out, 0, &tally)) {
        for (size_t i = 0; i < n; ++i) {
            if (!(fabs((double) out[i]) <= absmax[i / (size_t) block]) && !isnan(out[i])
                && !isinf(absmax[i / (size_t) block])) {
                abort();
            }
        }
    }
    free(copy);
}

static void fuzz_eb_roundtrip(const uint8_t *data, size_t size, int block, double tol)
{
    static float x[MAX_COUNT], y[MAX_COUNT];
    static uint8_t msg[MAX_COUNT * 5 + 64];
    size_t n = size / 4 > MAX_COUNT ? MAX_COUNT : size / 4, len;
    memcpy(x, data, n * 4);
    if (QTOPO_CODEC_OK != qtopo_codec_eb_encode(x, n, block, tol, NULL, msg, sizeof(msg), &len)
        || len > qtopo_codec_eb_max_size(n, block)
        || QTOPO_CODEC_OK != qtopo_codec_eb_decode(msg, len, n, block, y, 0, NULL)) {
        abort();
    }
    for (size_t i = 0; i < n; ++i) {
        if (isfinite(x[i]) ? !(fabs((double) y[i] - x[i]) <= tol) : 0 != memcmp(&x[i], &y[i], 4)) {
            /* a block with a NaN or Inf goes raw: bit for bit */
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qtopo_codec_params_t p;
    size_t n;
    if (5 > size) {
        return 0;
    }
    params_of(data, &p, &n);
    if (data[4] & 4) {
        double tol = ldexp(1.0, -(int) (data[0] % 40));
        if (data[4] & 1) {
            fuzz_eb_roundtrip(data + 5, size - 5, p.block, tol);
        } else {
            fuzz_eb_decode(data + 5, size - 5, n, p.block);
        }
    } else if (data[4] & 1) {
        fuzz_roundtrip(data + 5, size - 5, &p);
    } else {
        fuzz_decode(data + 5, size - 5, n, &p);
    }
    return 0;
}

#if QTOPO_FUZZ_GEN_SEEDS
/* writes valid decode inputs (with and without raw blocks) for each bit width */
int main(int argc, char **argv)
{
    static float x[300];
    static uint8_t buf[5 + 300 * 7 + 64]; /* >= eb_max_size too */
    if (2 != argc) {
        fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
        return 1;
    }
    for (int k = 0; k < 20; ++k) {
        qtopo_codec_params_t p;
        size_t n, len;
        char path[4096];
        int rc;
        FILE *f;
        uint8_t hdr[5] = { (uint8_t) (k % 5), 4, 300 % 256, 300 / 256, k >= 10 ? 4 : 0 };
        params_of(hdr, &p, &n);
        for (size_t i = 0; i < n; ++i) {
            x[i] = (float) sin((double) i) * (float) (k + 1);
        }
        x[100] = 5 == k % 10 ? NAN : x[100];
        x[200] = 7 == k % 10 ? x[201] : x[200];
        for (size_t i = 64; 9 == k % 10 && i < 128; ++i) {
            x[i] = 0.0f; /* a constant block */
        }
        memcpy(buf, hdr, 5);
        rc = 10 <= k ? qtopo_codec_eb_encode(x, n, p.block, ldexp(1.0, -2 * (k - 10)), NULL,
                                             buf + 5, sizeof(buf) - 5, &len)
                     : qtopo_codec_encode(x, n, &p, NULL, buf + 5, sizeof(buf) - 5, &len);
        if (QTOPO_CODEC_OK != rc) {
            return 1;
        }
        snprintf(path, sizeof(path), "%s/seed%d", argv[1], k);
        f = fopen(path, "wb");
        if (NULL == f || 1 != fwrite(buf, 5 + len, 1, f) || 0 != fclose(f)) {
            return 1;
        }
    }
    return 0;
}
#endif
