/*
 * MPI_Allreduce on GPU buffers through qtopo (needs a GPU; test/gpu/run.sh runs it on 2
 * and 4 ranks): each rank copies its device buffer to host memory, qtopo runs the host
 * algorithm, the result goes back (coll_qtopo_allreduce.c, memory kind). For lossless,
 * 8-bit nearest and the error-bounded mode (1e-3 absolute), every layout of the buffers
 * (device to device, in place on the device, device input to host output, host input to
 * device output, and rank 0 on the device while the others stay in host memory) must
 * give exactly the bits of the same call on host buffers, be the same on every rank, run
 * in qtopo (calls_handled), and, in the error-bounded mode, stay within the bound.
 * --handed-on (run with coll_qtopo_cuda 0; only on the fake driver of test/gpu/emu,
 * whose "device memory" the previous component can read): every layout's call is handed
 * on by every rank, also by the host-memory ranks of the mixed layout (the memory kind
 * is agreed), and the result is the previous component's, the same on every rank.
 * Exit 77 (SKIP) without a GPU.
 */

#include <cuda.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpit.h"

#define COUNT (((size_t) 1 << 20) + 5)

enum { DEV_DEV, DEV_INPLACE, DEV_HOST, HOST_DEV, MIXED, NLAYOUTS };
static const char *const layout_name[NLAYOUTS] = {
    "device to device", "device in place", "device to host", "host to device",
    "rank 0 device, others host"
};

static int rank, nranks;
static CUdeviceptr dx, dy;

/* Rank r's value i: in [-1, 1), from integers only. */
static float value(int r, size_t i)
{
    uint64_t h = (uint64_t) (r + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t) i * 0xd6e8feb86659fd93ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (float) (int32_t) (h & 0xffffff) * 0x1p-23f - 1.0f;
}

static double gamma_of(int k)
{
    double u = 0x1p-24;
    return k * u / (1 - k * u);
}

/* One call in `layout`; the result lands in y (host). */
static void call(int layout, const float *x, float *y)
{
    size_t bytes = COUNT * sizeof(float);
    int dev = MIXED != layout || 0 == rank;
    if (MIXED == layout && !dev) {
        MPI_Allreduce(x, y, (int) COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        return;
    }
    cuMemcpyHtoD(dx, x, bytes);
    switch (layout) {
    case DEV_INPLACE:
        cuMemcpyHtoD(dy, x, bytes);
        MPI_Allreduce(MPI_IN_PLACE, (void *) (uintptr_t) dy, (int) COUNT, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        break;
    case DEV_HOST:
        MPI_Allreduce((void *) (uintptr_t) dx, y, (int) COUNT, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        return;
    case HOST_DEV:
        MPI_Allreduce(x, (void *) (uintptr_t) dy, (int) COUNT, MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        break;
    default:
        MPI_Allreduce((void *) (uintptr_t) dx, (void *) (uintptr_t) dy, (int) COUNT, MPI_FLOAT,
                      MPI_SUM, MPI_COMM_WORLD);
    }
    cuMemcpyDtoH(y, dy, bytes);
}

/* --handed-on: every layout goes to the previous component on every rank. */
static void check_handed_on(const float *x)
{
    float *y = malloc(COUNT * sizeof(float));
    for (int layout = 0; layout < NLAYOUTS; ++layout) {
        unsigned long h0 = mpit_counter("calls_handled"), f0 = mpit_counter("calls_fallback");
        call(layout, x, y);
        CHECK(mpit_counter("calls_handled") == h0 && mpit_counter("calls_fallback") == f0 + 1,
              "%s: not handed on by this rank", layout_name[layout]);
        CHECK(mpit_same_everywhere(y, COUNT, MPI_COMM_WORLD), "%s: ranks differ",
              layout_name[layout]);
    }
    free(y);
}

/* Every layout against the host call with the current parameters; E > 0: the bound. */
static void check_setting(const char *what, const float *x, double E)
{
    float *ref = malloc(COUNT * sizeof(float)), *y = malloc(COUNT * sizeof(float));
    double g = gamma_of(nranks - 1);
    MPI_Allreduce(x, ref, (int) COUNT, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int layout = 0; layout < NLAYOUTS; ++layout) {
        unsigned long h0 = mpit_counter("calls_handled");
        size_t off = 0, beyond = 0;
        memset(y, 0, COUNT * sizeof(float));
        call(layout, x, y);
        CHECK(mpit_counter("calls_handled") == h0 + 1, "%s, %s: qtopo did not run the call",
              what, layout_name[layout]);
        for (size_t i = 0; i < COUNT; ++i) {
            off += 0 != memcmp(&ref[i], &y[i], sizeof(float));
        }
        CHECK(0 == off, "%s, %s: %zu elements differ from the host call", what,
              layout_name[layout], off);
        CHECK(mpit_same_everywhere(y, COUNT, MPI_COMM_WORLD), "%s, %s: ranks differ", what,
              layout_name[layout]);
        for (size_t i = 0; 0.0 < E && i < COUNT; ++i) {
            double exact = 0.0, mag = 0.0, err;
            for (int r = 0; r < nranks; ++r) {
                exact += value(r, i);
                mag += fabs(value(r, i));
            }
            err = fabs((double) y[i] - exact);
            /* the guarantee of test/mpi/test_ebound.c, for the flat layout and for all
             * ranks on one node (g covers the exact fp32 sums of either) */
            beyond += !(err <= fmax(E, E / 2 + g * (mag + E / 2)) + g * mag);
        }
        CHECK(0 == beyond, "%s, %s: %zu elements beyond the error bound %g", what,
              layout_name[layout], beyond, E);
    }
    free(ref);
    free(y);
}

/* Lossless, 8-bit nearest, error-bounded 1e-3: every layout. */
static void check_settings(const float *x)
{
    int bits = 32, zero = 0;
    double E = 1e-3, none = 0.0;
    mpit_cvar_write("bits", &bits);
    check_setting("lossless", x, 0.0);
    bits = 8;
    mpit_cvar_write("bits", &bits);
    mpit_cvar_write("rounding", &zero);
    check_setting("8-bit nearest", x, 0.0);
    mpit_cvar_write("error_bound", &E);
    check_setting("error bound 1e-3", x, E);
    mpit_cvar_write("error_bound", &none);
}

int main(int argc, char **argv)
{
    int ndev = 0, skip, any_skip, rc;
    CUcontext ctx;
    float *x;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    mpit_rank = rank;
    skip = CUDA_SUCCESS != cuInit(0) || CUDA_SUCCESS != cuDeviceGetCount(&ndev) || 0 >= ndev
           || CUDA_SUCCESS != cuDevicePrimaryCtxRetain(&ctx, rank % ndev)
           || CUDA_SUCCESS != cuCtxSetCurrent(ctx)
           || CUDA_SUCCESS != cuMemAlloc(&dx, COUNT * sizeof(float))
           || CUDA_SUCCESS != cuMemAlloc(&dy, COUNT * sizeof(float));
    MPI_Allreduce(&skip, &any_skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_skip) {
        if (0 == rank) {
            printf("SKIP: a rank has no usable GPU\n");
        }
        MPI_Finalize();
        return 77;
    }
    mpit_open();
    x = malloc(COUNT * sizeof(float));
    for (size_t i = 0; i < COUNT; ++i) {
        x[i] = value(rank, i);
    }
    if (2 == argc && 0 == strcmp(argv[1], "--handed-on")) {
        check_handed_on(x);
    } else {
        check_settings(x);
    }
    free(x);
    cuMemFree(dx);
    cuMemFree(dy);
    rc = mpit_summary(argc > 1 ? argv[1] : "test_gpu_allreduce");
    MPI_Finalize();
    return rc;
}
