/*
 * MPI_T helpers for qtopo's MPI tests: read qtopo's performance variables (counters)
 * and read or write its control variables (MCA parameters) by name.
 */

#ifndef QTOPO_TEST_MPIT_H
#define QTOPO_TEST_MPIT_H

#include <mpi.h>

/* Starts MPI_T and a pvar session; aborts if qtopo's variables are missing. */
void mpit_open(void);
/* Current value of the counter coll_qtopo_<name>. */
unsigned long mpit_counter(const char *name);
/* Reads / writes the control variable coll_qtopo_<name>; buf must hold its type
 * (int, double, unsigned long long, size_t, char* for strings). */
void mpit_cvar_read(const char *name, void *buf);
void mpit_cvar_write(const char *name, const void *buf);

#endif
