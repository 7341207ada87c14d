/*
 * Helpers for qtopo's MPI tests: a check harness (CHECK records a failure with rank and
 * location and goes on; mpit_summary prints the job's totals), and MPI_T access to
 * qtopo's performance variables (counters) and control variables (MCA parameters).
 */

#ifndef QTOPO_TEST_MPIT_H
#define QTOPO_TEST_MPIT_H

#include <stdio.h>

#include <mpi.h>

extern int mpit_passed, mpit_failed, mpit_rank;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        if (cond) {                                                                     \
            mpit_passed++;                                                              \
        } else {                                                                        \
            mpit_failed++;                                                              \
            fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", mpit_rank, __FILE__, \
                    __LINE__, #cond);                                                   \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

/* Sums the checks of all ranks; rank 0 prints "<what> np=N: P passed, F failed".
 * Returns this rank's exit status. */
int mpit_summary(const char *what);

/* 1 when y[0..count) holds the same bits on every rank of comm (a 64-bit hash of the
 * bytes, MIN and MAX over the ranks). Collective. */
int mpit_same_everywhere(const float *y, size_t count, MPI_Comm comm);

/* Starts MPI_T and a pvar session; aborts if qtopo's variables are missing. */
void mpit_open(void);
/* Current value of the counter coll_qtopo_<name>. */
unsigned long mpit_counter(const char *name);
/* Reads / writes the control variable coll_qtopo_<name>; buf must hold its type
 * (int, double, unsigned long long, size_t, char* for strings). */
void mpit_cvar_read(const char *name, void *buf);
void mpit_cvar_write(const char *name, const void *buf);

#endif
