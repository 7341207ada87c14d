/*
 * qtopo's CUDA codec kernels against the CPU codec (needs a GPU; test/gpu/run.sh runs
 * it): for widths 16/8/4/2/1, nearest and stochastic, blocks 256 and 32, counts that are
 * and are not multiples of the block, plain data and blocks with NaN/Inf/-0/constants,
 *   encode          the same size and bytes,
 *   decode          the same floats, bit for bit (from the CPU's message),
 *   decode_add      the same floats, bit for bit,
 *   encode_ef       the same messages and residuals over two steps,
 *   a bad header    the same error code, the output untouched.
 * Then (unless --no-bench) throughput of 8-bit encode and decode_add on 256 MiB, as a
 * ratio to cuMemcpyDtoD of the same buffer (medians of 10, wall clock around synchronous
 * calls, so the wrapper's own work is included).
 * Exit 0 all identical, 1 a difference, 77 no GPU (SKIP). With QTOPO_GPU_EMULATED set
 * (test/gpu/test_emulated.sh, the fake driver) the two largest counts are left out and
 * the benchmark runs on 256 KiB (its code path only).
 *
 * Also checks that the driver constants coll_qtopo_cuda.c declares match cuda.h.
 */

#include <cuda.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec_test.h"
#include "coll_qtopo_codec.h"
#include "coll_qtopo_cuda.h"

_Static_assert(1 == CU_POINTER_ATTRIBUTE_CONTEXT, "coll_qtopo_cuda.c: CU_PTR_CONTEXT");
_Static_assert(2 == CU_POINTER_ATTRIBUTE_MEMORY_TYPE, "coll_qtopo_cuda.c: CU_PTR_MEMORY_TYPE");
_Static_assert(8 == CU_POINTER_ATTRIBUTE_IS_MANAGED, "coll_qtopo_cuda.c: CU_PTR_IS_MANAGED");
_Static_assert(9 == CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, "coll_qtopo_cuda.c: CU_PTR_DEVICE");
_Static_assert(2 == CU_MEMORYTYPE_DEVICE, "coll_qtopo_cuda.c: CU_MEM_DEVICE");
_Static_assert(0 == CUDA_SUCCESS, "coll_qtopo_cuda.c: success is 0");

#define NMAX (((size_t) 1 << 20) + 3)

static const size_t counts[] = {1, 7, 255, 256, 257, 1000, 4099, 65536, NMAX};
static const int widths[5] = {16, 8, 4, 2, 1};

/* Host and device copies of one case's buffers. */
typedef struct bufs {
    float *x, *res_c, *out_c, *out_g;
    uint8_t *msg_c, *msg_g;
    CUdeviceptr dx, dres, dmsg, dout;
    size_t cap;
} bufs_t;

static int first_diff(const void *a, const void *b, size_t bytes, size_t *at)
{
    const uint8_t *p = a, *q = b;
    for (size_t i = 0; i < bytes; ++i) {
        if (p[i] != q[i]) {
            *at = i;
            return 1;
        }
    }
    return 0;
}

#define CU(call) CHECKF(CUDA_SUCCESS == (call), "%s", #call)

static int same_bytes(const char *what, const void *a, const void *b, size_t bytes,
                      const qtopo_codec_params_t *p, size_t n)
{
    size_t at = 0;
    CHECKF(!first_diff(a, b, bytes, &at), "%s differs at byte %zu of %zu (bits %d, block %d, "
           "rounding %d, n %zu)", what, at, bytes, p->bits, p->block, p->rounding, n);
    return 0;
}

static int check_encode(bufs_t *b, size_t n, const qtopo_codec_params_t *p,
                        const qtopo_codec_key_t *key)
{
    size_t size_c = 0, size_g = 0;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(b->x, n, p, key, b->msg_c, b->cap, &size_c));
    CU(cuMemcpyHtoD(b->dx, b->x, n * sizeof(float)));
    CHECK(QTOPO_CODEC_OK == qtopo_cuda_encode((const float *) (uintptr_t) b->dx, n, p, key,
                                              (void *) (uintptr_t) b->dmsg, b->cap, &size_g));
    CHECKF(size_c == size_g, "encode size %zu on the CPU, %zu on the GPU", size_c, size_g);
    CU(cuMemcpyDtoH(b->msg_g, b->dmsg, size_g));
    return same_bytes("encode", b->msg_c, b->msg_g, size_c, p, n);
}

/* decode (add 0) or decode_add (add 1) of the CPU's message on both sides. */
static int check_decode(bufs_t *b, size_t n, const qtopo_codec_params_t *p,
                        const qtopo_codec_key_t *key, int add)
{
    size_t size = 0;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(b->x, n, p, key, b->msg_c, b->cap, &size));
    for (size_t i = 0; i < n; ++i) {
        b->out_c[i] = add ? (float) (i % 97) * 0.25f - 3.0f : 0.0f;
    }
    CU(cuMemcpyHtoD(b->dmsg, b->msg_c, size));
    CU(cuMemcpyHtoD(b->dout, b->out_c, n * sizeof(float)));
    CHECK(QTOPO_CODEC_OK == (add ? qtopo_codec_decode_add(b->msg_c, size, n, p, b->out_c)
                                 : qtopo_codec_decode(b->msg_c, size, n, p, b->out_c)));
    CHECK(QTOPO_CODEC_OK
          == (add ? qtopo_cuda_decode_add((void *) (uintptr_t) b->dmsg, size, n, p,
                                          (float *) (uintptr_t) b->dout)
                  : qtopo_cuda_decode((void *) (uintptr_t) b->dmsg, size, n, p,
                                      (float *) (uintptr_t) b->dout)));
    CU(cuMemcpyDtoH(b->out_g, b->dout, n * sizeof(float)));
    return same_bytes(add ? "decode_add" : "decode", b->out_c, b->out_g, n * sizeof(float), p, n);
}

static int check_ef(bufs_t *b, size_t n, const qtopo_codec_params_t *p, qtopo_codec_key_t key)
{
    size_t cap = qtopo_codec_max_size(n, p);
    memset(b->res_c, 0, n * sizeof(float));
    CU(cuMemsetD8(b->dres, 0, n * sizeof(float)));
    CU(cuMemcpyHtoD(b->dx, b->x, n * sizeof(float)));
    for (int step = 0; step < 2; ++step) {
        size_t size_c = 0, size_g = 0;
        key.call += 1;
        CHECK(QTOPO_CODEC_OK
              == qtopo_codec_encode_ef(b->x, b->res_c, n, p, &key, b->msg_c, cap, &size_c));
        CHECK(QTOPO_CODEC_OK
              == qtopo_cuda_encode_ef((const float *) (uintptr_t) b->dx,
                                      (float *) (uintptr_t) b->dres, n, p, &key,
                                      (void *) (uintptr_t) b->dmsg, cap, &size_g));
        CHECKF(size_c == size_g, "encode_ef size %zu on the CPU, %zu on the GPU", size_c,
               size_g);
        CU(cuMemcpyDtoH(b->msg_g, b->dmsg, size_g));
        CU(cuMemcpyDtoH(b->out_g, b->dres, n * sizeof(float)));
        CHECK(0 == same_bytes("encode_ef message", b->msg_c, b->msg_g, size_c, p, n));
        CHECK(0 == same_bytes("encode_ef residual", b->res_c, b->out_g, n * sizeof(float), p, n));
    }
    return 0;
}

/* A header the encoder cannot write (a negative scale, or a bad bfloat16 flag): both
 * sides reject it and leave the output as it was. */
static int check_reject(bufs_t *b, size_t n, const qtopo_codec_params_t *p,
                        const qtopo_codec_key_t *key)
{
    size_t size = 0;
    uint32_t bad = 16 == p->bits ? 7u : 0xbf800000u; /* flag 7 / scale -1.0 */
    int rc_c, rc_g;
    CHECK(QTOPO_CODEC_OK == qtopo_codec_encode(b->x, n, p, key, b->msg_c, b->cap, &size));
    memcpy(b->msg_c, &bad, sizeof(bad));
    for (size_t i = 0; i < n; ++i) {
        b->out_c[i] = 1.5f;
    }
    CU(cuMemcpyHtoD(b->dmsg, b->msg_c, size));
    CU(cuMemcpyHtoD(b->dout, b->out_c, n * sizeof(float)));
    rc_c = qtopo_codec_decode(b->msg_c, size, n, p, b->out_c);
    rc_g = qtopo_cuda_decode((void *) (uintptr_t) b->dmsg, size, n, p,
                             (float *) (uintptr_t) b->dout);
    CHECKF(QTOPO_CODEC_ERR_CORRUPT == rc_c && rc_c == rc_g, "CPU %d, GPU %d", rc_c, rc_g);
    CU(cuMemcpyDtoH(b->out_g, b->dout, n * sizeof(float)));
    return same_bytes("rejected decode output", b->out_c, b->out_g, n * sizeof(float), p, n);
}

/* Every check for one (bits, rounding); prints one line. ncounts: how many of counts[]. */
static int check_width(bufs_t *b, int bits, int rounding, size_t ncounts)
{
    int cases = 0, failed = 0, blocks[2] = {256, 32};
    for (int bi = 0; bi < 2; ++bi) {
        for (size_t ci = 0; ci < ncounts; ++ci) {
            for (int kind = 0; kind < 2; ++kind) {
                qtopo_codec_params_t p = {bits, blocks[bi], rounding};
                qtopo_codec_key_t key = {77 + (uint64_t) kind, 3, 2, (uint64_t) 5 << 30};
                size_t n = counts[ci];
                fill_data(b->x, n, kind, 31 + ci);
                failed += 0 != check_encode(b, n, &p, &key);
                failed += 0 != check_decode(b, n, &p, &key, 0);
                failed += 0 != check_decode(b, n, &p, &key, 1);
                failed += 0 != check_ef(b, n, &p, key);
                failed += 0 != check_reject(b, n, &p, &key);
                cases += 5;
            }
        }
    }
    printf("bits %2d %-10s %4d checks, %d differ\n", bits, rounding ? "stochastic" : "nearest",
           cases, failed);
    return failed;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* Median seconds of 10 runs of one operation (0 memcpy, 1 encode, 2 decode_add). */
static double time_op(int op, CUdeviceptr dx, CUdeviceptr dy, CUdeviceptr dmsg, size_t n,
                      size_t cap, size_t *size_p)
{
    qtopo_codec_params_t p = {8, QTOPO_CODEC_DEFAULT_BLOCK, QTOPO_ROUND_NEAREST};
    double t[10];
    for (int r = -1; r < 10; ++r) { /* r = -1: warm-up */
        double t0 = now();
        int rc = QTOPO_CODEC_OK;
        if (0 == op) {
            rc = CUDA_SUCCESS == cuMemcpyDtoD(dy, dx, n * sizeof(float))
                 && CUDA_SUCCESS == cuCtxSynchronize() ? QTOPO_CODEC_OK : QTOPO_CUDA_ERR;
        } else if (1 == op) {
            rc = qtopo_cuda_encode((const float *) (uintptr_t) dx, n, &p, NULL,
                                   (void *) (uintptr_t) dmsg, cap, size_p);
        } else {
            rc = qtopo_cuda_decode_add((const void *) (uintptr_t) dmsg, *size_p, n, &p,
                                       (float *) (uintptr_t) dy);
        }
        if (QTOPO_CODEC_OK != rc) {
            return -1.0;
        }
        if (0 <= r) {
            t[r] = now() - t0;
        }
    }
    qsort(t, 10, sizeof(t[0]), cmp_double);
    return 0.5 * (t[4] + t[5]);
}

/* n floats (64 Mi on a GPU; on the fake driver a small n: only the code path is run) */
static int bench(size_t n)
{
    size_t size = 0, cap;
    qtopo_codec_params_t p = {8, QTOPO_CODEC_DEFAULT_BLOCK, QTOPO_ROUND_NEAREST};
    CUdeviceptr dx, dy, dmsg;
    double tc, te, ta;
    float *x = malloc(n * sizeof(float));
    cap = qtopo_codec_max_size(n, &p);
    CHECK(NULL != x);
    fill_data(x, n, 0, 5);
    CU(cuMemAlloc(&dx, n * sizeof(float)));
    CU(cuMemAlloc(&dy, n * sizeof(float)));
    CU(cuMemAlloc(&dmsg, cap));
    CU(cuMemcpyHtoD(dx, x, n * sizeof(float)));
    CU(cuMemsetD8(dy, 0, n * sizeof(float)));
    tc = time_op(0, dx, dy, dmsg, n, cap, &size);
    te = time_op(1, dx, dy, dmsg, n, cap, &size);
    ta = time_op(2, dx, dy, dmsg, n, cap, &size);
    CHECK(0.0 < tc && 0.0 < te && 0.0 < ta);
    printf("throughput, 8-bit, block %d, %zu KiB of fp32 (medians of 10)%s:\n",
           QTOPO_CODEC_DEFAULT_BLOCK, n * sizeof(float) >> 10,
           NULL != getenv("QTOPO_GPU_EMULATED") ? ", EMULATED on a CPU: not GPU figures" : "");
    printf("  cuMemcpyDtoD   %8.3f ms  %7.1f GB/s of fp32\n", 1e3 * tc, 1e-9 * n * 4 / tc);
    printf("  encode         %8.3f ms  %7.1f GB/s of fp32  ratio to memcpy %.2f (goal >= 0.5)\n",
           1e3 * te, 1e-9 * n * 4 / te, tc / te);
    printf("  decode_add     %8.3f ms  %7.1f GB/s of fp32  ratio to memcpy %.2f (goal >= 0.5)\n",
           1e3 * ta, 1e-9 * n * 4 / ta, tc / ta);
    cuMemFree(dx);
    cuMemFree(dy);
    cuMemFree(dmsg);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    const char *why = NULL, *emulated = getenv("QTOPO_GPU_EMULATED");
    /* on the fake driver of test/gpu/emu (a CPU), the two largest counts take too long */
    size_t ncounts = sizeof(counts) / sizeof(counts[0]) - (NULL != emulated ? 2 : 0);
    qtopo_codec_params_t p16 = {16, 32, 0};
    CUcontext ctx;
    bufs_t b;
    int failed = 0;
    if (!qtopo_cuda_kernels_built()) {
        printf("SKIP: this build has no CUDA kernels (configure found no nvcc)\n");
        return 77;
    }
    if (!qtopo_cuda_available(&why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    if (CUDA_SUCCESS != cuInit(0) || CUDA_SUCCESS != cuDevicePrimaryCtxRetain(&ctx, 0)
        || CUDA_SUCCESS != cuCtxSetCurrent(ctx)) {
        printf("SKIP: no CUDA context on device 0\n");
        return 77;
    }
    memset(&b, 0, sizeof(b));
    b.cap = qtopo_codec_max_size(NMAX, &p16); /* the largest of all widths and blocks */
    b.x = malloc(NMAX * sizeof(float));
    b.res_c = malloc(NMAX * sizeof(float));
    b.out_c = malloc(NMAX * sizeof(float));
    b.out_g = malloc(NMAX * sizeof(float));
    b.msg_c = malloc(b.cap);
    b.msg_g = malloc(b.cap);
    CHECK(NULL != b.x && NULL != b.res_c && NULL != b.out_c && NULL != b.out_g
          && NULL != b.msg_c && NULL != b.msg_g);
    CU(cuMemAlloc(&b.dx, NMAX * sizeof(float)));
    CU(cuMemAlloc(&b.dres, NMAX * sizeof(float)));
    CU(cuMemAlloc(&b.dout, NMAX * sizeof(float)));
    CU(cuMemAlloc(&b.dmsg, b.cap));
    CHECK(qtopo_cuda_is_device((void *) (uintptr_t) b.dx) && !qtopo_cuda_is_device(b.x));
    for (int w = 0; w < 5; ++w) {
        for (int r = 0; r < 2; ++r) {
            failed += check_width(&b, widths[w], r, ncounts);
        }
    }
    printf("bit identity: %s\n", 0 == failed ? "all identical" : "DIFFERENCES");
    if (0 == failed && (1 >= argc || 0 != strcmp(argv[1], "--no-bench"))) {
        failed += bench(NULL != emulated ? (size_t) 1 << 16 : (size_t) 64 << 20);
    }
    return 0 == failed ? 0 : 1;
}
