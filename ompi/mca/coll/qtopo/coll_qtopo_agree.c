/*
 * The per-call agreement: before qtopo runs an MPI_Allreduce, every rank of the
 * communicator learns that every other rank is about to run it with qtopo, with the
 * same settings, and able to (memory, valid parameters). A failure on one rank then
 * ends the call the same way on all of them.
 *
 * Protocol
 *
 *   1. Each rank that would run the call with qtopo (float sum, count * 4 >= min_bytes,
 *      qtopo not off) fills a vector of 64-bit words: ready (1/0), count, call number,
 *      each wire-affecting setting (QTOPO_SET_*), the memory kind of its buffers
 *      (QTOPO_MEM_*), one word per rail (the rates behind the adaptive rail weights,
 *      coll_qtopo_rails.h: only MIN is used there) and, on the first call, its node
 *      label. Every value v of the first five kinds is
 *      sent as v and ~v, and the vector is reduced with MIN: MIN(v) and ~MIN(~v) are
 *      the smallest and the largest value over all ranks, so one reduction shows both
 *      whether a value differs and its range.
 *   2. The reduction is a dissemination allreduce over the PML with qtopo's own tag
 *      (ceil(log2 n) rounds; MIN is idempotent, so it needs no power-of-two size). It
 *      needs a contribution from every rank, so no rank leaves it with a verdict before
 *      all ranks have entered it.
 *   3. Verdict, the same on every rank since every rank holds the same reduced vector:
 *      the call number differs -> qtopo off on this communicator from now on; a
 *      setting or the count differ -> this call is handed on, with one message naming
 *      what differs; some rank has a device buffer it cannot run (memory kind MAX is
 *      QTOPO_MEM_UNUSABLE) -> this call is handed on, said once; a rank not ready ->
 *      this call is handed on; else run. Memory kinds may differ between ranks (host
 *      on one, a staged device buffer on another): each rank's staging is local.
 *      The node labels of the first call give every rank the node map.
 *   4. A verdict other than "run" is followed by one more round trip (confirm) before
 *      any rank hands the call on, so that no rank still in the agreement meets the
 *      previous component's messages of a faster rank (step "Ranks that do not take
 *      part" below would take them for a rank that never joined).
 *
 * Ranks that do not take part. A rank whose own settings make it hand a call on
 * (coll_qtopo_priority 0 or a larger coll_qtopo_min_bytes on that rank only) runs the
 * previous component's allreduce, which sends with MCA_COLL_BASE_TAG_ALLREDUCE, while
 * the others wait here. qtopo's messages never use that tag, so such a message seen
 * while waiting can only come from such a rank: the rank that sees it turns qtopo off,
 * tells every rank so (QTOPO_TAG_OFF notice), and all of them hand the call on, which
 * joins the lone rank's allreduce: the call completes, correctly, through the previous
 * component, and qtopo stays off on that communicator. (A previous component that
 * never sends before it receives would leave both sides waiting; Open MPI's tuned and
 * basic allreduce algorithms all send first, except basic's linear reduce to root 0.)
 *
 * Failures inside a call (after a RUN verdict): the failing rank abandons its requests
 * (receives cancelled), sends the "off" notice to every rank and returns an error;
 * every wait in qtopo watches for that notice, so no rank keeps waiting for the failed
 * one: a rank that still needed its data abandons and returns an error too, a rank
 * that had all it needed returns its (correct) result. Every rank then has qtopo off:
 * the failing one at once, the others when they see the notice, at the latest in the
 * next call's agreement, which cannot complete without the failed rank.
 *
 * Why it cannot deadlock: every wait here and in the transport watches for the notice;
 * each rank that gives up on qtopo for good sends it to all ranks before it hands any
 * call on; and an agreement that a rank abandoned is never resumed (qtopo is off), so
 * no stale agreement message is ever matched by a later one. Notices are never
 * received, only probed: once one has arrived every later look sees it, which is what
 * "off for good" needs (the few bytes stay queued until the communicator is freed).
 *
 * Rail failover (calls on qtopo's own rails, coll_qtopo_rails.h). The PML path stays
 * healthy by assumption (its own interface is outside qtopo's failover); a rail may fail.
 *
 *   1. A rank whose transport sees a rail fail (a UCX error, or no progress for
 *      coll_qtopo_rail_timeout while pieces on that rail are pending) abandons its
 *      requests and sends a failover notice (QTOPO_TAG_FAILOVER) to every rank. Every
 *      wait inside a call watches for it, so ranks waiting for data that may never come
 *      abandon too; ranks that completed the call are not interrupted.
 *   2. Every call on rails ends with the end agreement, a dissemination MIN over the
 *      PML of: ok (this rank completed the call), can_redo (it still has its input) and,
 *      per rail, the lowest rank that saw it fail. Its waits watch for "off" notices
 *      only. Every rank gets there: those that completed, those that failed, and those
 *      woken by a notice; so it completes on every rank with the same vector.
 *   3. All ok: the call returns. Otherwise a second dissemination tells every rank which
 *      ranks sent notices, and each receives exactly the ones addressed to it (they were
 *      sent before their senders entered step 2, so they arrive), leaving none to
 *      disturb a later call. Then every rank takes the rails that some rank saw fail out
 *      of service (all of them if none was named), starts the next epoch, which gives
 *      the call's messages new tags on the PML and on the rails, so that nothing left
 *      over from the abandoned attempt can match, and redoes the call from its input
 *      over the rails left, or the PML when none is left. If any rank cannot redo (no
 *      memory for a copy of its in-place input), every rank fails the call as above
 *      (qtopo off, an error returned).
 *
 * It cannot deadlock: steps 1 and 2 wait only on the PML or on watched rails, every
 * rank enters step 2 exactly once per attempt, and each failed attempt takes at least
 * one rail out of service, so a call makes at most (rails + 1) attempts.
 */

#include "ompi_config.h"

#include <stdio.h>
#include <string.h>

#include "coll_qtopo.h"

#include "ompi/mca/pml/pml.h"

enum {
    AG_READY,
    AG_COUNT,  /* and ~count at AG_COUNT + 1 */
    AG_CALL = AG_COUNT + 2, /* and ~call */
    AG_SETTINGS = AG_CALL + 2, /* 2 words per setting */
    AG_MEMKIND = AG_SETTINGS + 2 * QTOPO_NSETTINGS, /* and ~memkind: may differ */
    AG_RAILS = AG_MEMKIND + 2, /* QTOPO_RAILS_MAX words, MIN only */
};

/* How often a waiting loop looks for notices (every that many polls of its request). */
#define QTOPO_WATCH_EVERY 64

/* A message with `tag` from any rank is waiting (it stays queued). */
static bool message_waiting(struct ompi_communicator_t *comm, int tag)
{
    ompi_status_public_t st;
    int found = 0;

    return OMPI_SUCCESS == MCA_PML_CALL(iprobe(MPI_ANY_SOURCE, tag, comm, &found, &st)) && found;
}

int mca_coll_qtopo_wait_watched(struct ompi_communicator_t *comm, ompi_request_t **req,
                                ompi_status_public_t *status, int watch)
{
    unsigned long polls = 0;
    int done = 0;

    for (;;) {
        /* a completed request's error comes back here (the status's error field is
         * not filled in by a single-request test) */
        if (OMPI_SUCCESS != ompi_request_test(req, &done, status)) {
            return OMPI_ERROR;
        }
        if (done) {
            return OMPI_SUCCESS;
        }
        if (0 != ++polls % QTOPO_WATCH_EVERY) {
            continue;
        }
        if (message_waiting(comm, QTOPO_TAG_OFF)
            || (0 != (watch & QTOPO_WATCH_FAILOVER) && message_waiting(comm, QTOPO_TAG_FAILOVER))) {
            return OMPI_ERR_UNREACH;
        }
        if (0 != (watch & QTOPO_WATCH_FOREIGN)
            && message_waiting(comm, MCA_COLL_BASE_TAG_ALLREDUCE)) {
            return OMPI_ERR_NOT_AVAILABLE;
        }
    }
}

int mca_coll_qtopo_notice(struct ompi_communicator_t *comm)
{
    if (message_waiting(comm, QTOPO_TAG_OFF)) {
        return QTOPO_NOTICE_OFF;
    }
    return message_waiting(comm, QTOPO_TAG_FAILOVER) ? QTOPO_NOTICE_FAILOVER : QTOPO_NOTICE_NONE;
}

/* Eight bytes to every other rank; they go eagerly: the send completes without the
 * receiver. */
static void notify_all(struct ompi_communicator_t *comm, int tag)
{
    uint64_t word = 1;
    int r;

    for (r = 0; r < ompi_comm_size(comm); ++r) {
        if (r != ompi_comm_rank(comm)) {
            (void) MCA_PML_CALL(send(&word, sizeof(word), MPI_BYTE, r, tag,
                                     MCA_PML_BASE_SEND_STANDARD, comm));
        }
    }
}

void mca_coll_qtopo_notify_failover(struct ompi_communicator_t *comm)
{
    notify_all(comm, QTOPO_TAG_FAILOVER);
}

void mca_coll_qtopo_notify_off(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm)
{
    m->off = true;
    notify_all(comm, QTOPO_TAG_OFF);
}

static void put_pair(uint64_t *v, int i, uint64_t value)
{
    v[i] = value;
    v[i + 1] = ~value;
}

static bool pair_differs(const uint64_t *v, int i)
{
    return v[i] != ~v[i + 1];
}

static void fill_vector(const mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                        size_t count, int memkind, bool ready, const int *labels,
                        const uint64_t *rail_words, int size, uint64_t *v)
{
    int i;

    v[AG_READY] = ready ? 1 : 0;
    put_pair(v, AG_COUNT, (uint64_t) count);
    put_pair(v, AG_CALL, m->ncalls);
    for (i = 0; i < QTOPO_NSETTINGS; ++i) {
        put_pair(v, AG_SETTINGS + 2 * i, s->wire[i]);
    }
    put_pair(v, AG_MEMKIND, (uint64_t) memkind);
    memcpy(v + AG_RAILS, rail_words, QTOPO_RAILS_MAX * sizeof(*v));
    if (NULL != labels) {
        /* the other ranks' labels are unknown here: UINT64_MAX leaves them to MIN */
        for (i = 0; i < size; ++i) {
            v[QTOPO_AGREE_FIXED + i] = UINT64_MAX;
        }
        v[QTOPO_AGREE_FIXED + m->comm_rank] = (uint64_t) labels[m->comm_rank];
    }
}

int mca_coll_qtopo_exchange_round(struct ompi_communicator_t *comm, int tag, void *v, void *in,
                                  size_t bytes, int dist, int watch, bool *detached)
{
    int size = ompi_comm_size(comm), rank = ompi_comm_rank(comm), rc;
    ompi_request_t *sreq = MPI_REQUEST_NULL, *rreq = MPI_REQUEST_NULL;
    ompi_status_public_t st;

    rc = MCA_PML_CALL(irecv(in, bytes, MPI_BYTE, (rank - dist + size) % size, tag, comm, &rreq));
    if (OMPI_SUCCESS == rc) {
        rc = MCA_PML_CALL(isend(v, bytes, MPI_BYTE, (rank + dist) % size, tag,
                                MCA_PML_BASE_SEND_STANDARD, comm, &sreq));
    }
    if (OMPI_SUCCESS == rc) {
        rc = mca_coll_qtopo_wait_watched(comm, &rreq, &st, watch);
    }
    if (OMPI_SUCCESS == rc && st._ucount != bytes) {
        rc = OMPI_ERR_BAD_PARAM; /* a rank sent another vector: labels on one side only */
    }
    if (OMPI_SUCCESS == rc) {
        rc = mca_coll_qtopo_wait_watched(comm, &sreq, &st, watch);
    }
    if (OMPI_SUCCESS != rc) {
        if (MPI_REQUEST_NULL != rreq) {
            (void) ompi_request_cancel(rreq);
            (void) ompi_request_wait(&rreq, MPI_STATUS_IGNORE);
        }
        if (MPI_REQUEST_NULL != sreq && NULL != detached) {
            (void) ompi_request_free(&sreq);
            *detached = true;
        } else if (MPI_REQUEST_NULL != sreq) {
            (void) ompi_request_wait(&sreq, MPI_STATUS_IGNORE);
        }
    }
    return rc;
}

/* One round of the agreement, then MIN; watch: QTOPO_WATCH_* (see confirm_hand_on). An
 * agreement abandoned for good (qtopo goes off) detaches its send, which may never be
 * received, so its buffer must outlive the module (pinned). */
static int agree_round(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                       uint64_t *v, uint64_t *in, int n, int dist, int watch)
{
    int rc, i;

    rc = mca_coll_qtopo_exchange_round(comm, QTOPO_TAG_AGREE, v, in, (size_t) n * sizeof(*v),
                                       dist, watch, &m->agree_buf_pinned);
    for (i = 0; OMPI_SUCCESS == rc && i < n; ++i) {
        v[i] = in[i] < v[i] ? in[i] : v[i];
    }
    return rc;
}

/* Every rank turns qtopo off for good: said once, by rank 0 of the communicator. */
static void all_off(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                    const char *why)
{
    if (0 == m->comm_rank) {
        opal_output(0, "coll:qtopo: %s: %s; qtopo is off on this communicator and "
                    "MPI_Allreduce runs through the previous component", comm->c_name, why);
    }
    m->off = true;
}

/* The whole agreement, all rounds. */
static int disseminate(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                       uint64_t *v, int n, int watch)
{
    int size = ompi_comm_size(comm), dist, rc = OMPI_SUCCESS;
    uint64_t *in = m->agree_buf + QTOPO_AGREE_FIXED + size;

    for (dist = 1; OMPI_SUCCESS == rc && dist < size; dist *= 2) {
        rc = agree_round(m, comm, v, in, n, dist, watch);
    }
    return rc;
}

/* A rank whose agreement ended with "hand on" would soon send the previous component's
 * allreduce messages, and a rank still in its last round would take them for a rank
 * that never joined. So before any rank hands on, one more round trip: a rank leaves it
 * only once every rank has left the agreement, and it watches for notices only (no rank
 * can be missing: the agreement this rank completed holds every rank's vector). */
static int confirm_hand_on(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm)
{
    uint64_t *v = m->agree_buf;

    v[0] = 0;
    return disseminate(m, comm, v, 1, 0);
}

/* Names the settings that differ, once per communicator and combination. */
static void report_mismatch(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                            const uint64_t *v)
{
    uint64_t which = 0;
    char text[1024] = "";
    size_t len = 0;
    int i;

    for (i = 0; i < QTOPO_NSETTINGS; ++i) {
        if (pair_differs(v, AG_SETTINGS + 2 * i)) {
            which |= (uint64_t) 1 << i;
            len += (size_t) snprintf(text + len, sizeof(text) - len, "%s%s", 0 < len ? ", " : "",
                                     mca_coll_qtopo_setting_name(i));
            len = len < sizeof(text) ? len : sizeof(text) - 1;
        }
    }
    if (pair_differs(v, AG_COUNT)) {
        which |= (uint64_t) 1 << 62;
        snprintf(text + len, sizeof(text) - len, "%sthe count (from %llu to %llu)",
                 0 < len ? ", " : "", (unsigned long long) v[AG_COUNT],
                 (unsigned long long) ~v[AG_COUNT + 1]);
    }
    if (which != m->reported_mismatch && 0 == m->comm_rank) {
        mca_coll_qtopo_show_help_here("settings-differ", comm->c_name, text);
    }
    m->reported_mismatch = which;
}

/* The verdict of a completed agreement (the same on every rank: the same vector). */
static mca_coll_qtopo_verdict_t verdict_of(mca_coll_qtopo_module_t *m,
                                           struct ompi_communicator_t *comm, const uint64_t *v,
                                           int *labels)
{
    int i;

    if (pair_differs(v, AG_CALL)) {
        all_off(m, comm, "ranks disagree on the number of allreduce calls so far");
        return QTOPO_OFF;
    }
    if (NULL != labels) {
        for (i = 0; i < ompi_comm_size(comm); ++i) {
            labels[i] = (int) v[QTOPO_AGREE_FIXED + i];
        }
    }
    for (i = AG_COUNT; i < AG_SETTINGS + 2 * QTOPO_NSETTINGS; i += 2) {
        if (pair_differs(v, i)) {
            report_mismatch(m, comm, v);
            return QTOPO_HAND_ON;
        }
    }
    m->reported_mismatch = 0;
    if (QTOPO_MEM_UNUSABLE == ~v[AG_MEMKIND + 1]) {
        if (!m->device_warned && 0 == m->comm_rank) {
            opal_output(0, "coll:qtopo: %s: a rank passes MPI_Allreduce a GPU buffer that qtopo "
                        "cannot run there (coll_qtopo_cuda = 0, qtopo built without CUDA, or no "
                        "host memory for the copy); such calls run through the previous "
                        "component, on every rank", comm->c_name);
        }
        m->device_warned = true;
        return QTOPO_HAND_ON;
    }
    return 1 == v[AG_READY] ? QTOPO_RUN : QTOPO_HAND_ON;
}

mca_coll_qtopo_verdict_t mca_coll_qtopo_agree(mca_coll_qtopo_module_t *m,
                                              struct ompi_communicator_t *comm,
                                              const mca_coll_qtopo_settings_t *s, size_t count,
                                              int memkind, bool ready, int *labels,
                                              uint64_t *rail_words)
{
    int size = ompi_comm_size(comm), n = QTOPO_AGREE_FIXED + (NULL != labels ? size : 0);
    mca_coll_qtopo_verdict_t verdict;
    uint64_t *v = m->agree_buf;
    int rc;

    fill_vector(m, s, count, memkind, ready, labels, rail_words, size, v);
    rc = disseminate(m, comm, v, n, QTOPO_WATCH_FOREIGN);
    if (OMPI_SUCCESS == rc) {
        memcpy(rail_words, v + AG_RAILS, QTOPO_RAILS_MAX * sizeof(*v));
        verdict = verdict_of(m, comm, v, labels);
        if (QTOPO_RUN == verdict) {
            return verdict;
        }
        rc = confirm_hand_on(m, comm);
        if (OMPI_SUCCESS == rc) {
            return verdict;
        }
    }
    /* said by the ranks that saw the cause; the others were told by a notice */
    if (OMPI_ERR_UNREACH != rc) {
        opal_output(0, "coll:qtopo: rank %d of %s: %s; qtopo is off on this communicator "
                    "and MPI_Allreduce runs through the previous component", m->comm_rank,
                    comm->c_name, OMPI_ERR_NOT_AVAILABLE == rc
                    ? "a rank runs MPI_Allreduce without qtopo (is coll_qtopo_priority or "
                      "coll_qtopo_min_bytes set differently on some ranks?)"
                    : "the agreement before a call failed");
    }
    mca_coll_qtopo_notify_off(m, comm);
    return QTOPO_OFF;
}

/* ---- the end of a call on rails (protocol at the top) ---------------------------------- */

enum {
    END_OK,
    END_CAN_REDO,
    END_SUSPECT, /* QTOPO_RAILS_MAX words */
    END_WORDS = END_SUSPECT + QTOPO_RAILS_MAX
};

/* Step 3's notices: which ranks sent one (word r is 0 when rank r did), then exactly
 * those addressed to this rank are received. */
static int receive_notices(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                           bool notified)
{
    int size = ompi_comm_size(comm), i, expected = 0, rc;
    uint64_t *v = m->agree_buf, word;

    for (i = 0; i < size; ++i) {
        v[i] = UINT64_MAX;
    }
    v[m->comm_rank] = notified ? 0 : UINT64_MAX;
    rc = disseminate(m, comm, v, size, 0);
    for (i = 0; OMPI_SUCCESS == rc && i < size; ++i) {
        expected += i != m->comm_rank && 0 == v[i];
    }
    for (i = 0; OMPI_SUCCESS == rc && i < expected; ++i) {
        rc = MCA_PML_CALL(recv(&word, sizeof(word), MPI_BYTE, MPI_ANY_SOURCE, QTOPO_TAG_FAILOVER,
                               comm, MPI_STATUS_IGNORE));
    }
    return rc;
}

int mca_coll_qtopo_agree_end(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                             mca_coll_qtopo_call_end_t *e)
{
    uint64_t *v = m->agree_buf;
    int r, rc;

    v[END_OK] = e->ok ? 1 : 0;
    v[END_CAN_REDO] = e->can_redo ? 1 : 0;
    memcpy(v + END_SUSPECT, e->suspect, sizeof(e->suspect));
    rc = disseminate(m, comm, v, END_WORDS, 0);
    if (OMPI_SUCCESS != rc) {
        return rc;
    }
    e->ok = 1 == v[END_OK];
    e->can_redo = 1 == v[END_CAN_REDO];
    for (r = 0; r < QTOPO_RAILS_MAX; ++r) {
        e->suspect[r] = v[END_SUSPECT + r];
    }
    rc = e->ok ? OMPI_SUCCESS : receive_notices(m, comm, e->notified);
    e->agreed_at = qtopo_now();
    return rc;
}
