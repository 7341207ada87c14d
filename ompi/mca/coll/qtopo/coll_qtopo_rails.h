/*
 * qtopo's own rails (built only with UCX): one UCP context and worker per network
 * device, so each rail carries exactly the bytes qtopo gives it.
 *
 * Setup (coll_qtopo_rails.c) happens once per communicator, at the first call that
 * every rank runs with qtopo (right after the agreement said RUN, so every rank gets
 * there): each rank opens its rails, then one small MAX-allreduce over the PML with
 * qtopo's own tag (not the previous component's allreduce: its tag is the one the
 * agreement watches for) shows every rank the smallest and largest rail count,
 * readiness, policy and weight per rail, a second one the worker addresses and a third
 * that every rank stored them. The decision is a pure function of the reduced
 * values, so it is the same on every rank: rails only when
 * every rank has the same number of usable rails (>= 2 for coll_qtopo_transport auto,
 * >= 1 for ucx) and the same policy; the weights used are the smallest each rank
 * offers per rail. Otherwise every rank stays on the PML.
 *
 * The transport (coll_qtopo_xport_ucx.c) sends peers on the same node through the PML
 * (shared memory) and cuts every message to another node over the rails
 * (coll_qtopo_railsplit.h).
 *
 * Weights that follow the network (coll_qtopo_rail_weights auto, policy stripe): the
 * transport times every large piece it sends (post to completion, from UCX's send
 * callback) and adds bytes and seconds per rail. Every coll_qtopo_rail_adapt_calls
 * calls, each rank offers its measured rate per rail in the per-call agreement
 * (coll_qtopo_agree.c, words that are MIN-reduced), and every rank derives the new
 * weights from the reduced rates with the same pure function
 * (qtopo_rail_adapt_weights, coll_qtopo_railsplit.h): the split stays identical on
 * every rank, and it changes only between calls.
 *
 * A rail that fails while a call runs on it is detected by the transport and taken out
 * of service on every rank through the failover protocol at the top of
 * coll_qtopo_agree.c (mca_coll_qtopo_rails_suspect / _fail below); the call is redone.
 */

#ifndef COLL_QTOPO_RAILS_H
#define COLL_QTOPO_RAILS_H

#include "coll_qtopo.h"
#include "coll_qtopo_railsplit.h"

#include <pthread.h>

#include <ucp/api/ucp.h>

#define QTOPO_RAIL_NAME_MAX 64

struct mca_coll_qtopo_rails {
    int n;                                      /* rails */
    unsigned weights[QTOPO_RAILS_MAX];          /* agreed */
    int policy;                                 /* QTOPO_RAIL_STRIPE / _ALIGNED */
    int size, rank;                             /* the communicator */
    uint64_t comm_id;
    int *node;                                  /* node label of every rank */
    int *local;                                 /* local rank of every rank */
    uint32_t *send_seq, *recv_seq;              /* messages so far, per peer */
    char name[QTOPO_RAILS_MAX][QTOPO_RAIL_NAME_MAX];
    ucp_context_h ctx[QTOPO_RAILS_MAX];
    ucp_worker_h worker[QTOPO_RAILS_MAX];
    ucp_ep_h *eps;                              /* [rail * size + peer], made on first use */
    uint8_t *addrs;                             /* worker addresses [peer][rail][slot] */
    size_t slot;
    unsigned long bytes_sent[QTOPO_RAILS_MAX], bytes_recv[QTOPO_RAILS_MAX];
    /* adaptive weights: on when the weights are auto and the policy stripe */
    bool adapt;
    double meas_sec[QTOPO_RAILS_MAX];           /* send time of the timed pieces */
    unsigned long meas_bytes[QTOPO_RAILS_MAX];  /* ... and their bytes, since the last offer */
    /* failure (coll_qtopo_agree.c): what this rank saw in the running call */
    bool trouble;                               /* some rail failed here */
    bool suspect[QTOPO_RAILS_MAX];              /* ... this one */
    char why[QTOPO_RAILS_MAX][64];              /* "no progress for 5.0 s", a UCX error */
    int peers[QTOPO_RAILS_MAX][8], npeers[QTOPO_RAILS_MAX]; /* for the warning */
    uint32_t epoch;                             /* failovers so far (agreed): in the tags */
    bool dead[QTOPO_RAILS_MAX];                 /* out of service after a failure: never
                                                 * progressed or destroyed again */
    /* held by the thread running a call on these rails; the progress callback
     * (opal_progress) only progresses rails nobody holds */
    pthread_mutex_t lock;
    mca_coll_qtopo_rails_t *next;               /* every communicator's rails, for it */
};

/* The UCX tag of the seq-th message from `sender` to a peer in the current epoch
 * (layout in coll_qtopo_xport_ucx.c). */
ucp_tag_t mca_coll_qtopo_rails_tag(const mca_coll_qtopo_rails_t *rails, int sender,
                                   uint32_t seq);

/* The endpoint of rail r to communicator rank peer, created on first use; NULL on
 * failure. */
ucp_ep_h mca_coll_qtopo_rails_ep(mca_coll_qtopo_rails_t *rails, int r, int peer);

/* This rank saw rail r fail (towards communicator rank peer, -1 if unknown). */
void mca_coll_qtopo_rails_suspect(mca_coll_qtopo_rails_t *rails, int r, int peer,
                                  const char *why);

/* Progresses rail r until req ended or the deadline (qtopo_now() time) passed; true
 * when it ended. */
bool mca_coll_qtopo_rails_wait(mca_coll_qtopo_rails_t *rails, int r, void *req, double deadline);

/* Progresses every rail's worker once. */
void mca_coll_qtopo_rails_progress(mca_coll_qtopo_rails_t *rails);

/* Adds bytes sent on rail r and received; process totals behind the MPI_T variables
 * rail_bytes_sent and rail_bytes_recv. */
void mca_coll_qtopo_rails_count(mca_coll_qtopo_rails_t *rails, int r, size_t sent, size_t recv);

#endif /* COLL_QTOPO_RAILS_H */
