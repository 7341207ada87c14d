/*
 * coll/qtopo module lifecycle: which communicators get a qtopo module (comm_query),
 * capturing the allreduce that would run without qtopo (module_enable), and freeing
 * per-communicator state (destructor).
 *
 * qtopo fills only the allreduce slot. The framework enables modules from lowest to
 * highest priority, so at enable time comm->c_coll holds the best lower-priority
 * allreduce: that is the one qtopo falls back to. How qtopo's own allreduce gets into
 * comm->c_coll depends on the coll framework version (coll_qtopo_compat.h).
 */

#include "ompi_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo.h"

#include "ompi/mca/coll/base/base.h"
#include "opal/mca/base/base.h"

static void qtopo_module_construct(mca_coll_qtopo_module_t *m)
{
    m->prev_allreduce = NULL;
    m->prev_allreduce_module = NULL;
    m->busy = false;
    m->off = false;
    m->agree_buf = NULL;
    m->labels = NULL;
    m->agree_buf_pinned = false;
    m->reported_mismatch = 0;
    m->ef_warned = false;
    m->scratch_warned = false;
    m->scratch_pinned = false;
    m->topo_ready = false;
    memset(&m->nodes, 0, sizeof(m->nodes));
    m->ncalls = 0;
    m->rules_text = NULL;
    m->rules.n = 0;
    m->ef = NULL;
    m->scratch = NULL;
    m->scratch_size = 0;
    memset(&m->counters, 0, sizeof(m->counters));
    m->rails_decided = false;
    m->rails = NULL;
    m->epoch = 0;
    m->saved = NULL;
    m->saved_size = 0;
    m->staged = NULL;
    m->staged_size = 0;
    m->device_warned = false;
}

/* coll_qtopo_verbose >= 1: what qtopo did on a communicator, printed when it is freed.
 * The wire ratio compares the bytes sent with what an exact fp32 ring sends,
 * 2(n-1)/n of the buffer per rank. */
static void print_summary(const mca_coll_qtopo_module_t *m)
{
    const mca_coll_qtopo_counters_t *k = &m->counters;
    double exact = (double) k->bytes_logical * 2.0 * (m->comm_size - 1) / m->comm_size;

    if (0 == k->calls_handled + k->calls_fallback) {
        return;
    }
    QTOPO_VERBOSE(1, "summary for %s: %lu calls handled (%lu quantized), %lu handed on; %lu "
                  "fp32 bytes reduced, %lu bytes sent (wire ratio %.3f of exact fp32, %.0f bytes "
                  "saved); %.3f s in qtopo (node reduce-scatter %.3f, network %.3f, node "
                  "allgather %.3f; coding %.3f of them), %.3f s agreeing",
                  m->comm_name, k->calls_handled, k->calls_quantized, k->calls_fallback,
                  k->bytes_logical, k->bytes_wire, exact > 0 ? k->bytes_wire / exact : 0.0,
                  exact - (double) k->bytes_wire, 1e-6 * (double) k->usec_total,
                  1e-6 * (double) k->usec_node_rs, 1e-6 * (double) k->usec_network,
                  1e-6 * (double) k->usec_node_ag, 1e-6 * (double) k->usec_code,
                  1e-6 * (double) k->usec_agree);
}

static void qtopo_module_destruct(mca_coll_qtopo_module_t *m)
{
    print_summary(m);
#if QTOPO_HAVE_UCX
    /* before the buffers: a failed call's detached sends are dropped with the workers */
    mca_coll_qtopo_rails_destroy(m->rails, m->comm_name);
#endif
    /* a failed call may have left sends detached that still read these (pinned) */
    if (!m->scratch_pinned) {
        free(m->scratch);
        free(m->staged); /* a staged call's input and output: send buffers too */
    }
    if (!m->agree_buf_pinned) {
        free(m->agree_buf);
    }
    free(m->labels);
    free(m->saved);
    qtopo_ef_store_destroy(m->ef);
    free(m->rules_text);
    qtopo_nodes_free(&m->nodes);
    if (NULL != m->prev_allreduce_module) {
        OBJ_RELEASE(m->prev_allreduce_module);
    }
}

OBJ_CLASS_INSTANCE(mca_coll_qtopo_module_t, mca_coll_base_module_t, qtopo_module_construct,
                   qtopo_module_destruct);

int mca_coll_qtopo_init_query(bool enable_progress_threads, bool enable_mpi_threads)
{
    /* per-communicator state only; counters are atomic: any thread level is fine */
    (void) enable_progress_threads;
    (void) enable_mpi_threads;
    return OMPI_SUCCESS;
}

/*
 * `--mca coll qtopo` alone leaves no component for everything qtopo does not do, and
 * Open MPI's own message then does not say what to add. Say it, once per process.
 */
static void report_missing_fallback(struct ompi_communicator_t *comm)
{
    static bool reported = false;

    /* communicators may be created by several threads at once */
    if (!__atomic_exchange_n(&reported, true, __ATOMIC_RELAXED)) {
        mca_coll_qtopo_show_help("no-fallback", comm->c_name);
    }
}

static bool qtopo_is_only_component(void)
{
    opal_list_t *list = &ompi_coll_base_framework.framework_components;
    mca_base_component_list_item_t *cli;

    OPAL_LIST_FOREACH(cli, list, mca_base_component_list_item_t) {
        if (0 != strcmp(cli->cli_component->mca_component_name, "qtopo")) {
            return false;
        }
    }
    return true;
}

static int qtopo_module_enable(mca_coll_base_module_t *module, struct ompi_communicator_t *comm)
{
    mca_coll_qtopo_module_t *m = (mca_coll_qtopo_module_t *) module;

    if (NULL == comm->c_coll->coll_allreduce || NULL == comm->c_coll->coll_allreduce_module) {
        report_missing_fallback(comm);
        return OMPI_ERROR;
    }
    m->prev_allreduce = comm->c_coll->coll_allreduce;
    m->prev_allreduce_module = comm->c_coll->coll_allreduce_module;
    OBJ_RETAIN(m->prev_allreduce_module);
    m->comm_size = ompi_comm_size(comm);
    m->comm_rank = ompi_comm_rank(comm);
    snprintf(m->comm_name, sizeof(m->comm_name), "%s", comm->c_name);
    mca_coll_qtopo_compat_install(comm, module, mca_coll_qtopo_allreduce);
    QTOPO_VERBOSE(1, "enabled on %s (size %d), falling back to %p", comm->c_name,
                  ompi_comm_size(comm), (void *) m->prev_allreduce_module);
    return OMPI_SUCCESS;
}

static int qtopo_module_disable(mca_coll_base_module_t *module, struct ompi_communicator_t *comm)
{
    mca_coll_qtopo_module_t *m = (mca_coll_qtopo_module_t *) module;

    mca_coll_qtopo_compat_uninstall(comm, module, m->prev_allreduce, m->prev_allreduce_module);
    return OMPI_SUCCESS;
}

mca_coll_base_module_t *mca_coll_qtopo_comm_query(struct ompi_communicator_t *comm,
                                                  int *priority)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    mca_coll_qtopo_settings_t s;
    mca_coll_qtopo_module_t *m;

    if (qtopo_is_only_component()) {
        report_missing_fallback(comm);
        return NULL;
    }
    if (0 >= c->priority || OMPI_COMM_IS_INTER(comm) || 2 > ompi_comm_size(comm)) {
        return NULL;
    }
    if (!mca_coll_qtopo_settings_read(NULL, &s)) {
        return NULL;
    }
    m = OBJ_NEW(mca_coll_qtopo_module_t);
    if (NULL == m) {
        return NULL;
    }
    /* A rank without a module hands every call on; the agreement of the others notices
     * it (coll_qtopo_agree.c) and hands on too. */
    m->agree_buf = malloc(2 * (QTOPO_AGREE_FIXED + (size_t) ompi_comm_size(comm))
                          * sizeof(uint64_t));
    m->labels = malloc((size_t) ompi_comm_size(comm) * sizeof(int));
    if (NULL == m->agree_buf || NULL == m->labels) {
        OBJ_RELEASE(m);
        return NULL;
    }
    m->super.coll_module_enable = qtopo_module_enable;
    m->super.coll_module_disable = qtopo_module_disable;
    *priority = c->priority > 100 ? 100 : c->priority;
    return &m->super;
}
