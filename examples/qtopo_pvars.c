/*
 * qtopo_pvars: reads qtopo's MPI_T performance variables around a few allreduces and
 * prints them, as a tool or a training script would.
 *
 *   mpirun -np 4 --mca coll_qtopo_priority 40 --mca coll_qtopo_bits 8 qtopo_pvars [COUNT]
 *
 * Every pvar whose name starts with "coll_qtopo_" is found by name (MPI_T_pvar_get_info),
 * read before and after 10 calls of COUNT floats (default 1M), and printed by rank 0 with
 * its description; a 1000-float call (below coll_qtopo_min_bytes) and a double-precision
 * call show up as fallbacks. Array variables (bytes per rail) print one line per element
 * that is not zero, as NAME[i].
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#define MAX_PVARS 32
#define MAX_COUNT 16 /* elements of an array variable (qtopo's have at most 8) */

typedef struct pvar {
    char name[128], desc[512];
    MPI_T_pvar_handle handle;
    int count;
    unsigned long before[MAX_COUNT];
} pvar_t;

static int open_pvars(MPI_T_pvar_session session, pvar_t *pv)
{
    int i, n, count, found = 0;

    MPI_T_pvar_get_num(&n);
    for (i = 0; i < n && found < MAX_PVARS; ++i) {
        int len = sizeof(pv[found].name), dlen = sizeof(pv[found].desc);
        int verb, cls, bind, ro, cont, atomic;
        MPI_Datatype dt;
        MPI_T_enum en;
        MPI_T_pvar_get_info(i, pv[found].name, &len, &verb, &cls, &dt, &en, pv[found].desc,
                            &dlen, &bind, &ro, &cont, &atomic);
        if (0 == strncmp(pv[found].name, "coll_qtopo_", 11) && MPI_UNSIGNED_LONG == dt) {
            MPI_T_pvar_handle_alloc(session, i, NULL, &pv[found].handle, &count);
            if (count > MAX_COUNT) {
                MPI_T_pvar_handle_free(session, &pv[found].handle);
                continue;
            }
            pv[found++].count = count;
        }
    }
    return found;
}

int main(int argc, char **argv)
{
    int rank, provided, npv, i, j, count = argc > 1 ? atoi(argv[1]) : 1 << 20;
    MPI_T_pvar_session session;
    pvar_t pv[MAX_PVARS];
    float *buf;
    double d = 1.0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
    MPI_T_pvar_session_create(&session);
    npv = open_pvars(session, pv);
    if (0 == npv) {
        if (0 == rank) {
            printf("no coll_qtopo_* performance variables: is coll/qtopo installed?\n");
        }
        MPI_Finalize();
        return 1;
    }
    for (i = 0; i < npv; ++i) {
        MPI_T_pvar_read(session, pv[i].handle, pv[i].before);
    }

    buf = calloc((size_t) (count > 1000 ? count : 1000), sizeof(float));
    for (i = 0; i < 10; ++i) {
        MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    MPI_Allreduce(MPI_IN_PLACE, buf, 1000, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &d, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);

    for (i = 0; 0 == rank && i < npv; ++i) {
        unsigned long now[MAX_COUNT] = {0};
        MPI_T_pvar_read(session, pv[i].handle, now);
        if (1 == pv[i].count) {
            printf("%-28s %12lu   %s\n", pv[i].name, now[0] - pv[i].before[0], pv[i].desc);
        }
        for (j = 0; 1 < pv[i].count && j < pv[i].count; ++j) {
            char name[160];

            snprintf(name, sizeof(name), "%.127s[%d]", pv[i].name, j);
            if (now[j] != pv[i].before[j]) {
                printf("%-28s %12lu   %s\n", name, now[j] - pv[i].before[j],
                       0 == j ? pv[i].desc : "");
            }
        }
    }
    free(buf);
    MPI_T_pvar_session_free(&session);
    MPI_T_finalize();
    MPI_Finalize();
    return 0;
}
