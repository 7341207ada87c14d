/*
 * qtopo_bench: MPI_Allreduce of floats (MPI_SUM), qtopo against Open MPI's own
 * allreduce, measured side by side in the same run (osu_allreduce-like).
 *
 *   mpirun -np 4 --mca coll_qtopo_priority 40 qtopo_bench [-b MIN] [-e MAX] [-r ROUNDS]
 *
 * For every size from MIN to MAX bytes (x4 steps; default 4 B .. 64 MiB) it times the
 * call on a duplicate of MPI_COMM_WORLD (where qtopo runs, if enabled) and on a twin
 * duplicate that excludes qtopo (ompi_comm_coll_preference=^qtopo: Open MPI's default
 * choice), alternating the two for ROUNDS rounds and keeping each one's best round.
 * Reported per size, nccl-tests style: time per call (slowest rank), algbw = bytes/time,
 * busbw = algbw * 2(n-1)/n, the speedup of qtopo over Open MPI, which module ran the
 * call (qtopo's calls_handled counter), and the largest error of qtopo's result against
 * a double-precision reference.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

typedef struct bench_opts {
    size_t min_bytes, max_bytes;
    int rounds;
} bench_opts_t;

static MPI_T_pvar_session g_session;
static MPI_T_pvar_handle g_handled;
static int g_have_counter;

static void open_handled_counter(void)
{
    int provided, i, n, count;

    MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
    MPI_T_pvar_session_create(&g_session);
    MPI_T_pvar_get_num(&n);
    for (i = 0; i < n; ++i) {
        char name[256], desc[1024];
        int len = sizeof(name), dlen = sizeof(desc), verb, cls, bind, ro, cont, atomic;
        MPI_Datatype dt;
        MPI_T_enum en;
        MPI_T_pvar_get_info(i, name, &len, &verb, &cls, &dt, &en, desc, &dlen, &bind, &ro, &cont,
                            &atomic);
        if (0 == strcmp(name, "coll_qtopo_calls_handled")) {
            MPI_T_pvar_handle_alloc(g_session, i, NULL, &g_handled, &count);
            g_have_counter = 1;
        }
    }
}

static unsigned long calls_handled(void)
{
    unsigned long v = 0;

    if (g_have_counter) {
        MPI_T_pvar_read(g_session, g_handled, &v);
    }
    return v;
}

static float input_value(int rank, size_t i)
{
    uint64_t h = ((uint64_t) rank + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t) i * 0xbf58476d1ce4e5b9ULL;

    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return (float) ((double) (h % 2000001) / 1000000.0 - 1.0);
}

/* Seconds per call, slowest rank, for `iters` calls. */
static double time_calls(MPI_Comm comm, const float *in, float *out, int count, int iters)
{
    double t0, dt, worst;
    int i;

    MPI_Barrier(comm);
    t0 = MPI_Wtime();
    for (i = 0; i < iters; ++i) {
        MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, comm);
    }
    dt = (MPI_Wtime() - t0) / iters;
    MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
    return worst;
}

/* Largest |result - exact| over the buffer, relative to the sum of magnitudes. */
static double max_rel_error(const float *out, int count, int size)
{
    double worst = 0.0;
    int i, r;

    for (i = 0; i < count; ++i) {
        double ref = 0.0, mag = 0.0;
        for (r = 0; r < size; ++r) {
            ref += input_value(r, (size_t) i);
            mag += fabs(input_value(r, (size_t) i));
        }
        if (mag > 0.0 && fabs(out[i] - ref) / mag > worst) {
            worst = fabs(out[i] - ref) / mag;
        }
    }
    return worst;
}

static void bench_size(MPI_Comm qcomm, MPI_Comm ocomm, size_t bytes, const bench_opts_t *o)
{
    int rank, size, count = (int) (bytes / sizeof(float)), iters, k;
    float *in = malloc(bytes), *out = malloc(bytes);
    double tq = 1e30, to = 1e30, err, gerr, busf;
    unsigned long h0;
    size_t i;

    MPI_Comm_rank(qcomm, &rank);
    MPI_Comm_size(qcomm, &size);
    for (i = 0; i < (size_t) count; ++i) {
        in[i] = input_value(rank, i);
    }
    iters = (int) (((size_t) 64 << 20) / (bytes * size) + 1);
    iters = iters > 200 ? 200 : iters;

    MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, ocomm); /* warm-up */
    h0 = calls_handled();
    MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, qcomm);
    int by_qtopo = calls_handled() != h0;
    err = max_rel_error(out, count, size);
    MPI_Allreduce(&err, &gerr, 1, MPI_DOUBLE, MPI_MAX, qcomm);

    for (k = 0; k < o->rounds; ++k) {
        double t = time_calls(qcomm, in, out, count, iters);
        tq = t < tq ? t : tq;
        t = time_calls(ocomm, in, out, count, iters);
        to = t < to ? t : to;
    }
    busf = 2.0 * (size - 1) / size;
    if (0 == rank) {
        printf("%12zu %10.1f %9.3f %9.3f %10.1f %9.3f %9.3f %8.2fx  %-6s %9.2e\n", bytes,
               tq * 1e6, bytes / tq / 1e9, bytes / tq / 1e9 * busf, to * 1e6, bytes / to / 1e9,
               bytes / to / 1e9 * busf, to / tq, by_qtopo ? "qtopo" : "prev", gerr);
        fflush(stdout);
    }
    free(in);
    free(out);
}

static void parse_args(int argc, char **argv, bench_opts_t *o)
{
    int i;

    o->min_bytes = 4;
    o->max_bytes = (size_t) 64 << 20;
    o->rounds = 3;
    for (i = 1; i + 1 < argc; i += 2) {
        if (0 == strcmp(argv[i], "-b")) {
            o->min_bytes = strtoull(argv[i + 1], NULL, 0);
        } else if (0 == strcmp(argv[i], "-e")) {
            o->max_bytes = strtoull(argv[i + 1], NULL, 0);
        } else if (0 == strcmp(argv[i], "-r")) {
            o->rounds = atoi(argv[i + 1]);
        }
    }
    if (o->min_bytes < 4) {
        o->min_bytes = 4;
    }
    if (o->rounds < 1) {
        o->rounds = 1;
    }
}

int main(int argc, char **argv)
{
    bench_opts_t o;
    MPI_Comm qcomm, ocomm;
    MPI_Info info;
    int rank, size;
    size_t bytes;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    parse_args(argc, argv, &o);
    open_handled_counter();
    MPI_Comm_dup(MPI_COMM_WORLD, &qcomm);
    MPI_Info_create(&info);
    MPI_Info_set(info, "ompi_comm_coll_preference", "^qtopo");
    MPI_Comm_dup_with_info(MPI_COMM_WORLD, info, &ocomm);
    MPI_Info_free(&info);

    if (0 == rank) {
        printf("# qtopo_bench: MPI_Allreduce float sum, %d ranks; qtopo counter %s\n", size,
               g_have_counter ? "found" : "missing (qtopo not loaded)");
        printf("# busbw = algbw * 2(n-1)/n; speedup = Open MPI time / qtopo time; "
               "error = max |result - exact| / sum |x|\n");
        printf("# %10s %10s %9s %9s %10s %9s %9s %9s  %-6s %9s\n", "bytes", "qtopo_us",
               "algbw", "busbw", "ompi_us", "algbw", "busbw", "speedup", "ran", "error");
    }
    for (bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= 4) {
        bench_size(qcomm, ocomm, bytes, &o);
    }
    MPI_Comm_free(&qcomm);
    MPI_Comm_free(&ocomm);
    MPI_Finalize();
    return 0;
}
