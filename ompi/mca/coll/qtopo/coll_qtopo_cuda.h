/*
 * qtopo's GPU side, host part: finds the CUDA driver at run time (dlopen of
 * libcuda.so.1, no link-time CUDA dependency: the component loads on nodes
 * without GPU or driver), classifies buffers (device or host memory), copies
 * between them, and runs the codec kernels of coll_qtopo_codec_cuda.cu on device
 * buffers.  Same message format and results as coll_qtopo_codec.h, bit for bit.
 * Free of Open MPI types.  Thread-safe (driver loading is done once).
 *
 * Device buffers passed to the codec functions must belong to one context (the
 * one the source was allocated in is made current around each call); the calls
 * are synchronous.
 */

#ifndef MCA_COLL_QTOPO_CUDA_H
#define MCA_COLL_QTOPO_CUDA_H

#include <stddef.h>

#include "coll_qtopo_codec.h"

/* A CUDA call failed (in addition to the QTOPO_CODEC_ERR_* codes) */
#define QTOPO_CUDA_ERR (-10)

/* 1 when this build contains the codec kernels (configure found nvcc). */
int qtopo_cuda_kernels_built(void);
/* 1 when the driver loaded and has at least one device; else 0 and, in *why_p (may
 * be NULL), a static string saying why.  The first call loads the driver. */
int qtopo_cuda_available(const char **why_p);
/* 1 when p is device memory of some GPU (managed memory counts as host: the CPU may
 * read it); 0 for host memory, unknown addresses, or when the driver is not there. */
int qtopo_cuda_is_device(const void *p);
/* Copies bytes between any two buffers, host or device (unified addressing). */
int qtopo_cuda_copy(void *dst, const void *src, size_t bytes);

/* As qtopo_codec_encode / encode_ef / decode / decode_add, on device buffers (src,
 * residual, dst, acc); the parameters and the key are host memory. */
int qtopo_cuda_encode(const float *src, size_t n, const qtopo_codec_params_t *p,
                      const qtopo_codec_key_t *key, void *dst, size_t dst_cap, size_t *size_p);
int qtopo_cuda_encode_ef(const float *src, float *residual, size_t n,
                         const qtopo_codec_params_t *p, const qtopo_codec_key_t *key, void *dst,
                         size_t dst_cap, size_t *size_p);
int qtopo_cuda_decode(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                      float *dst);
int qtopo_cuda_decode_add(const void *src, size_t size, size_t n, const qtopo_codec_params_t *p,
                          float *acc);

#endif /* MCA_COLL_QTOPO_CUDA_H */
