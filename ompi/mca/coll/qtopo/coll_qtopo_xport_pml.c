/*
 * The qtopo transport (coll_qtopo_xport.h) over Open MPI's PML on a communicator.
 *
 * Peers are ranks of the communicator, or of a subgroup given as a table of
 * communicator ranks. All messages use qtopo's data tag of the communicator's current
 * rail-failover epoch (QTOPO_TAG_DATA(epoch), given at init): blocking
 * collectives on one communicator never overlap, user point-to-point tags are
 * non-negative, and the PML keeps messages between a pair in posting order, which
 * is all the algorithms rely on.
 */

#include "ompi_config.h"


#include "coll_qtopo.h"
#include "coll_qtopo_xport.h"

#include "ompi/mca/pml/pml.h"
#include "ompi/request/request.h"

static int pml_peer(const qtopo_xport_t *x, int peer)
{
    const mca_coll_qtopo_pml_ctx_t *c = x->ctx;

    return NULL == c->ranks ? peer : c->ranks[peer];
}

static int pml_isend(qtopo_xport_t *x, int peer, const void *buf, size_t bytes, qtopo_req_t *req)
{
    mca_coll_qtopo_pml_ctx_t *c = x->ctx;
    ompi_request_t *r = NULL;
    int rc;

    rc = MCA_PML_CALL(isend((void *) buf, bytes, MPI_BYTE, pml_peer(x, peer),
                            c->tag, MCA_PML_BASE_SEND_STANDARD, c->comm,
                            &r));
    req->handle = r;
    req->recv = 0;
    return OMPI_SUCCESS == rc ? QTOPO_XPORT_OK : QTOPO_XPORT_ERR;
}

static int pml_irecv(qtopo_xport_t *x, int peer, void *buf, size_t cap, qtopo_req_t *req)
{
    mca_coll_qtopo_pml_ctx_t *c = x->ctx;
    ompi_request_t *r = NULL;
    int rc;

    rc = MCA_PML_CALL(irecv(buf, cap, MPI_BYTE, pml_peer(x, peer), c->tag, c->comm, &r));
    req->handle = r;
    req->recv = 1;
    return OMPI_SUCCESS == rc ? QTOPO_XPORT_OK : QTOPO_XPORT_ERR;
}

/* Waits watch for qtopo's "off" and failover notices (coll_qtopo_agree.c): a rank that
 * failed inside the call sends one, so no rank waits for data that will never come. A
 * request that did not complete stays in reqs for abandon(). */
static int pml_wait(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    mca_coll_qtopo_pml_ctx_t *c = x->ctx;
    int i;

    for (i = 0; i < n; ++i) {
        ompi_request_t *r = reqs[i].handle;
        ompi_status_public_t status;

        if (NULL == r) {
            continue;
        }
        if (c->fail_waits || OMPI_SUCCESS != mca_coll_qtopo_wait_watched(c->comm, &r, &status,
                                                                         QTOPO_WATCH_FAILOVER)) {
            return QTOPO_XPORT_ERR;
        }
        reqs[i].bytes = status._ucount;
        reqs[i].handle = NULL;
    }
    return QTOPO_XPORT_OK;
}

/* Sends that may still complete get this long (seconds, per abandon) before they are
 * detached: a send whose receive was matched finishes quickly, one whose receiver gave
 * up never does. */
#define QTOPO_ABANDON_GRACE 1.0

/* A send, completed within the grace period or else detached (freed on completion). */
static void finish_send(ompi_request_t **r, double deadline)
{
    int done = 0;

    while (OMPI_SUCCESS == ompi_request_test(r, &done, MPI_STATUS_IGNORE) && !done
           && qtopo_now() < deadline) {
    }
    if (!done) {
        (void) ompi_request_free(r);
    }
}

/* Receives not yet matched are cancelled (a matched one completes). A send cannot be
 * cancelled in every PML (ob1 ignores it) and its receiver may have given up too: it
 * gets a grace period, then is detached, so the caller must keep its buffer alive
 * (coll_qtopo_allreduce.c never frees the scratch memory of a call that failed; a user
 * buffer is only read by a send that a receiver matched, which the grace lets end). */
void mca_coll_qtopo_xport_pml_drop(qtopo_req_t *req, bool recvs, double deadline)
{
    ompi_request_t *r = req->handle;

    if (NULL == r || (bool) req->recv != recvs) {
        return;
    }
    if (recvs) {
        (void) ompi_request_cancel(r);
        (void) ompi_request_wait(&r, MPI_STATUS_IGNORE);
    } else {
        finish_send(&r, deadline);
    }
    req->handle = NULL;
}

static void pml_abandon(qtopo_xport_t *x, qtopo_req_t *reqs, int n)
{
    double deadline = qtopo_now() + QTOPO_ABANDON_GRACE;
    int i;

    (void) x;
    for (i = 0; i < n; ++i) {
        mca_coll_qtopo_xport_pml_drop(&reqs[i], true, deadline);
    }
    for (i = 0; i < n; ++i) {
        mca_coll_qtopo_xport_pml_drop(&reqs[i], false, deadline);
    }
}

void mca_coll_qtopo_xport_pml_init(qtopo_xport_t *x, mca_coll_qtopo_pml_ctx_t *ctx,
                                   struct ompi_communicator_t *comm, const int *ranks,
                                   int rank, int size, int tag)
{
    ctx->comm = comm;
    ctx->ranks = ranks;
    ctx->tag = tag;
    ctx->fail_waits = false;
    x->rank = rank;
    x->size = size;
    x->isend = pml_isend;
    x->irecv = pml_irecv;
    x->wait = pml_wait;
    x->abandon = pml_abandon;
    x->ctx = ctx;
}
