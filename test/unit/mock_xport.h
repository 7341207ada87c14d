/*
 * In-process mock of the qtopo transport: a "world" of n ranks run as threads, receives
 * matched in posting order, as MPI's non-overtaking rule requires. Oversized messages
 * are reported as errors, so a wrong receive size in an algorithm fails the test
 * instead of corrupting memory.
 *
 * Modes (mock_world_set_mode):
 *
 *   MOCK_EAGER           a send copies the buffer at isend and completes at once; a
 *                        receive is filled at its wait. Forgiving, like a small-message
 *                        eager protocol.
 *   MOCK_LIFETIME_EARLY  rendezvous, as a zero-copy transport: a send completes only
 *                        once its receive is posted, and the sender's buffer is read at
 *                        that match, not at isend. A snapshot taken at isend is compared
 *                        with the buffer at the match and at the send's completion: any
 *                        write to a send buffer before its wait returned is reported.
 *                        The receive buffer is poisoned (0xFF bytes: a float NaN) at
 *                        irecv and filled at the match, possibly long before its wait;
 *                        the wait checks that nobody wrote to it meanwhile.
 *   MOCK_LIFETIME_LATE   the same sends; the receive buffer stays poisoned until its
 *                        wait, so an algorithm that reads it before waiting sees NaNs.
 *
 * In both lifetime modes the bytes of a receive buffer beyond the message are poisoned
 * until the wait and restored afterwards (MPI leaves them untouched); posting on a
 * request that is still pending, and a receive buffer that overlaps another pending
 * request's buffer of the same rank, are reported. What is reported counts in
 * mock_violations() and is printed to stderr.
 *
 * Fault injection (any mode): mock_world_set_fault changes the size of one message.
 *
 * Blocking waits detect deadlock when the world runs under mock_world_run: when every
 * live thread is blocked in a wait, all of them are released with an error (counted in
 * mock_deadlocks and, per rank, mock_released), so a test that would hang fails instead.
 * A released wait abandons the requests it was given, as a transport would complete them
 * with an error when a peer failed; with QTOPO_MOCK_FAILED_WAIT=leave in the environment
 * it leaves them pending for the caller's abandon() instead, as the PML transport's wait
 * does once it gives up on a peer.
 *
 * abandon() never blocks (unless mock_world_set_abandon_waits_sends): a pending send
 * that was not matched yet is completed by copying its bytes (as an eager protocol
 * would; counted in mock_abandoned_sends, since a rendezvous PML would wait for the
 * receiver there), an unmatched receive is cancelled and its buffer restored. A
 * cancelled receive matches no message.
 */

#ifndef QTOPO_MOCK_XPORT_H
#define QTOPO_MOCK_XPORT_H

#include "coll_qtopo_xport.h"

typedef struct mock_world mock_world_t;

enum { MOCK_EAGER, MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE };

mock_world_t *mock_world_create(int n);
void mock_world_destroy(mock_world_t *w);
void mock_world_set_mode(mock_world_t *w, int mode);
/* A fault: the k-th message (0-based, over all peers) that world rank src sends carries
 * `delta` bytes more (delta > 0, the extra bytes are 0xAB) or fewer (delta < 0) than
 * posted; with `silent`, no later message of src reaches anyone (src failed after it). */
typedef struct mock_fault {
    int src;
    size_t k;
    long delta; /* 0: no fault */
    int silent;
} mock_fault_t;

void mock_world_set_fault(mock_world_t *w, const mock_fault_t *f);
/* the first (where = 0), middle (1) or last (2) of `msgs` messages */
size_t mock_fault_pick(size_t msgs, int where);
/* Makes abandon() wait for each pending send's receive, as the PML transport does (a
 * send cannot be cancelled there; QTOPO_MOCK_ABANDON=wait in the environment does the
 * same); mock_abandon_blocked counts the abandon() calls that
 * then blocked until the deadlock detection released them: error paths that would hang
 * once the message is above the eager limit. */
void mock_world_set_abandon_waits_sends(mock_world_t *w, int on);
size_t mock_abandon_blocked(mock_world_t *w);
/* world rank that received the faulty message's send, -1 if it was never sent */
int mock_fault_dest(mock_world_t *w);

/* fills *x as rank `rank` of the world */
void mock_xport_init(mock_world_t *w, int rank, qtopo_xport_t *x);
/* a transport over a subgroup: ranks[0..n) are world ranks, this one is ranks[index] */
void mock_xport_init_group(mock_world_t *w, int world_rank, const int *ranks, int n, int index,
                           qtopo_xport_t *x);
void mock_xport_fini(qtopo_xport_t *x);

/* bytes sent by `rank` so far (as posted) */
size_t mock_bytes_sent(mock_world_t *w, int rank);
/* messages sent by `rank` so far */
size_t mock_msgs_sent(mock_world_t *w, int rank);
/* messages sent but never received, over all pairs (0 after a clean run) */
size_t mock_unmatched(mock_world_t *w);
/* requests posted and never completed by wait() or abandon() */
size_t mock_pending(mock_world_t *w);
/* buffer-lifetime rule violations seen (lifetime modes) */
size_t mock_violations(mock_world_t *w);
size_t mock_deadlocks(mock_world_t *w);
/* waits of world rank `rank` that the deadlock detection ended with an error */
size_t mock_released(mock_world_t *w, int rank);
/* pending sends abandon() had to complete before their receive was posted */
size_t mock_abandoned_sends(mock_world_t *w);

/* Per-rank float arrays of the tests (count floats each): a copy, its release, and the
 * number of ranks whose arrays differ in any bit. */
float **mock_arrays_copy(float *const *a, int n, size_t count);
void mock_arrays_free(float **a, int n);
size_t mock_arrays_differ(float *const *a, float *const *b, int n, size_t count);

/* Checks a run with an injected fault (mock_world_set_fault): the faulty message's
 * receiver returned an error and never blocked afterwards (the deadlock detection did
 * not have to release it), no request is left pending, no lifetime rule was broken, and
 * every rank that returned success holds its clean-run result (clean[rank]). Prints what
 * failed, prefixed by `what`, and returns 1 if all holds. Adds to the totals that
 * mock_fault_summary prints. */
int mock_fault_check(mock_world_t *w, const char *what, const int *rc, float *const *out,
                     float *const *clean, size_t count);
void mock_fault_summary(const char *name);

/* Runs fn(rank, arg) for every rank of the world on its own thread and joins them;
 * returns the number of ranks whose fn returned nonzero. */
int mock_world_run(mock_world_t *w, int (*fn)(int rank, void *arg), void *arg);

#endif
