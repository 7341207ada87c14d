/*
 * qtopo's GPU side, host part (see coll_qtopo_cuda.h).
 *
 * Why the driver API through dlopen, and kernels from an embedded fatbin: the
 * component must load on every node, with or without GPU and driver, so it links
 * no CUDA library (libcudart would also tie it to one toolkit version and a
 * static cudart would bring its own module registration at load time).  The
 * driver library, libcuda.so.1, is loaded at first use with dlopen, its entry
 * points taken with dlsym; the kernels, compiled by nvcc --fatbin (SASS for the
 * listed GPUs plus PTX the driver can JIT for newer ones), are embedded as a byte
 * array (made with od at build time), loaded per CUDA context with
 * cuModuleLoadData and launched with cuLaunchKernel.  Without the driver, every
 * buffer is host memory to qtopo.
 *
 * The few driver types and constants used are declared here (values from CUDA's
 * cuda.h, stable ABI), so this file compiles without the toolkit; builds with
 * CUDA check them against cuda.h in test/gpu/test_cuda_kernels.c.
 */

#include "coll_qtopo_cuda.h"
#include "coll_qtopo_cuda_job.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

typedef int cu_result_t;                 /* CUresult; 0 is CUDA_SUCCESS */
typedef unsigned long long cu_devptr_t;  /* CUdeviceptr */
typedef void *cu_handle_t;               /* CUcontext, CUmodule, CUfunction, CUstream */

#define CU_PTR_CONTEXT     1 /* CU_POINTER_ATTRIBUTE_CONTEXT */
#define CU_PTR_MEMORY_TYPE 2 /* CU_POINTER_ATTRIBUTE_MEMORY_TYPE */
#define CU_PTR_IS_MANAGED  8 /* CU_POINTER_ATTRIBUTE_IS_MANAGED */
#define CU_PTR_DEVICE      9 /* CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL */
#define CU_MEM_DEVICE      2 /* CU_MEMORYTYPE_DEVICE */

#define MAX_CONTEXTS 16

/* Driver entry points (the _v2 names are what cuda.h maps the plain ones to). */
typedef struct cu_api {
    cu_result_t (*init)(unsigned);
    cu_result_t (*device_count)(int *);
    cu_result_t (*ptr_attr)(void *, int, cu_devptr_t);
    cu_result_t (*primary_retain)(cu_handle_t *, int);
    cu_result_t (*ctx_push)(cu_handle_t);
    cu_result_t (*ctx_pop)(cu_handle_t *);
    cu_result_t (*ctx_sync)(void);
    cu_result_t (*memcpy)(cu_devptr_t, cu_devptr_t, size_t);
    cu_result_t (*memcpy_dtoh)(void *, cu_devptr_t, size_t);
    cu_result_t (*mem_alloc)(cu_devptr_t *, size_t);
    cu_result_t (*mem_free)(cu_devptr_t);
    cu_result_t (*memset8)(cu_devptr_t, unsigned char, size_t);
    cu_result_t (*module_load)(cu_handle_t *, const void *);
    cu_result_t (*module_fn)(cu_handle_t *, cu_handle_t, const char *);
    cu_result_t (*launch)(cu_handle_t, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                          unsigned, cu_handle_t, void **, void **);
} cu_api_t;

static cu_api_t cu;

static const struct {
    const char *name;
    size_t offset;
} cu_syms[] = {
    {"cuInit", offsetof(cu_api_t, init)},
    {"cuDeviceGetCount", offsetof(cu_api_t, device_count)},
    {"cuPointerGetAttribute", offsetof(cu_api_t, ptr_attr)},
    {"cuDevicePrimaryCtxRetain", offsetof(cu_api_t, primary_retain)},
    {"cuCtxPushCurrent_v2", offsetof(cu_api_t, ctx_push)},
    {"cuCtxPopCurrent_v2", offsetof(cu_api_t, ctx_pop)},
    {"cuCtxSynchronize", offsetof(cu_api_t, ctx_sync)},
    {"cuMemcpy", offsetof(cu_api_t, memcpy)},
    {"cuMemcpyDtoH_v2", offsetof(cu_api_t, memcpy_dtoh)},
    {"cuMemAlloc_v2", offsetof(cu_api_t, mem_alloc)},
    {"cuMemFree_v2", offsetof(cu_api_t, mem_free)},
    {"cuMemsetD8_v2", offsetof(cu_api_t, memset8)},
    {"cuModuleLoadData", offsetof(cu_api_t, module_load)},
    {"cuModuleGetFunction", offsetof(cu_api_t, module_fn)},
    {"cuLaunchKernel", offsetof(cu_api_t, launch)},
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int driver_ok = 0;
static const char *driver_why = "not loaded yet";

/* The kernels of coll_qtopo_codec_cuda.cu, by name. */
enum { K_ENCODE, K_SCAN, K_APPENDIX, K_VALIDATE, K_DECODE, K_COUNT };

/* The kernels loaded in one context, and that context's scratch memory (raw flags, raw
 * offsets, counters), kept between calls: cuMemAlloc and cuMemFree per call would cost
 * about as much as the kernels on large buffers (cuMemFree also synchronizes). One call
 * at a time uses it (lock). */
typedef struct loaded {
    cu_handle_t ctx;
    cu_handle_t fn[K_COUNT];
    pthread_mutex_t lock;
    cu_devptr_t scratch;
    size_t scratch_size;
} loaded_t;

#if QTOPO_HAVE_CUDA
extern const unsigned char qtopo_cuda_fatbin[]; /* coll_qtopo_cuda_fatbin.c, made at build time */

static const char *const kernel_names[K_COUNT] = {
    "qtopo_k_encode", "qtopo_k_scan", "qtopo_k_appendix", "qtopo_k_validate", "qtopo_k_decode"
};
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_t modules[MAX_CONTEXTS];
static int nmodules = 0;
#endif

int qtopo_cuda_kernels_built(void)
{
#if QTOPO_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

static void load_driver(void)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    int count = 0;
    if (NULL == lib) {
        driver_why = "the CUDA driver library libcuda.so.1 is not installed";
        return;
    }
    for (size_t i = 0; i < sizeof(cu_syms) / sizeof(cu_syms[0]); ++i) {
        void *f = dlsym(lib, cu_syms[i].name);
        if (NULL == f) {
            driver_why = "libcuda.so.1 lacks a driver API function qtopo needs (driver too old)";
            return; /* the library stays loaded: other users may share it */
        }
        memcpy((char *) &cu + cu_syms[i].offset, &f, sizeof(f));
    }
    if (0 != cu.init(0)) {
        driver_why = "cuInit failed (no usable GPU or driver)";
        return;
    }
    if (0 != cu.device_count(&count) || 0 >= count) {
        driver_why = "the CUDA driver sees no device";
        return;
    }
    driver_ok = 1;
    driver_why = NULL;
}

int qtopo_cuda_available(const char **why_p)
{
    (void) pthread_once(&load_once, load_driver);
    if (NULL != why_p) {
        *why_p = driver_why;
    }
    return driver_ok;
}

int qtopo_cuda_is_device(const void *p)
{
    unsigned type = 0;
    int managed = 0;
    if (NULL == p || !qtopo_cuda_available(NULL)) {
        return 0;
    }
    /* an address the driver does not know (plain host memory) is an error here */
    if (0 != cu.ptr_attr(&type, CU_PTR_MEMORY_TYPE, (cu_devptr_t) (uintptr_t) p)
        || CU_MEM_DEVICE != type) {
        return 0;
    }
    if (0 == cu.ptr_attr(&managed, CU_PTR_IS_MANAGED, (cu_devptr_t) (uintptr_t) p) && managed) {
        return 0;
    }
    return 1;
}

/* The context device memory p was allocated in (the device's primary context for
 * allocations without one), made current; NULL if p is not device memory. */
static cu_handle_t enter_context(const void *p)
{
    cu_handle_t ctx = NULL;
    int dev = -1;
    if (!qtopo_cuda_is_device(p)) {
        return NULL;
    }
    if (0 != cu.ptr_attr(&ctx, CU_PTR_CONTEXT, (cu_devptr_t) (uintptr_t) p) || NULL == ctx) {
        ctx = NULL;
        if (0 != cu.ptr_attr(&dev, CU_PTR_DEVICE, (cu_devptr_t) (uintptr_t) p)
            || 0 != cu.primary_retain(&ctx, dev)) {
            return NULL;
        }
    }
    return 0 == cu.ctx_push(ctx) ? ctx : NULL;
}

static void leave_context(void)
{
    cu_handle_t ctx;
    (void) cu.ctx_pop(&ctx);
}

int qtopo_cuda_copy(void *dst, const void *src, size_t bytes)
{
    cu_handle_t ctx;
    int rc;
    if (0 == bytes) {
        return QTOPO_CODEC_OK;
    }
    ctx = enter_context(src);
    ctx = NULL != ctx ? ctx : enter_context(dst);
    if (NULL == ctx) {
        return QTOPO_CODEC_ERR_ARG; /* neither buffer is device memory */
    }
    rc = cu.memcpy((cu_devptr_t) (uintptr_t) dst, (cu_devptr_t) (uintptr_t) src, bytes);
    leave_context();
    return 0 == rc ? QTOPO_CODEC_OK : QTOPO_CUDA_ERR;
}

/* The kernels in the current context ctx (loaded on first use); NULL on failure. */
static loaded_t *kernels_in(cu_handle_t ctx)
{
#if QTOPO_HAVE_CUDA
    loaded_t *found = NULL;
    pthread_mutex_lock(&modules_lock);
    for (int i = 0; i < nmodules && NULL == found; ++i) {
        found = modules[i].ctx == ctx ? &modules[i] : NULL;
    }
    if (NULL == found && MAX_CONTEXTS > nmodules) {
        loaded_t *l = &modules[nmodules];
        cu_handle_t mod = NULL;
        int ok = 0 == cu.module_load(&mod, qtopo_cuda_fatbin);
        for (int k = 0; ok && k < K_COUNT; ++k) {
            ok = 0 == cu.module_fn(&l->fn[k], mod, kernel_names[k]);
        }
        if (ok) {
            l->ctx = ctx;
            l->scratch = 0;
            l->scratch_size = 0;
            pthread_mutex_init(&l->lock, NULL);
            found = l;
            nmodules++;
        }
    }
    pthread_mutex_unlock(&modules_lock);
    return found;
#else
    (void) ctx;
    return NULL;
#endif
}

/* One call: its context's kernels and scratch (held), and the kernels' argument. */
typedef struct run {
    loaded_t *k;
    qtopo_cuda_job_t job;
} run_t;

static int launch(run_t *r, int kernel, size_t blocks, unsigned threads)
{
    void *args[1] = {&r->job};
    if (0 == blocks) {
        return QTOPO_CODEC_OK;
    }
    return 0 == cu.launch(r->k->fn[kernel], (unsigned) blocks, 1, 1, threads, 1, 1, 0, NULL, args,
                          NULL) ? QTOPO_CODEC_OK : QTOPO_CUDA_ERR;
}

/* Warp-per-block kernels over the job's blocks. */
static int launch_warps(run_t *r, int kernel)
{
    return launch(r, kernel, (r->job.nblocks + QTOPO_CUDA_WARPS - 1) / QTOPO_CUDA_WARPS,
                  32 * QTOPO_CUDA_WARPS);
}

/* The context's scratch memory grown to `bytes` (k->lock held). */
static int scratch_reserve(loaded_t *k, size_t bytes)
{
    if (k->scratch_size >= bytes) {
        return 0;
    }
    if (0 != k->scratch) {
        (void) cu.mem_free(k->scratch);
        k->scratch = 0;
        k->scratch_size = 0;
    }
    if (0 != cu.mem_alloc(&k->scratch, bytes)) {
        k->scratch = 0;
        return -1;
    }
    k->scratch_size = bytes;
    return 0;
}

/* Enters the context of `dev_ptr`, finds the kernels and takes the context's scratch
 * (all undone on failure; run_end undoes them after success). */
static int run_begin(run_t *r, const void *dev_ptr, size_t n, const qtopo_codec_params_t *p)
{
    cu_handle_t ctx;
    size_t nblk = (n + (size_t) p->block - 1) / (size_t) p->block;
    memset(r, 0, sizeof(*r));
    if (!qtopo_cuda_kernels_built() || !qtopo_cuda_available(NULL)) {
        return QTOPO_CUDA_ERR;
    }
    ctx = enter_context(dev_ptr);
    if (NULL == ctx) {
        return QTOPO_CODEC_ERR_ARG;
    }
    r->k = kernels_in(ctx);
    if (NULL == r->k) {
        leave_context();
        return QTOPO_CUDA_ERR;
    }
    pthread_mutex_lock(&r->k->lock);
    if (0 != scratch_reserve(r->k, 16 + 12 * nblk) || 0 != cu.memset8(r->k->scratch, 0, 16)) {
        pthread_mutex_unlock(&r->k->lock);
        leave_context();
        return QTOPO_CUDA_ERR;
    }
    r->job.counters = r->k->scratch;
    r->job.rawoff = r->k->scratch + 16;
    r->job.rawflag = r->k->scratch + 16 + 8 * nblk;
    r->job.n = n;
    r->job.nblocks = nblk;
    r->job.fixed = qtopo_codec_fixed_size(n, p);
    r->job.bits = p->bits;
    r->job.block = p->block;
    r->job.stochastic = QTOPO_ROUND_STOCHASTIC == p->rounding;
    return QTOPO_CODEC_OK;
}

/* Waits for the kernels, releases the scratch, leaves the context; rc or a CUDA error. */
static int run_end(run_t *r, int rc)
{
    int sync = cu.ctx_sync();
    pthread_mutex_unlock(&r->k->lock);
    leave_context();
    return QTOPO_CODEC_OK == rc && 0 != sync ? QTOPO_CUDA_ERR : rc;
}

static int read_counters(run_t *r, uint64_t c[2])
{
    return 0 == cu.memcpy_dtoh(c, r->job.counters, 2 * sizeof(uint64_t)) ? QTOPO_CODEC_OK
                                                                         : QTOPO_CUDA_ERR;
}

static int encode_args(const float *src, const float *residual, size_t n,
                       const qtopo_codec_params_t *p, const qtopo_codec_key_t *key,
                       const void *dst, size_t dst_cap, const size_t *size_p)
{
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || NULL == size_p
        || QTOPO_CODEC_MAX_COUNT < n || (0 != n && (NULL == src || NULL == dst))) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (NULL == key && QTOPO_ROUND_STOCHASTIC == p->rounding) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (NULL != residual) {
        return dst_cap < qtopo_codec_max_size(n, p) ? QTOPO_CODEC_ERR_SIZE : QTOPO_CODEC_OK;
    }
    return dst_cap < qtopo_codec_fixed_size(n, p) ? QTOPO_CODEC_ERR_SIZE : QTOPO_CODEC_OK;
}

static int encode_device(const float *src, float *residual, size_t n,
                         const qtopo_codec_params_t *p, const qtopo_codec_key_t *key, void *dst,
                         size_t dst_cap, size_t *size_p)
{
    uint64_t c[2] = {0, 0};
    run_t r;
    int rc = encode_args(src, residual, n, p, key, dst, dst_cap, size_p);
    if (QTOPO_CODEC_OK != rc || 0 == n) {
        *size_p = 0;
        return rc;
    }
    rc = run_begin(&r, src, n, p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    r.job.src = (uint64_t) (uintptr_t) src;
    r.job.dst = (uint64_t) (uintptr_t) dst;
    r.job.residual = (uint64_t) (uintptr_t) residual;
    r.job.key = NULL == key ? 0 : qtopo_elem_call_key(key->seed, key->call, key->rank);
    r.job.index = NULL == key ? 0 : key->elem_offset;
    r.job.sign_header = 1 == p->bits && QTOPO_ROUND_NEAREST == p->rounding && NULL == residual;
    rc = launch_warps(&r, K_ENCODE);
    rc = QTOPO_CODEC_OK == rc ? read_counters(&r, c) : rc;
    if (QTOPO_CODEC_OK == rc && dst_cap - r.job.fixed < 4 * c[0]) {
        rc = QTOPO_CODEC_ERR_SIZE; /* the raw appendix does not fit: dst is garbage */
    }
    if (QTOPO_CODEC_OK == rc && 0 != c[0]) {
        rc = launch(&r, K_SCAN, 1, QTOPO_CUDA_SCAN_THREADS);
        rc = QTOPO_CODEC_OK == rc ? launch_warps(&r, K_APPENDIX) : rc;
    }
    *size_p = r.job.fixed + 4 * c[0];
    return run_end(&r, rc);
}

int qtopo_cuda_encode(const float *src, size_t n, const qtopo_codec_params_t *p,
                      const qtopo_codec_key_t *key, void *dst, size_t dst_cap, size_t *size_p)
{
    return encode_device(src, NULL, n, p, key, dst, dst_cap, size_p);
}

int qtopo_cuda_encode_ef(const float *src, float *residual, size_t n,
                         const qtopo_codec_params_t *p, const qtopo_codec_key_t *key, void *dst,
                         size_t dst_cap, size_t *size_p)
{
    if (0 != n && NULL == residual) {
        return QTOPO_CODEC_ERR_ARG;
    }
    return encode_device(src, residual, n, p, key, dst, dst_cap, size_p);
}

/* Decodes (add = 0) or adds (add = 1) a message; nothing is written unless it is valid
 * (every header is checked on the GPU first, then the exact size). */
static int decode_device(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                         float *out, int add)
{
    uint64_t c[2] = {0, 0};
    run_t r;
    int rc;
    if (QTOPO_CODEC_OK != qtopo_codec_params_check(p) || QTOPO_CODEC_MAX_COUNT < n
        || (0 != n && (NULL == src || NULL == out))) {
        return QTOPO_CODEC_ERR_ARG;
    }
    if (size < qtopo_codec_fixed_size(n, p) || (0 == n && 0 != size)) {
        return QTOPO_CODEC_ERR_SIZE;
    }
    if (0 == n) {
        return QTOPO_CODEC_OK;
    }
    rc = run_begin(&r, src, n, p);
    if (QTOPO_CODEC_OK != rc) {
        return rc;
    }
    r.job.src = (uint64_t) (uintptr_t) src;
    r.job.dst = (uint64_t) (uintptr_t) out;
    r.job.add = add;
    rc = launch(&r, K_VALIDATE, (r.job.nblocks + 255) / 256, 256);
    rc = QTOPO_CODEC_OK == rc ? read_counters(&r, c) : rc;
    if (QTOPO_CODEC_OK == rc && 0 != c[1]) {
        rc = QTOPO_CODEC_ERR_CORRUPT;
    } else if (QTOPO_CODEC_OK == rc && size != r.job.fixed + 4 * c[0]) {
        rc = QTOPO_CODEC_ERR_SIZE;
    }
    if (QTOPO_CODEC_OK == rc && 0 != c[0]) {
        rc = launch(&r, K_SCAN, 1, QTOPO_CUDA_SCAN_THREADS);
    }
    rc = QTOPO_CODEC_OK == rc ? launch_warps(&r, K_DECODE) : rc;
    return run_end(&r, rc);
}

int qtopo_cuda_decode(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                      float *dst)
{
    return decode_device(src, size, n, p, dst, 0);
}

int qtopo_cuda_decode_add(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                          float *acc)
{
    return decode_device(src, size, n, p, acc, 1);
}
