/*
 * coll/qtopo under MPI_THREAD_MULTIPLE, as mpi4py and Horovod run it: several threads,
 * each with its own duplicate of MPI_COMM_WORLD, call MPI_Allreduce at the same time.
 *
 *   test_threads [THREADS]
 *
 * Each thread makes 12 calls of 300001 floats of small integers (exact sums in fp32):
 * lossless results must be exact, quantized ones (8 bits or more) within a loose bound of
 * the exact sum (twice the codec's: this tests concurrency, not accuracy), and every rank
 * must hold the same bits (compared through a checksum allreduce). qtopo's calls_handled
 * counter must grow by THREADS x 12. Prints "N passed, M failed".
 */

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpit.h"

#define CALLS 12
#define COUNT 300001

typedef struct worker {
    pthread_t tid;
    MPI_Comm comm;
    int id, bits, bad_exact, bad_ident;
} worker_t;

static float value(int rank, int id, int call, size_t i)
{
    return (float) ((int) ((i * 2654435761u + (size_t) (rank * 31 + id * 7 + call)) % 17) - 8);
}

static uint64_t checksum(const float *x, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    uint32_t u;

    for (size_t i = 0; i < n; ++i) {
        memcpy(&u, &x[i], sizeof(u));
        h = (h ^ u) * 1099511628211ULL;
    }
    return h;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    float *buf = malloc(COUNT * sizeof(float));
    int rank, size, call;

    MPI_Comm_rank(w->comm, &rank);
    MPI_Comm_size(w->comm, &size);
    for (call = 0; call < CALLS; ++call) {
        uint64_t mine, lo, hi;
        for (size_t i = 0; i < COUNT; ++i) {
            buf[i] = value(rank, w->id, call, i);
        }
        MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, w->comm);
        for (size_t i = 0; i < COUNT; ++i) {
            double exact = 0.0;
            for (int r = 0; r < size; ++r) {
                exact += value(r, w->id, call, i);
            }
            /* quantized: a loose bound, twice the codec's for ranges of 16 per rank */
            double bound = 32 == w->bits ? 0.0 : 2.0 * 16.0 * size / 255.0;
            w->bad_exact += fabs(buf[i] - exact) > bound;
        }
        mine = checksum(buf, COUNT);
        MPI_Allreduce(&mine, &lo, 1, MPI_UINT64_T, MPI_MIN, w->comm);
        MPI_Allreduce(&mine, &hi, 1, MPI_UINT64_T, MPI_MAX, w->comm);
        w->bad_ident += lo != hi;
    }
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    int provided, nthreads = argc > 1 ? atoi(argv[1]) : 3, i, bits, rc;
    worker_t *w;
    unsigned long h0;

    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    mpit_open();
    mpit_cvar_read("bits", &bits);
    CHECK(MPI_THREAD_MULTIPLE == provided, "MPI_THREAD_MULTIPLE not provided (%d)", provided);
    w = calloc((size_t) nthreads, sizeof(*w));
    for (i = 0; i < nthreads; ++i) {
        w[i].id = i;
        w[i].bits = bits;
        MPI_Comm_dup(MPI_COMM_WORLD, &w[i].comm);
    }
    h0 = mpit_counter("calls_handled");
    for (i = 0; i < nthreads; ++i) {
        pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
    }
    for (i = 0; i < nthreads; ++i) {
        pthread_join(w[i].tid, NULL);
        CHECK(0 == w[i].bad_exact, "thread %d: %d values off the exact sum", i, w[i].bad_exact);
        CHECK(0 == w[i].bad_ident, "thread %d: ranks disagreed on %d calls", i, w[i].bad_ident);
        MPI_Comm_free(&w[i].comm);
    }
    CHECK(mpit_counter("calls_handled") - h0 == (unsigned long) (nthreads * CALLS),
          "qtopo handled %lu calls, expected %d", mpit_counter("calls_handled") - h0,
          nthreads * CALLS);
    free(w);
    rc = mpit_summary("test_threads");
    MPI_Finalize();
    return rc;
}
