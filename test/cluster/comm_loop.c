/*
 * comm_loop: communicators created and freed in a loop, each with qtopo calls on it, for
 * the leak check of qtopo's rails (every communicator sets its rails up at its first
 * call and tears them down when it is freed).
 *
 *   comm_loop [LOOPS]
 *
 * Each loop dups MPI_COMM_WORLD, splits it in two halves by rank parity, runs two exact
 * allreduces of 300000 floats on the dup and one on the half, checks the sums, and frees
 * both. Prints "comm_loop: OK" on rank 0 when every sum was right.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define COUNT 300000

static int reduce_and_check(MPI_Comm comm, float *buf)
{
    int size, i, ok = 1;

    MPI_Comm_size(comm, &size);
    for (i = 0; i < COUNT; ++i) {
        buf[i] = (float) (i % 5);
    }
    MPI_Allreduce(MPI_IN_PLACE, buf, COUNT, MPI_FLOAT, MPI_SUM, comm);
    for (i = 0; i < COUNT; ++i) {
        ok = ok && buf[i] == (float) (size * (i % 5));
    }
    return ok;
}

int main(int argc, char **argv)
{
    int loops = argc > 1 ? atoi(argv[1]) : 5, rank, i, ok = 1, all;
    float *buf = malloc(sizeof(float) * COUNT);

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    for (i = 0; i < loops; ++i) {
        MPI_Comm dup, half;

        MPI_Comm_dup(MPI_COMM_WORLD, &dup);
        MPI_Comm_split(dup, rank % 2, rank, &half);
        ok = reduce_and_check(dup, buf) && ok;
        ok = reduce_and_check(dup, buf) && ok;
        ok = reduce_and_check(half, buf) && ok;
        MPI_Comm_free(&half);
        MPI_Comm_free(&dup);
    }
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (0 == rank) {
        printf("comm_loop: %s\n", all ? "OK" : "FAILED");
    }
    free(buf);
    MPI_Finalize();
    return all ? 0 : 1;
}
