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

/* MPI_FLOAT and its Fortran names: all are 4-byte IEEE floats. */
static bool is_float_type(struct ompi_datatype_t *dtype)
{
    return MPI_FLOAT == dtype || MPI_REAL == dtype || MPI_REAL4 == dtype;
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

static int run_exact(mca_coll_qtopo_module_t *m, qtopo_xport_t *x, const float *src, float *rbuf,
                     size_t count, const qtopo_call_t *call, mca_coll_qtopo_counters_t *k)
{
    void *scratch = module_scratch(m, qtopo_ring_scratch_bytes(count, x->size, call->segment));

    if (NULL == scratch) {
        return OMPI_ERR_OUT_OF_RESOURCE;
    }
    k->bytes_wire = (unsigned long) (2 * (size_t) (x->size - 1) * count * sizeof(float)
                                     / (size_t) x->size);
    return QTOPO_XPORT_OK == qtopo_ring_allreduce(x, src, rbuf, count, call->segment, scratch)
               ? OMPI_SUCCESS
               : OMPI_ERROR;
}

static int run_quantized(mca_coll_qtopo_module_t *m, qtopo_xport_t *x, const float *src,
                         float *rbuf, size_t count, const qtopo_call_t *call,
                         struct ompi_communicator_t *comm, mca_coll_qtopo_counters_t *k)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    qtopo_sra_args_t a;
    qtopo_sra_stats_t stats;
    void *scratch;
    int rc;

    a.codec.bits = call->bits;
    a.codec.block = call->block;
    a.codec.rounding = c->rounding;
    a.seg_bytes = call->segment;
    a.seed = c->seed;
    a.call = call->index;
    a.key_rank = (uint32_t) ompi_comm_rank(comm);
    a.elem_base = 0;
    a.residual = ef_residual(m, comm, src, count);
    scratch = module_scratch(m, qtopo_sra_scratch_bytes(count, x->size, &a));
    if (NULL == scratch) {
        return OMPI_ERR_OUT_OF_RESOURCE;
    }
    rc = qtopo_sra_allreduce(x, src, rbuf, count, &a, scratch, &stats);
    k->calls_quantized = 1;
    k->bytes_wire = (unsigned long) stats.bytes_sent;
    k->usec_code = (unsigned long) (stats.code_seconds * 1e6);
    return QTOPO_XPORT_OK == rc ? OMPI_SUCCESS : OMPI_ERROR;
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
    mca_coll_qtopo_pml_ctx_t ctx;
    qtopo_xport_t x;
    qtopo_call_t call;
    double t0 = seconds_now();
    int rc;

    choose_setting(m, count * sizeof(float), &call);
    mca_coll_qtopo_xport_pml_init(&x, &ctx, comm, NULL, ompi_comm_rank(comm),
                                  ompi_comm_size(comm));
    if (32 == call.bits) {
        rc = run_exact(m, &x, src, rbuf, count, &call, &k);
    } else {
        rc = run_quantized(m, &x, src, rbuf, count, &call, comm, &k);
    }
    if (OMPI_SUCCESS == rc) {
        k.calls_handled = 1;
        k.bytes_logical = (unsigned long) (count * sizeof(float));
        k.usec_total = (unsigned long) ((seconds_now() - t0) * 1e6);
        mca_coll_qtopo_count(m, &k);
        QTOPO_VERBOSE(2, "allreduce #%lu of %zu floats on %s: %d bits, block %d, segment %zu",
                      (unsigned long) call.index, count, comm->c_name, call.bits, call.block,
                      call.segment);
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
