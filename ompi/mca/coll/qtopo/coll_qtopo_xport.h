/*
 * The transport seam between qtopo's algorithms and whatever moves bytes.
 *
 * An algorithm sees a group of `size` peers, is peer `rank` in it, posts byte
 * sends and receives to peer indices and waits on them. It never calls the PML,
 * UCX or MPI directly. Implementations: coll_qtopo_xport_pml.c (Open MPI's PML over
 * a communicator), the multi-rail one later, and an in-process mock in the unit
 * tests that runs the algorithms at 1..64 "ranks" as threads.
 *
 * Ordering contract (the MPI non-overtaking rule): between one sender and one
 * receiver, the i-th send posted is matched by the i-th receive posted. A receive
 * may be larger than the message; wait() reports the bytes that arrived.
 *
 * Error paths: an algorithm that fails part-way calls abandon() on its requests
 * instead of wait(): a pending receive whose sender may never send (the sender may
 * have failed too) is cancelled rather than waited for, so no error path blocks on a
 * peer. Once abandon() returns, no request refers to its buffer any more.
 *
 * No Open MPI types here.
 */

#ifndef COLL_QTOPO_XPORT_H
#define COLL_QTOPO_XPORT_H

#include <stddef.h>
#include <time.h>

typedef struct qtopo_req {
    void *handle;  /* transport-owned; NULL when nothing is pending */
    size_t bytes;  /* after wait() on a receive: bytes received */
    int recv;      /* set by the transport: the pending request is a receive */
} qtopo_req_t;

#define QTOPO_REQ_INIT {NULL, 0, 0}

typedef struct qtopo_xport qtopo_xport_t;

struct qtopo_xport {
    int rank;
    int size;
    int (*isend)(qtopo_xport_t *x, int peer, const void *buf, size_t bytes, qtopo_req_t *req);
    int (*irecv)(qtopo_xport_t *x, int peer, void *buf, size_t cap, qtopo_req_t *req);
    /* completes every pending request of reqs[0..n-1]; entries with NULL handle are skipped */
    int (*wait)(qtopo_xport_t *x, qtopo_req_t *reqs, int n);
    /* error path: cancels the pending receives of reqs[0..n-1] (one already matched
     * completes), completes the sends; every handle is NULL afterwards */
    void (*abandon)(qtopo_xport_t *x, qtopo_req_t *reqs, int n);
    void *ctx;
};

/* Transport return codes (0 = success). */
#define QTOPO_XPORT_OK 0
#define QTOPO_XPORT_ERR -1

/* Monotonic time in seconds, for the algorithms' coding time and transports' deadlines. */
static inline double qtopo_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Ends a group of requests so that nothing stays in flight: after a success it waits
 * for all of them; after an error, its own or one of those waits (which leaves what it
 * did not complete), it abandons what is left and returns the error. */
static inline int qtopo_xport_finish(qtopo_xport_t *x, qtopo_req_t *reqs, int n, int rc)
{
    if (QTOPO_XPORT_OK == rc) {
        rc = x->wait(x, reqs, n);
    }
    if (QTOPO_XPORT_OK != rc) {
        x->abandon(x, reqs, n);
    }
    return rc;
}

#endif /* COLL_QTOPO_XPORT_H */
