/*
 * A fake CUDA driver (libcuda.so.1) for machines without a GPU: "device memory" is host
 * memory the fake allocated (cuPointerGetAttribute calls it device memory), copies are
 * memcpy, and cuLaunchKernel runs qtopo's kernels, compiled from
 * coll_qtopo_codec_cuda.cu as host code (cuda_emu.h), one coroutine per GPU thread.
 * With it on LD_LIBRARY_PATH, the unchanged component and GPU tests run their device
 * paths on a CPU (test/gpu/test_emulated.sh): the wrapper, the kernels' logic and the
 * staging of device buffers in MPI_Allreduce. Only the entry points qtopo and its
 * tests use exist; anything else fails to resolve, loudly.
 */

#include "cuda_emu.h"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "coll_qtopo_codec_cuda.cu"

emu_dim3 threadIdx, blockIdx, blockDim;
emu_block *emu_cur;

typedef unsigned long long devptr_t;
typedef void (*kernel_t)(qtopo_cuda_job_t);

#define EMU_STACK (64 * 1024)

static std::mutex lock;
static std::map<uintptr_t, size_t> allocations; /* start -> bytes */

static const struct {
    const char *name;
    kernel_t fn;
} kernels[] = {
    {"qtopo_k_encode", qtopo_k_encode},     {"qtopo_k_scan", qtopo_k_scan},
    {"qtopo_k_appendix", qtopo_k_appendix}, {"qtopo_k_validate", qtopo_k_validate},
    {"qtopo_k_decode", qtopo_k_decode},
};

static bool is_fake_device(uintptr_t p)
{
    std::lock_guard<std::mutex> g(lock);
    auto it = allocations.upper_bound(p);
    if (allocations.begin() == it) {
        return false;
    }
    --it;
    return p < it->first + it->second;
}

/* The block being run: one coroutine per thread, switched to in turn. */
static struct {
    ucontext_t sched;
    ucontext_t *ctx;
    bool *finished;
    unsigned cur;
    kernel_t fn;
    qtopo_cuda_job_t job;
} run;

void emu_yield(void)
{
    swapcontext(&run.ctx[run.cur], &run.sched);
}

static void thread_entry(void)
{
    run.fn(run.job);
    run.finished[run.cur] = true;
}

static void run_block(unsigned threads, char *stacks)
{
    volatile unsigned left = threads; /* lives across the coroutine switches */
    for (unsigned t = 0; t < threads; ++t) {
        getcontext(&run.ctx[t]);
        run.ctx[t].uc_stack.ss_sp = stacks + (size_t) t * EMU_STACK;
        run.ctx[t].uc_stack.ss_size = EMU_STACK;
        run.ctx[t].uc_link = &run.sched;
        makecontext(&run.ctx[t], thread_entry, 0);
        run.finished[t] = false;
    }
    while (0 < left) {
        for (unsigned t = 0; t < threads; ++t) {
            if (run.finished[t]) {
                continue;
            }
            run.cur = t;
            threadIdx = {t, 0, 0};
            swapcontext(&run.sched, &run.ctx[t]);
            left -= run.finished[t] ? 1 : 0;
        }
    }
}

extern "C" {

int cuInit(unsigned) { return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDevicePrimaryCtxRetain(void **ctx, int) { *ctx = (void *) 1; return 0; }
int cuCtxSetCurrent(void *) { return 0; }
int cuCtxPushCurrent_v2(void *) { return 0; }
int cuCtxPopCurrent_v2(void **ctx) { *ctx = (void *) 1; return 0; }
int cuCtxSynchronize(void) { return 0; }

int cuMemAlloc_v2(devptr_t *p, size_t bytes)
{
    void *m = malloc(0 == bytes ? 1 : bytes);
    if (NULL == m) {
        return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
    }
    std::lock_guard<std::mutex> g(lock);
    allocations[(uintptr_t) m] = 0 == bytes ? 1 : bytes;
    *p = (devptr_t) (uintptr_t) m;
    return 0;
}

int cuMemFree_v2(devptr_t p)
{
    std::lock_guard<std::mutex> g(lock);
    if (0 == allocations.erase((uintptr_t) p)) {
        return 1;
    }
    free((void *) (uintptr_t) p);
    return 0;
}

int cuPointerGetAttribute(void *data, int attr, devptr_t p)
{
    if (!is_fake_device((uintptr_t) p)) {
        return 1; /* CUDA_ERROR_INVALID_VALUE: not memory the driver knows */
    }
    switch (attr) {
    case 1: /* context */
        *(void **) data = (void *) 1;
        return 0;
    case 2: /* memory type: device */
        *(unsigned *) data = 2;
        return 0;
    case 8: /* managed */
    case 9: /* device ordinal */
        *(int *) data = 0;
        return 0;
    default:
        return 1;
    }
}

/* every copy direction is memcpy: fake device memory is host memory */
static int fake_copy(uintptr_t d, uintptr_t s, size_t n)
{
    memcpy((void *) d, (const void *) s, n);
    return 0;
}

int cuMemcpy(devptr_t d, devptr_t s, size_t n) { return fake_copy(d, s, n); }
int cuMemcpyDtoH_v2(void *d, devptr_t s, size_t n) { return fake_copy((uintptr_t) d, s, n); }
int cuMemcpyHtoD_v2(devptr_t d, const void *s, size_t n) { return fake_copy(d, (uintptr_t) s, n); }
int cuMemcpyDtoD_v2(devptr_t d, devptr_t s, size_t n) { return fake_copy(d, s, n); }
int cuMemsetD8_v2(devptr_t d, unsigned char v, size_t n) { memset((void *) d, v, n); return 0; }

int cuModuleLoadData(void **mod, const void *) { *mod = (void *) 1; return 0; }

int cuModuleGetFunction(void **f, void *, const char *name)
{
    for (auto &k : kernels) {
        if (0 == strcmp(k.name, name)) {
            *f = (void *) k.fn;
            return 0;
        }
    }
    return 500; /* CUDA_ERROR_NOT_FOUND */
}

int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned, void *, void **params, void **)
{
    emu_block block;
    char *stacks = (char *) malloc((size_t) bx * EMU_STACK);
    if (1 != gy || 1 != gz || 1 != by || 1 != bz || 0 != bx % 32 || 1024 < bx
        || NULL == stacks) {
        fprintf(stderr, "fake libcuda: launch shape not supported\n");
        abort();
    }
    run.ctx = new ucontext_t[bx];
    run.finished = new bool[bx];
    run.fn = (kernel_t) f;
    run.job = *(qtopo_cuda_job_t *) params[0];
    emu_cur = &block;
    blockDim = {bx, 1, 1};
    for (unsigned b = 0; b < gx; ++b) {
        blockIdx = {b, 0, 0};
        run_block(bx, stacks);
    }
    delete[] run.ctx;
    delete[] run.finished;
    free(stacks);
    return 0;
}

} /* extern "C" */
