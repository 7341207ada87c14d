/*
 * coll/qtopo MPI_Allreduce entry point: decides whether qtopo runs the call or hands
 * it, untouched, to the module that would have run it without qtopo; picks the
 * setting (joint-layer rules, ratio schedule) and runs the algorithm over the PML
 * transport: the exact ring when lossless, scatter-reduce-allgather when quantized.
 *
 * Every decision uses only what is identical on every rank (count, datatype, op, the
 * communicator, the number of eligible calls so far on it, and parameters that must
 * be set alike everywhere), never buffer addresses, timings or local state, so all
 * ranks always take the same path. Error-feedback state is local, but it only changes
 * the values a rank encodes, never the path.
 */

#include "ompi_config.h"

#include <stdlib.h>
#include <time.h>

#include "coll_qtopo.h"
#include "coll_qtopo_algo.h"

/* The communicator's id for error-feedback keys. */
#if OMPI_MAJOR_VERSION >= 5
#define QTOPO_COMM_ID(comm) ((uint64_t) ompi_comm_get_local_cid(comm))
#else
#define QTOPO_COMM_ID(comm) ((uint64_t) (comm)->c_contextid)
#endif

/* How one call is run. */
typedef struct qtopo_call {
    int bits;      /* 32: exact */
    int block;
    size_t segment;
    uint64_t index; /* eligible call number on the communicator */
} qtopo_call_t;

/* MPI_FLOAT and its Fortran names: all are 4-byte IEEE floats. (MPI_REAL4 exists only in
 * an Open MPI built with Fortran.) */
static bool is_float_type(struct ompi_datatype_t *dtype)
{
#if OMPI_HAVE_FORTRAN_REAL4
    if (MPI_REAL4 == dtype) {
        return true;
    }
#endif
    return MPI_FLOAT == dtype || MPI_REAL == dtype;
}

static bool qtopo_takes_call(mca_coll_qtopo_module_t *m, int count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op)
{
    if (m->busy || m->failed || MPI_SUM != op || !is_float_type(dtype)) {
        return false;
    }
    if ((size_t) count * sizeof(float) < mca_coll_qtopo_component.min_bytes) {
        return false;
    }
    return mca_coll_qtopo_params_valid(m);
}

/* The joint-layer rule for this size, else the global parameters; quantized only when
 * the ratio schedule says so for this call. */
static void choose_setting(mca_coll_qtopo_module_t *m, size_t bytes, qtopo_call_t *call)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    const qtopo_rule_t *rule = qtopo_rules_match(&m->rules, bytes);

    call->index = m->ncalls++;
    call->bits = NULL != rule ? rule->bits : c->bits;
    call->block = NULL != rule && 0 != rule->block ? rule->block : c->block_size;
    call->segment = NULL != rule && 0 != rule->segment ? rule->segment : c->segment_size;
    if (32 != call->bits
        && !qtopo_schedule_quantize(call->index, c->ratio, (uint64_t) c->warmup)) {
        call->bits = 32;
    }
}

/* Grows the module's scratch buffer to at least `bytes`; NULL if out of memory. */
static void *module_scratch(mca_coll_qtopo_module_t *m, size_t bytes)
{
    void *p;

    if (bytes <= m->scratch_size) {
        return m->scratch;
    }
    p = realloc(m->scratch, bytes);
    if (NULL == p) {
        return NULL;
    }
    m->scratch = p;
    m->scratch_size = bytes;
    return p;
}

/* The residual of this (communicator, buffer, count), or NULL without error feedback. */
static float *ef_residual(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                          const float *src, size_t count)
{
    if (!mca_coll_qtopo_component.error_feedback) {
        return NULL;
    }
    if (NULL == m->ef) {
        m->ef = qtopo_ef_store_create(mca_coll_qtopo_component.ef_max_bytes);
        if (NULL == m->ef) {
            return NULL;
        }
    }
    return qtopo_ef_lookup(m->ef, QTOPO_COMM_ID(comm), (uintptr_t) src, count);
}

static void fill_sra_args(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                          const float *src, size_t count, const qtopo_call_t *call,
                          qtopo_sra_args_t *a)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    a->codec.bits = call->bits;
    a->codec.block = call->block;
    a->codec.rounding = c->rounding;
    a->seg_bytes = call->segment;
    a->seed = c->seed;
    a->call = call->index;
    a->key_rank = (uint32_t) ompi_comm_rank(comm);
    a->elem_base = 0;
    a->residual = 32 != call->bits ? ef_residual(m, comm, src, count) : NULL;
}

static int xport_rc(int rc)
{
    return QTOPO_XPORT_OK == rc ? OMPI_SUCCESS : OMPI_ERROR;
}

/* Flat: the exact ring, or scatter-reduce-allgather when quantized, over all ranks. */
static int run_flat(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                    const float *src, float *rbuf, size_t count, const qtopo_call_t *call,
                    qtopo_sra_stats_t *stats)
{
    int size = ompi_comm_size(comm), rank = ompi_comm_rank(comm), rc;
    mca_coll_qtopo_pml_ctx_t ctx;
    qtopo_sra_args_t a;
    qtopo_xport_t x;
    void *scratch;

    mca_coll_qtopo_xport_pml_init(&x, &ctx, comm, NULL, rank, size);
    if (32 == call->bits) {
        scratch = module_scratch(m, qtopo_ring_scratch_bytes(count, size, call->segment));
        if (NULL == scratch) {
            return OMPI_ERR_OUT_OF_RESOURCE;
        }
        rc = qtopo_ring_allreduce(&x, src, rbuf, count, call->segment, scratch);
        stats->bytes_sent = qtopo_ring_bytes_sent(count, size, rank, QTOPO_RING_BOTH);
    } else {
        fill_sra_args(m, comm, src, count, call, &a);
        scratch = module_scratch(m, qtopo_sra_scratch_bytes(count, size, &a));
        if (NULL == scratch) {
            return OMPI_ERR_OUT_OF_RESOURCE;
        }
        rc = qtopo_sra_allreduce(&x, src, rbuf, count, &a, scratch, stats);
    }
    return xport_rc(rc);
}

/* Hierarchical: fp32 inside the node, the flat algorithm on the rail group. */
static int run_hier(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                    const float *src, float *rbuf, size_t count, const qtopo_call_t *call,
                    qtopo_sra_stats_t *stats)
{
    const qtopo_nodes_t *t = &m->nodes;
    mca_coll_qtopo_pml_ctx_t node_ctx, rail_ctx;
    qtopo_xport_t node_x, rail_x;
    qtopo_hier_args_t a;
    void *scratch;
    int rc;

    a.seg_bytes = call->segment;
    a.quantize = 32 != call->bits;
    fill_sra_args(m, comm, src, count, call, &a.sra);
    scratch = module_scratch(m, qtopo_hier_scratch_bytes(count, t->local_size, t->rail_size, &a));
    if (NULL == scratch) {
        return OMPI_ERR_OUT_OF_RESOURCE;
    }
    mca_coll_qtopo_xport_pml_init(&node_x, &node_ctx, comm, t->node_ranks, t->local_rank,
                                  t->local_size);
    mca_coll_qtopo_xport_pml_init(&rail_x, &rail_ctx, comm, t->rail_ranks, t->rail_index,
                                  t->rail_size);
    rc = qtopo_hier_allreduce(&node_x, &rail_x, src, rbuf, count, &a, scratch, stats);
    return xport_rc(rc);
}

/*
 * hier takes the split-rail path wherever the topology allows it; auto does so for every
 * quantized call and for exact ones from coll_qtopo_hier_min_bytes on. Split-rail
 * quantizes only node sums, so it sends 1/L of the flat algorithm's codes per rank; for
 * exact calls it saves nothing on the wire and adds two node phases, which pays only on
 * large buffers (see coll_qtopo_component.c for the measurement).
 */
static bool use_hier(const mca_coll_qtopo_module_t *m, const qtopo_call_t *call, size_t bytes)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    if (QTOPO_ALG_FLAT == c->algorithm || !mca_coll_qtopo_topo_hier_ok(m)) {
        return false;
    }
    return QTOPO_ALG_HIER == c->algorithm || 32 != call->bits || bytes >= c->hier_min_bytes;
}

static double seconds_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static int run_call(mca_coll_qtopo_module_t *m, const float *src, float *rbuf, size_t count,
                    struct ompi_communicator_t *comm)
{
    mca_coll_qtopo_counters_t k = {0};
    qtopo_sra_stats_t stats = {0, 0.0};
    qtopo_call_t call;
    double t0 = seconds_now();
    bool hier;
    int rc;

    if (!m->topo_ready) {
        rc = mca_coll_qtopo_topo_discover(m, comm);
        if (OMPI_SUCCESS != rc) {
            return rc;
        }
    }
    choose_setting(m, count * sizeof(float), &call);
    hier = use_hier(m, &call, count * sizeof(float));
    if (hier) {
        rc = run_hier(m, comm, src, rbuf, count, &call, &stats);
    } else {
        rc = run_flat(m, comm, src, rbuf, count, &call, &stats);
    }
    if (OMPI_SUCCESS == rc) {
        k.calls_handled = 1;
        k.bytes_wire = (unsigned long) stats.bytes_sent;
        k.usec_code = (unsigned long) (stats.code_seconds * 1e6);
        k.calls_quantized = 32 != call.bits;
        k.bytes_logical = (unsigned long) (count * sizeof(float));
        k.usec_total = (unsigned long) ((seconds_now() - t0) * 1e6);
        mca_coll_qtopo_count(m, &k);
        QTOPO_VERBOSE(2, "allreduce #%lu of %zu floats on %s: %s, %d bits, block %d, segment %zu",
                      (unsigned long) call.index, count, comm->c_name, hier ? "hier" : "flat",
                      call.bits, call.block, call.segment);
    }
    return rc;
}

int mca_coll_qtopo_allreduce(const void *sbuf, void *rbuf, int count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                             struct ompi_communicator_t *comm, mca_coll_base_module_t *module)
{
    mca_coll_qtopo_module_t *m = (mca_coll_qtopo_module_t *) module;
    const float *src = (MPI_IN_PLACE == sbuf) ? (const float *) rbuf : (const float *) sbuf;
    int rc;

    if (!qtopo_takes_call(m, count, dtype, op)) {
        mca_coll_qtopo_counters_t fallback = {0};
        fallback.calls_fallback = 1;
        mca_coll_qtopo_count(m, &fallback);
        return m->prev_allreduce(sbuf, rbuf, count, dtype, op, comm, m->prev_allreduce_module);
    }

    m->busy = true;
    rc = run_call(m, src, (float *) rbuf, (size_t) count, comm);
    m->busy = false;
    if (OMPI_SUCCESS != rc) {
        /* an out-of-memory or transport failure: stop using qtopo on this communicator */
        m->failed = true;
        opal_output(0, "coll:qtopo: allreduce of %d floats on %s failed (%d); qtopo is off "
                    "for this communicator from now on", count, comm->c_name, rc);
    }
    return rc;
}
