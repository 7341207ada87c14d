/*
 * MPI_T access to qtopo's counters and parameters by name (see mpit.h).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mpit.h"

#define MPIT_MAX_HANDLES 16

typedef struct mpit_pvar {
    char name[96];
    MPI_T_pvar_handle handle;
} mpit_pvar_t;

int mpit_passed, mpit_failed, mpit_rank;

static MPI_T_pvar_session g_session;
static mpit_pvar_t g_pvars[MPIT_MAX_HANDLES];
static int g_npvars;

static int find_var(const char *name, int is_pvar)
{
    int i, n;

    if (is_pvar) {
        MPI_T_pvar_get_num(&n);
    } else {
        MPI_T_cvar_get_num(&n);
    }
    for (i = 0; i < n; ++i) {
        char buf[256], desc[1024];
        int len = sizeof(buf), dlen = sizeof(desc), verb, cls, bind, ro, cont, atomic, scope;
        MPI_Datatype dt;
        MPI_T_enum en;
        if (is_pvar) {
            MPI_T_pvar_get_info(i, buf, &len, &verb, &cls, &dt, &en, desc, &dlen, &bind, &ro,
                                &cont, &atomic);
        } else {
            MPI_T_cvar_get_info(i, buf, &len, &verb, &dt, &en, desc, &dlen, &bind, &scope);
        }
        if (0 == strcmp(buf, name)) {
            return i;
        }
    }
    fprintf(stderr, "MPI_T variable %s not found: is coll/qtopo loaded?\n", name);
    MPI_Abort(MPI_COMM_WORLD, 2);
    return -1;
}

int mpit_same_everywhere(const float *y, size_t count, MPI_Comm comm)
{
    uint64_t h = 1469598103934665603ULL, lo, hi;
    const unsigned char *b = (const unsigned char *) y;

    for (size_t i = 0; i < count * sizeof(float); ++i) {
        h = (h ^ b[i]) * 1099511628211ULL;
    }
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, comm);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, comm);
    return lo == hi;
}

int mpit_summary(const char *what)
{
    int totals[2] = {mpit_passed, mpit_failed}, sums[2], size;

    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Reduce(totals, sums, 2, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
    if (0 == mpit_rank) {
        printf("%s np=%d: %d passed, %d failed\n", what, size, sums[0], sums[1]);
    }
    return mpit_failed ? 1 : 0;
}

void mpit_open(void)
{
    int provided;

    MPI_Comm_rank(MPI_COMM_WORLD, &mpit_rank);
    MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
    MPI_T_pvar_session_create(&g_session);
}

unsigned long mpit_counter(const char *name)
{
    char full[96];
    unsigned long v = 0;
    int i, count;

    snprintf(full, sizeof(full), "coll_qtopo_%s", name);
    for (i = 0; i < g_npvars && 0 != strcmp(g_pvars[i].name, full); ++i) {
    }
    if (i == g_npvars) {
        if (MPIT_MAX_HANDLES == g_npvars) {
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        snprintf(g_pvars[i].name, sizeof(g_pvars[i].name), "%s", full);
        MPI_T_pvar_handle_alloc(g_session, find_var(full, 1), NULL, &g_pvars[i].handle, &count);
        g_npvars++;
    }
    MPI_T_pvar_read(g_session, g_pvars[i].handle, &v);
    return v;
}

static MPI_T_cvar_handle cvar_handle(const char *name)
{
    char full[96];
    MPI_T_cvar_handle h;
    int count;

    snprintf(full, sizeof(full), "coll_qtopo_%s", name);
    MPI_T_cvar_handle_alloc(find_var(full, 0), NULL, &h, &count);
    return h;
}

void mpit_cvar_read(const char *name, void *buf)
{
    MPI_T_cvar_handle h = cvar_handle(name);

    MPI_T_cvar_read(h, buf);
    MPI_T_cvar_handle_free(&h);
}

void mpit_cvar_write(const char *name, const void *buf)
{
    MPI_T_cvar_handle h = cvar_handle(name);

    if (MPI_SUCCESS != MPI_T_cvar_write(h, buf)) {
        fprintf(stderr, "cannot write coll_qtopo_%s through MPI_T\n", name);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_T_cvar_handle_free(&h);
}
