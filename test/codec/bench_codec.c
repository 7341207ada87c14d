/*
 * Benchmark of the qtopo codec: throughput of encode / decode / decode_add
 * per bit width and rounding next to memcpy of the same buffer (same run,
 * ratios), measured error per bit width on Gaussian and Student-t(3) data,
 * the absmax-symmetric vs min/max scaling comparison and the block-size
 * sweep behind QTOPO_CODEC_DEFAULT_BLOCK.  Runs in about 15 s; `bench_codec
 * throughput` prints the throughput table alone (what bench_compare.sh repeats).
 * Times are the thread's CPU time, best of REPS: on a shared machine the wall clock
 * also counts the time other processes hold the core.
 */

#include "codec_test.h"

#include "coll_qtopo_codec.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THROUGHPUT_N (4u << 20) /* 16 MiB of fp32 */
#define ERROR_N      (1u << 18)
#define REPS         5

typedef struct bench {
    qtopo_codec_params_t p;
    const float *src;
    float *out;
    uint8_t *msg;
    size_t n, cap, size;
} bench_t;

typedef void (*bench_fn)(bench_t *b);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* GB/s of fp32 input, best of REPS */
static double best_gbs(bench_fn fn, bench_t *b)
{
    double best = 1e30;
    for (int r = 0; r < REPS; ++r) {
        double t0 = now();
        fn(b);
        t0 = now() - t0;
        best = t0 < best ? t0 : best;
    }
    return 4.0 * (double) b->n / best * 1e-9;
}

static void op_memcpy(bench_t *b)
{
    memcpy(b->out, b->src, 4 * b->n);
}

static void op_encode(bench_t *b)
{
    qtopo_codec_key_t key = { 1, 2, 3, 0 };
    if (QTOPO_CODEC_OK != qtopo_codec_encode(b->src, b->n, &b->p, &key, b->msg, b->cap, &b->size)) {
        abort();
    }
}

static void op_decode(bench_t *b)
{
    if (QTOPO_CODEC_OK != qtopo_codec_decode(b->msg, b->size, b->n, &b->p, b->out)) {
        abort();
    }
}

static void op_decode_add(bench_t *b)
{
    if (QTOPO_CODEC_OK != qtopo_codec_decode_add(b->msg, b->size, b->n, &b->p, b->out)) {
        abort();
    }
}

static const int bench_bits[5] = { 16, 8, 4, 2, 1 };
static const char *const rnd_name[2] = { "nearest", "stochastic" };

static void throughput_row(bench_t *b, double mem, const char *label)
{
    double enc = best_gbs(op_encode, b), dec = best_gbs(op_decode, b);
    double add = best_gbs(op_decode_add, b);
    printf("%4d  %-10s %-7s %7.2f (%4.2fx) %7.2f (%4.2fx) %7.2f (%4.2fx)\n", b->p.bits,
           rnd_name[b->p.rounding], label, enc, enc / mem, dec, dec / mem, add, add / mem);
}

static void throughput_table(bench_t *b)
{
    double mem = best_gbs(op_memcpy, b);
    printf("== throughput, GB/s of fp32 input (ratio to memcpy), %zu MiB, block %d, "
           "best of %d CPU times, one core\n",
           4 * b->n >> 20, b->p.block, REPS);
    printf("memcpy %.2f GB/s\n", mem);
    printf("bits  rounding   kernels encode          decode          decode_add\n");
    for (int i = 0; i < 5; ++i) {
        for (int r = 0; r < 2; ++r) {
            b->p.bits = bench_bits[i];
            b->p.rounding = r;
            throughput_row(b, mem, qtopo_codec_kernel_name());
        }
    }
    qtopo_codec_force_scalar(1);
    b->p.bits = 8;
    b->p.rounding = QTOPO_ROUND_NEAREST;
    throughput_row(b, mem, qtopo_codec_kernel_name());
    qtopo_codec_force_scalar(0);
}

/* ---- error measurements ----------------------------------------------- */

typedef struct errstat {
    double max_rel; /* max |err| / unit (block scale s, or ulp for bf16) */
    double rms_rel; /* RMS of the same */
    double rel_l2;  /* ||err|| / ||x|| */
    double bpe;     /* wire bits per element, headers included */
} errstat_t;

static double unit_of(const qtopo_codec_params_t *p, const qtopo_codec_block_info_t *info,
                      float x)
{
    qtopo_codec_params_t q = *p;
    q.rounding = QTOPO_ROUND_STOCHASTIC; /* bf16: error_bound is then one ulp */
    return 16 == p->bits ? qtopo_codec_error_bound(&q, info, x) : (double) info->scale;
}

static errstat_t measure(const float *x, float *y, uint8_t *msg, size_t cap, size_t n,
                         const qtopo_codec_params_t *p)
{
    errstat_t st = { 0, 0, 0, 0 };
    qtopo_codec_key_t key = { 4, 5, 6, 0 };
    qtopo_codec_block_info_t info = { 0, 0, 0, 0 };
    double e2 = 0, x2 = 0, r2 = 0;
    size_t size;
    if (QTOPO_CODEC_OK != qtopo_codec_encode(x, n, p, &key, msg, cap, &size)
        || QTOPO_CODEC_OK != qtopo_codec_decode(msg, size, n, p, y)) {
        abort();
    }
    for (size_t i = 0; i < n; ++i) {
        double err = fabs((double) y[i] - x[i]), unit;
        if (0 == i % (size_t) p->block
            && QTOPO_CODEC_OK
                   != qtopo_codec_block_info(msg, size, n, p, i / (size_t) p->block, &info)) {
            abort();
        }
        unit = unit_of(p, &info, x[i]);
        st.max_rel = 0 < unit && err / unit > st.max_rel ? err / unit : st.max_rel;
        r2 += 0 < unit ? (err / unit) * (err / unit) : 0;
        e2 += err * err;
        x2 += (double) x[i] * x[i];
    }
    st.rms_rel = sqrt(r2 / n);
    st.rel_l2 = sqrt(e2 / x2);
    st.bpe = 8.0 * size / n;
    return st;
}

/* absmax-symmetric alternative, modelled in double (the codec does not ship
 * it): 2^b levels evenly spread over [-max|x|, max|x|], 4-byte header */
static errstat_t measure_absmax(const float *x, size_t n, int bits, int block, int stochastic)
{
    errstat_t st = { 0, 0, 0, bits + 32.0 / block };
    uint64_t s = 77;
    double e2 = 0, x2 = 0, levels = (double) ((1 << bits) - 1);
    for (size_t o = 0; o < n; o += (size_t) block) {
        double amax = 0, step;
        for (int i = 0; i < block; ++i) {
            amax = fmax(amax, fabs((double) x[o + i]));
        }
        step = 2.0 * amax / levels;
        for (int i = 0; i < block && 0 < step; ++i) {
            double t = (x[o + i] + amax) / step;
            double q = floor(t + (stochastic ? rng_uniform(&s) : 0.5));
            double err = fmin(fmax(q, 0), levels) * step - amax - x[o + i];
            e2 += err * err;
        }
        for (int i = 0; i < block; ++i) {
            x2 += (double) x[o + i] * x[o + i];
        }
    }
    st.rel_l2 = sqrt(e2 / x2);
    return st;
}

static double per_bit(errstat_t st)
{
    return st.rel_l2 * pow(2.0, st.bpe);
}

typedef struct datasets {
    float *data[2];
    float *y;
    uint8_t *msg;
    size_t cap;
} datasets_t;

static const char *const data_name[2] = { "gauss", "t(3)" };

static void error_table(datasets_t *d)
{
    printf("\n== error, block %d, %u elements (unit = block scale s; bf16: ulp(x)); "
           "bound: nearest <= 1 unit (bf16 1/2), stochastic < 2 units (bf16 1)\n",
           QTOPO_CODEC_DEFAULT_BLOCK, ERROR_N);
    printf("data   bits rounding    max/unit  rms/unit  rel_L2     bits/elem\n");
    for (int k = 0; k < 2; ++k) {
        for (int i = 0; i < 5; ++i) {
            for (int r = 0; r < 2; ++r) {
                qtopo_codec_params_t p = { bench_bits[i], QTOPO_CODEC_DEFAULT_BLOCK, r };
                errstat_t st = measure(d->data[k], d->y, d->msg, d->cap, ERROR_N, &p);
                printf("%-6s %4d %-10s  %8.4f  %8.4f  %.3e  %6.3f\n", data_name[k], p.bits,
                       rnd_name[r], st.max_rel, st.rms_rel, st.rel_l2, st.bpe);
            }
        }
    }
}

static void scaling_table(datasets_t *d)
{
    printf("\n== scaling choice, block 256: rel_L2 * 2^(bits/elem), lower is better, "
           "nearest / stochastic\n");
    printf("data   bits  absmax-sym (model)   codec (min/max; nearest 1 bit: sign code)\n");
    for (int k = 0; k < 2; ++k) {
        for (int i = 1; i < 5; ++i) {
            double v[4];
            for (int r = 0; r < 2; ++r) {
                qtopo_codec_params_t p = { bench_bits[i], 256, r };
                v[r] = per_bit(measure_absmax(d->data[k], ERROR_N, p.bits, 256, r));
                v[2 + r] = per_bit(measure(d->data[k], d->y, d->msg, d->cap, ERROR_N, &p));
            }
            printf("%-6s %4d  %7.3f / %7.3f    %7.3f / %7.3f\n", data_name[k], bench_bits[i],
                   v[0], v[1], v[2], v[3]);
        }
    }
}

static void block_sweep(datasets_t *d, bench_t *b)
{
    static const int blocks[6] = { 64, 128, 256, 512, 1024, 4096 };
    double mem = best_gbs(op_memcpy, b);
    printf("\n== block-size sweep, nearest: rel_L2 * 2^(bits/elem) (lower is better); "
           "8-bit speed / memcpy\n");
    printf("block   g8     g4     g2     t8     t4     t2    enc8  add8\n");
    for (int j = 0; j < 6; ++j) {
        printf("%5d", blocks[j]);
        for (int k = 0; k < 2; ++k) {
            for (int i = 1; i < 4; ++i) {
                qtopo_codec_params_t p = { bench_bits[i], blocks[j], QTOPO_ROUND_NEAREST };
                printf(" %6.3f", per_bit(measure(d->data[k], d->y, d->msg, d->cap, ERROR_N, &p)));
            }
        }
        b->p.bits = 8;
        b->p.block = blocks[j];
        b->p.rounding = QTOPO_ROUND_NEAREST;
        printf("  %4.2f", best_gbs(op_encode, b) / mem);
        printf("  %4.2f\n", best_gbs(op_decode_add, b) / mem);
    }
}

int main(int argc, char **argv)
{
    int throughput_only = 1 < argc && 0 == strcmp(argv[1], "throughput");
    qtopo_codec_params_t p = { 8, QTOPO_CODEC_DEFAULT_BLOCK, QTOPO_ROUND_NEAREST };
    size_t cap = qtopo_codec_max_size(THROUGHPUT_N, &p) * 2;
    float *src = malloc(4 * (size_t) THROUGHPUT_N), *out = malloc(4 * (size_t) THROUGHPUT_N);
    uint8_t *msg = malloc(cap);
    bench_t b = { p, src, out, msg, THROUGHPUT_N, cap, 0 };
    datasets_t d = { { src, src + ERROR_N }, out, msg, cap };
    uint64_t s = 2024;
    if (NULL == src || NULL == out || NULL == msg) {
        return 1;
    }
    for (size_t i = 0; i < THROUGHPUT_N; ++i) {
        src[i] = (float) rng_gauss(&s);
    }
    memset(out, 0, 4 * (size_t) THROUGHPUT_N);
    throughput_table(&b);
    for (size_t i = 0; i < ERROR_N && !throughput_only; ++i) {
        src[ERROR_N + i] = (float) rng_student3(&s);
    }
    if (!throughput_only) {
        error_table(&d);
        scaling_table(&d);
        block_sweep(&d, &b);
    }
    free(src);
    free(out);
    free(msg);
    return 0;
}
