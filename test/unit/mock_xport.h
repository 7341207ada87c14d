/*
 * In-process mock of the qtopo transport: a "world" of n ranks run as threads, with
 * eager sends (copied into a per-pair queue) and receives matched in posting order,
 * as MPI's non-overtaking rule requires. Oversized messages are reported as errors,
 * so a wrong receive size in an algorithm fails the test instead of corrupting memory.
 */

#ifndef QTOPO_MOCK_XPORT_H
#define QTOPO_MOCK_XPORT_H

#include "coll_qtopo_xport.h"

typedef struct mock_world mock_world_t;

mock_world_t *mock_world_create(int n);
void mock_world_destroy(mock_world_t *w);
/* fills *x as rank `rank` of the world */
void mock_xport_init(mock_world_t *w, int rank, qtopo_xport_t *x);
/* a transport over a subgroup: ranks[0..n) are world ranks, this one is ranks[index] */
void mock_xport_init_group(mock_world_t *w, int world_rank, const int *ranks, int n, int index,
                           qtopo_xport_t *x);
void mock_xport_fini(qtopo_xport_t *x);
/* bytes and messages sent by `rank` so far */
size_t mock_bytes_sent(mock_world_t *w, int rank);
/* messages sent but never received, over all pairs (0 after a clean run) */
size_t mock_unmatched(mock_world_t *w);

/* Runs fn(rank, arg) on n threads and joins them; returns the number of ranks whose fn
 * returned nonzero. */
int mock_run(int n, int (*fn)(int rank, void *arg), void *arg);

#endif
