/*
 * Just enough of CUDA's device-side language for g++ to compile qtopo's kernels
 * (coll_qtopo_codec_cuda.cu) as host code: each kernel block runs as blockDim.x
 * coroutines (ucontext) on one thread, taking turns at every barrier, and warps exchange
 * values through shared slots between two barriers, so shuffles and votes behave as on
 * a GPU for code that calls them warp-uniformly (qtopo's does). A barrier is one turn
 * of every thread of the block, which is also what a warp barrier needs.
 * Used by the fake CUDA driver of test/gpu/emu (fake_driver.cpp), never by the
 * component. Floating point is the CPU's, so this checks the kernels' logic (layout,
 * reductions, orders, headers, raw blocks, error feedback), not the GPU's arithmetic.
 */

#ifndef QTOPO_CUDA_EMU_H
#define QTOPO_CUDA_EMU_H


#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __shared__ static

struct emu_dim3 {
    unsigned x, y, z;
};

struct emu_warp {
    uint64_t slot[32];
};

struct emu_block {
    emu_warp warps[32];
};

extern emu_dim3 threadIdx, blockIdx, blockDim;
extern emu_block *emu_cur;

/* Ends this thread's turn (fake_driver.cpp). */
void emu_yield(void);

static inline void __syncthreads()
{
    emu_yield();
}

static inline void __syncwarp(unsigned = 0xffffffffu)
{
    emu_yield();
}

/* Every lane publishes v, then reads lane src's. */
template <class T> static inline T emu_exchange(T v, int src)
{
    emu_warp &w = emu_cur->warps[threadIdx.x / 32];
    uint64_t u = 0;
    T out;
    memcpy(&u, &v, sizeof(v));
    w.slot[threadIdx.x % 32] = u;
    emu_yield();
    u = w.slot[src];
    emu_yield();
    memcpy(&out, &u, sizeof(out));
    return out;
}

template <class T> static inline T __shfl_sync(unsigned, T v, int src)
{
    return emu_exchange(v, src);
}

template <class T> static inline T __shfl_xor_sync(unsigned, T v, int mask)
{
    return emu_exchange(v, (int) (threadIdx.x % 32) ^ mask);
}

/* A vote: every lane publishes p, then all read all 32. */
static inline int emu_vote(int p, int all)
{
    emu_warp &w = emu_cur->warps[threadIdx.x / 32];
    int any = 0, every = 1;
    w.slot[threadIdx.x % 32] = 0 != p;
    emu_yield();
    for (int k = 0; k < 32; ++k) {
        any |= 0 != w.slot[k];
        every &= 0 != w.slot[k];
    }
    emu_yield();
    return all ? every : any;
}

static inline int __any_sync(unsigned, int p)
{
    return emu_vote(p, 0);
}

static inline int __all_sync(unsigned, int p)
{
    return emu_vote(p, 1);
}

static inline unsigned long long atomicAdd(unsigned long long *a, unsigned long long v)
{
    unsigned long long old = *a;
    *a += v;
    return old;
}

static inline unsigned long long atomicExch(unsigned long long *a, unsigned long long v)
{
    unsigned long long old = *a;
    *a = v;
    return old;
}

#endif
