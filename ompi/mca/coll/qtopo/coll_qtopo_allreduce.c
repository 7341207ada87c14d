/*
 * coll/qtopo MPI_Allreduce entry point: decides whether qtopo runs the call or hands
 * it, untouched, to the module that would have run it without qtopo; then runs the
 * chosen algorithm over the PML transport.
 *
 * The decision uses only what is identical on every rank (count, datatype, op, the
 * communicator and parameters that must be set alike everywhere), never buffer
 * addresses, timings or local state, so all ranks always take the same path.
 */

#include "ompi_config.h"

#include <stdlib.h>

#include "coll_qtopo.h"
#include "coll_qtopo_algo.h"

/* MPI_FLOAT and its Fortran names: all are 4-byte IEEE floats. */
static bool is_float_type(struct ompi_datatype_t *dtype)
{
    return MPI_FLOAT == dtype || MPI_REAL == dtype || MPI_REAL4 == dtype;
}

static bool qtopo_takes_call(mca_coll_qtopo_module_t *m, int count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    if (m->busy || m->failed || MPI_SUM != op || !is_float_type(dtype)) {
        return false;
    }
    if ((size_t) count * sizeof(float) < c->min_bytes) {
        return false;
    }
    return mca_coll_qtopo_params_valid();
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

static int run_ring(mca_coll_qtopo_module_t *m, const float *sbuf, float *rbuf, size_t count,
                    struct ompi_communicator_t *comm)
{
    size_t seg = mca_coll_qtopo_component.segment_size;
    mca_coll_qtopo_pml_ctx_t ctx;
    qtopo_xport_t x;
    void *scratch;

    scratch = module_scratch(m, qtopo_ring_scratch_bytes(count, ompi_comm_size(comm), seg));
    if (NULL == scratch) {
        return OMPI_ERR_OUT_OF_RESOURCE;
    }
    mca_coll_qtopo_xport_pml_init(&x, &ctx, comm, NULL, ompi_comm_rank(comm),
                                  ompi_comm_size(comm));
    return QTOPO_XPORT_OK == qtopo_ring_allreduce(&x, sbuf, rbuf, count, seg, scratch)
               ? OMPI_SUCCESS
               : OMPI_ERROR;
}

int mca_coll_qtopo_allreduce(const void *sbuf, void *rbuf, int count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                             struct ompi_communicator_t *comm, mca_coll_base_module_t *module)
{
    mca_coll_qtopo_module_t *m = (mca_coll_qtopo_module_t *) module;
    mca_coll_qtopo_counters_t *k = &mca_coll_qtopo_component.counters;
    const float *src = (MPI_IN_PLACE == sbuf) ? (const float *) rbuf : (const float *) sbuf;
    int rc;

    if (!qtopo_takes_call(m, count, dtype, op)) {
        __atomic_fetch_add(&k->calls_fallback, 1, __ATOMIC_RELAXED);
        return m->prev_allreduce(sbuf, rbuf, count, dtype, op, comm, m->prev_allreduce_module);
    }

    m->busy = true;
    rc = run_ring(m, src, (float *) rbuf, (size_t) count, comm);
    m->busy = false;
    if (OMPI_SUCCESS != rc) {
        /* an out-of-memory or transport failure: stop using qtopo on this communicator */
        m->failed = true;
        opal_output(0, "coll:qtopo: allreduce of %d floats on %s failed (%d); qtopo is off "
                    "for this communicator from now on", count, comm->c_name, rc);
        return rc;
    }
    __atomic_fetch_add(&k->calls_handled, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&k->bytes_logical, (unsigned long) count * sizeof(float),
                       __ATOMIC_RELAXED);
    QTOPO_VERBOSE(2, "allreduce count=%d on %s: ring", count, comm->c_name);
    return OMPI_SUCCESS;
}
