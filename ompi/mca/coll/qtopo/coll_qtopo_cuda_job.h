/*
 * The one argument of qtopo's CUDA codec kernels (coll_qtopo_codec_cuda.cu), filled in
 * by the host wrapper (coll_qtopo_cuda.c) and passed by value through cuLaunchKernel.
 * Device addresses are 64-bit integers so that the C and the nvcc (C++) side agree on
 * the layout without CUDA headers on the C side.
 */

#ifndef MCA_COLL_QTOPO_CUDA_JOB_H
#define MCA_COLL_QTOPO_CUDA_JOB_H

#include <stdint.h>

/* Threads of a kernel block; one warp (32 threads) handles one codec block. */
#define QTOPO_CUDA_WARPS 4
/* Threads of the single block of qtopo_k_scan. */
#define QTOPO_CUDA_SCAN_THREADS 1024

typedef struct qtopo_cuda_job {
    uint64_t src;       /* const float *: encode input / decode message */
    uint64_t dst;       /* encode: message; decode: float output */
    uint64_t residual;  /* float *: error feedback (0: none) */
    uint64_t rawflag;   /* uint32_t per block: 1 raw, 0 quantized */
    uint64_t rawoff;    /* uint64_t per block: first appendix element of a raw block */
    uint64_t counters;  /* uint64_t[2]: raw elements, error flag (decode) */
    uint64_t n;         /* elements */
    uint64_t nblocks;
    uint64_t fixed;     /* bytes of the fixed part of the message */
    uint64_t key;       /* per-call RNG key */
    uint64_t index;     /* logical index of element 0 */
    int32_t bits;
    int32_t block;
    int32_t stochastic;
    int32_t sign_header; /* 1-bit nearest without error feedback: the sign code */
    int32_t add;         /* decode: add into dst */
    int32_t pad;
} qtopo_cuda_job_t;

#endif /* MCA_COLL_QTOPO_CUDA_JOB_H */
