/*
 * coll_qtopo_cuda.c on the host side, runnable everywhere (CI has no GPU): without a
 * loadable CUDA driver qtopo must say why, take every buffer for host memory, and turn
 * down device work with an error instead of touching the buffers; with a driver, host
 * buffers must still be host memory. (The kernels themselves: test/gpu/run.sh.)
 */

#include <stdio.h>
#include <stdlib.h>

#include "coll_qtopo_cuda.h"
#include "qt_check.h"

int qt_checks_passed = 0;
int qt_checks_failed = 0;

int main(void)
{
    const char *why = NULL;
    float host[64] = {0}, *heap = malloc(64 * sizeof(float));
    qtopo_codec_params_t p = {8, 32, QTOPO_ROUND_NEAREST};
    uint8_t msg[1024];
    size_t size = 0;
    int avail = qtopo_cuda_available(&why);
    const char *state = avail ? "available" : why;

    CHECK(NULL != heap, "driver: %s", state);
    printf("CUDA kernels built: %s; driver: %s\n", qtopo_cuda_kernels_built() ? "yes" : "no",
           state);
    CHECK(avail || NULL != why, "driver: %s", state);
    /* loaded once, the same answer */
    CHECK(avail == qtopo_cuda_available(NULL), "driver: %s", state);
    CHECK(!qtopo_cuda_is_device(host), "driver: %s", state);
    CHECK(!qtopo_cuda_is_device(heap), "driver: %s", state);
    CHECK(!qtopo_cuda_is_device(NULL), "driver: %s", state);
    /* host buffers are never handed to the driver as device memory */
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_cuda_copy(heap, host, sizeof(host)), "driver: %s", state);
    CHECK(QTOPO_CODEC_OK == qtopo_cuda_copy(heap, host, 0), "driver: %s", state);
    if (!avail || !qtopo_cuda_kernels_built()) {
        CHECK(QTOPO_CUDA_ERR == qtopo_cuda_encode(host, 64, &p, NULL, msg, sizeof(msg), &size),
              "driver: %s", state);
        CHECK(QTOPO_CUDA_ERR == qtopo_cuda_decode(msg, 80, 64, &p, heap), "driver: %s", state);
    } else {
        CHECK(QTOPO_CODEC_ERR_ARG == qtopo_cuda_encode(host, 64, &p, NULL, msg, sizeof(msg), &size),
              "driver: %s", state);
    }
    /* argument checks come first, as in the CPU codec */
    CHECK(QTOPO_CODEC_ERR_ARG == qtopo_cuda_encode(host, 64, NULL, NULL, msg, 1024, &size),
          "driver: %s", state);
    CHECK(QTOPO_CODEC_ERR_SIZE == qtopo_cuda_decode(msg, 3, 64, &p, heap), "driver: %s", state);
    free(heap);
    return qt_check_summary();
}
