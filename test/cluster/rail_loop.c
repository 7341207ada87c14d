/*
 * rail_loop: a loop of in-place float allreduces for the rail-failure tests.
 *
 *   rail_loop COUNT CALLS [exact|-] [PROGRESS_FILE]
 *
 * Call i reduces COUNT floats whose values depend on the rank, i and the index (small
 * multiples of 0.25, so every sum is exact in float). Rank 0 prints one line per call as
 * soon as it ends: its time, a hash of the result, whether every rank holds the same
 * result (hashes compared with a MIN and a MAX allreduce on integers, which qtopo does
 * not take) and, with "exact", whether the result equals the exact sum. The last line is
 * "rail_loop summary: OK" when every call was identical everywhere (and exact). With
 * PROGRESS_FILE, rank 0 also writes the number of calls done into that file after each
 * call (a test waits for it there: mpirun may hold output back).
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float value(int rank, int call, long j)
{
    return 0.25f * (float) ((rank * 7 + call * 3 + j) % 13);
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    size_t i;

    for (i = 0; i < n; ++i) {
        h = (h ^ b[i]) * 1099511628211ULL;
    }
    return h;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 1 << 22, j;
    int calls = argc > 2 ? atoi(argv[2]) : 10, exact = argc > 3 && 0 == strcmp("exact", argv[3]);
    const char *progress = argc > 4 ? argv[4] : NULL;
    int rank, size, i, r, all_ok = 1;
    float *buf;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    buf = malloc(sizeof(float) * (size_t) count);
    if (NULL == buf || count < 1) {
        fprintf(stderr, "rail_loop: bad COUNT or no memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    for (i = 0; i < calls; ++i) {
        uint64_t h, hmin, hmax;
        int ok = 1, all;
        double t;

        for (j = 0; j < count; ++j) {
            buf[j] = value(rank, i, j);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        t = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int) count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t = MPI_Wtime() - t;
        for (j = 0; exact && ok && j < count; ++j) {
            float want = 0.0f;

            for (r = 0; r < size; ++r) {
                want += value(r, i, j);
            }
            ok = want == buf[j];
        }
        h = fnv1a(buf, sizeof(float) * (size_t) count);
        MPI_Allreduce(&h, &hmin, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&h, &hmax, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
        all_ok = all_ok && all && hmin == hmax;
        if (0 == rank) {
            printf("call %d: %.3f s hash %016llx identical %s%s\n", i, t, (unsigned long long) h,
                   hmin == hmax ? "yes" : "NO", exact ? (all ? " exact yes" : " exact NO") : "");
            fflush(stdout);
        }
        if (0 == rank && NULL != progress) {
            FILE *f = fopen(progress, "w");

            if (NULL != f) {
                fprintf(f, "%d\n", i + 1);
                fclose(f);
            }
        }
    }
    if (0 == rank) {
        printf("rail_loop summary: %s\n", all_ok ? "OK" : "FAILED");
    }
    free(buf);
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
