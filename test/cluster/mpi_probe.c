/*
 * mpi_probe: checks what an MPI job sees on the emulated cluster.
 *
 *   mpi_probe [COUNT [ITERS]]
 *
 * Every rank prints one line: rank, size, hostname, local rank/size from
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), the number of distinct hostnames,
 * and whether the local size matches the number of ranks sharing its hostname.
 * Then it runs MPI_Allreduce(MPI_SUM) on COUNT floats (default 1024) ITERS times
 * (default 1) after one untimed warm-up call, checks the sums exactly (all values are small multiples of 0.5)
 * and rank 0 prints the mean time per call. Exit status 0 only if all is right.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_LEN 64

/* Contribution of rank r at index j; exact in float for the sizes used here. */
static float contribution(int r, long j)
{
    return (float) (r + 1) + 0.5f * (float) (j % 7);
}

/* Number of distinct names in a table of n names; *same = how many equal mine. */
static int count_hosts(const char *names, int n, const char *mine, int *same)
{
    int distinct = 0;
    *same = 0;
    for (int i = 0; i < n; i++) {
        const char *a = names + (size_t) i * HOST_LEN;
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) {
            seen = (0 == strcmp(a, names + (size_t) k * HOST_LEN));
        }
        distinct += !seen;
        *same += (0 == strcmp(a, mine));
    }
    return distinct;
}

/* Allreduce COUNT floats ITERS times; returns the number of wrong elements. */
static long check_allreduce(int rank, int size, long count, int iters, double *seconds)
{
    float *in = malloc((size_t) count * sizeof(float));
    float *out = malloc((size_t) count * sizeof(float));
    long bad = 0;
    if (NULL == in || NULL == out) {
        fprintf(stderr, "mpi_probe: out of memory for %ld floats\n", count);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    for (long j = 0; j < count; j++) {
        in[j] = contribution(rank, j);
    }
    /* One untimed call first: it sets up the connections. */
    MPI_Allreduce(in, out, (int) count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int it = 0; it < iters; it++) {
        MPI_Allreduce(in, out, (int) count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    *seconds = (MPI_Wtime() - t0) / iters;
    for (long j = 0; j < count; j++) {
        float expect = 0.0f;
        for (int r = 0; r < size; r++) {
            expect += contribution(r, j);
        }
        bad += (out[j] != expect);
    }
    free(in);
    free(out);
    return bad;
}

int main(int argc, char **argv)
{
    int rank, size, local_rank, local_size, same, len;
    char host[HOST_LEN] = {0};
    MPI_Comm local;

    MPI_Init(&argc, &argv);
    long count = argc > 1 ? atol(argv[1]) : 1024;
    int iters = argc > 2 ? atoi(argv[2]) : 1;
    if (count < 1 || iters < 1) {
        fprintf(stderr, "usage: mpi_probe [COUNT [ITERS]]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank);
    MPI_Comm_size(local, &local_size);

    char *names = malloc((size_t) size * HOST_LEN);
    MPI_Allgather(host, HOST_LEN, MPI_CHAR, names, HOST_LEN, MPI_CHAR, MPI_COMM_WORLD);
    int nodes = count_hosts(names, size, host, &same);
    free(names);

    double seconds;
    long bad = check_allreduce(rank, size, count, iters, &seconds);
    int ok = (bad == 0 && same == local_size);
    printf("probe rank=%d size=%d host=%s local_rank=%d local_size=%d nodes=%d "
           "local_matches_host=%s allreduce=%s\n",
           rank, size, host, local_rank, local_size, nodes, same == local_size ? "yes" : "no",
           bad == 0 ? "ok" : "WRONG");
    fflush(stdout);

    int all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (0 == rank) {
        printf("probe summary: %s size=%d nodes=%d allreduce count=%ld bytes=%ld iters=%d "
               "sec_per_call=%.6f\n",
               all_ok ? "OK" : "FAILED", size, nodes, count, count * (long) sizeof(float), iters,
               seconds);
        fflush(stdout);
    }
    MPI_Comm_free(&local);
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
