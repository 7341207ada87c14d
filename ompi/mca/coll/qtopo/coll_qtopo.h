/*
 * coll/qtopo: a topology-aware, quantized, multi-rail MPI_Allreduce for float sums.
 *
 * Shared declarations of the Open MPI side of the component: the component and
 * module structures, the MCA parameter storage, counters exposed as MPI_T
 * performance variables, and the entry points the framework calls. The algorithms
 * themselves (coll_qtopo_ring.c ...) know nothing of Open MPI; they run over the
 * byte transport of coll_qtopo_xport.h.
 */

#ifndef MCA_COLL_QTOPO_EXPORT_H
#define MCA_COLL_QTOPO_EXPORT_H

#include "ompi_config.h"

#include "mpi.h"
#include "ompi/communicator/communicator.h"
#include "ompi/mca/coll/coll.h"
#include "opal/util/output.h"

#include "coll_qtopo_codec.h"
#include "coll_qtopo_ef.h"
#include "coll_qtopo_nodes.h"
#include "coll_qtopo_policy.h"
#include "coll_qtopo_xport.h"

BEGIN_C_DECLS

/* Values of coll_qtopo_algorithm. */
enum {
    QTOPO_ALG_AUTO = 0,
    QTOPO_ALG_FLAT = 1,
    QTOPO_ALG_HIER = 2,
};

/* Counters behind the MPI_T performance variables; the component holds the process
 * totals (updated atomically), each module its communicator's share. */
typedef struct mca_coll_qtopo_counters_t {
    unsigned long calls_handled;   /* allreduce calls run by qtopo's own algorithms */
    unsigned long calls_quantized; /* ... of which quantized */
    unsigned long calls_fallback;  /* calls handed to the previous module */
    unsigned long bytes_logical;   /* fp32 bytes reduced by qtopo (count * 4 per call) */
    unsigned long bytes_wire;      /* bytes this process sent for them */
    unsigned long usec_total;      /* time in qtopo's algorithms, microseconds */
    unsigned long usec_code;       /* ... of which encoding and decoding */
} mca_coll_qtopo_counters_t;

typedef struct mca_coll_qtopo_component_t {
    mca_coll_base_component_2_0_0_t super;

    /* MCA parameters (storage owned by the MCA variable system) */
    int priority;
    int bits;
    int block_size;
    int rounding;
    unsigned long long seed;
    size_t min_bytes;
    size_t segment_size;
    double ratio;
    int warmup;
    char *rules;
    bool error_feedback;
    size_t ef_max_bytes;
    int algorithm;
    size_t hier_min_bytes;
    int node_size;
    int verbose;

    int output; /* opal_output stream, verbosity = coll_qtopo_verbose */
    mca_coll_qtopo_counters_t counters;
} mca_coll_qtopo_component_t;

OMPI_MODULE_DECLSPEC extern mca_coll_qtopo_component_t mca_coll_qtopo_component;

typedef struct mca_coll_qtopo_module_t {
    mca_coll_base_module_t super;

    /* the allreduce that would run without qtopo, captured in module_enable */
    mca_coll_base_module_allreduce_fn_t prev_allreduce;
    mca_coll_base_module_t *prev_allreduce_module;

    /* true while qtopo's own allreduce runs on this communicator: a nested call
     * (Open MPI's internals during a communicator split) goes to prev */
    bool busy;
    /* sticky pass-through after an internal error; all ranks see the same error */
    bool failed;

    /* node and rail groups, discovered on the first handled call */
    bool topo_ready;
    qtopo_nodes_t nodes;

    /* eligible calls so far: drives the ratio schedule and the stochastic-rounding key */
    uint64_t ncalls;
    /* the coll_qtopo_rules string last parsed, and its rules */
    char *rules_text;
    qtopo_rules_t rules;
    /* error-feedback residuals of this communicator (created on first use) */
    qtopo_ef_store_t *ef;

    /* scratch memory reused across calls (grown, never shrunk) */
    void *scratch;
    size_t scratch_size;

    mca_coll_qtopo_counters_t counters; /* this communicator's share */
    int comm_size;
    char comm_name[MPI_MAX_OBJECT_NAME]; /* for the summary: the communicator is gone by then */
} mca_coll_qtopo_module_t;

OBJ_CLASS_DECLARATION(mca_coll_qtopo_module_t);

#define QTOPO_VERBOSE(level, ...)                                                   \
    opal_output_verbose((level), mca_coll_qtopo_component.output, "coll:qtopo: " __VA_ARGS__)

/* coll_qtopo_component.c */
/* Checks the global parameters and the module's parsed rules (re-parsed when
 * coll_qtopo_rules changed); reports a bad value once. */
bool mca_coll_qtopo_params_valid(mca_coll_qtopo_module_t *m);
/* Prints a text of help-coll-qtopo.txt once per job (from its first process). */
void mca_coll_qtopo_show_help(const char *topic, ...);
/* Adds a call's counts to the process totals and the module's. */
void mca_coll_qtopo_count(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_counters_t *delta);

/* coll_qtopo_module.c */
int mca_coll_qtopo_init_query(bool enable_progress_threads, bool enable_mpi_threads);
mca_coll_base_module_t *mca_coll_qtopo_comm_query(struct ompi_communicator_t *comm,
                                                  int *priority);

/* coll_qtopo_topo.c: node structure of the communicator (collective: all ranks call
 * it on the same handled call) */
int mca_coll_qtopo_topo_discover(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm);
/* the split-rail algorithm applies: several nodes, the same number of ranks (> 1) on each */
bool mca_coll_qtopo_topo_hier_ok(const mca_coll_qtopo_module_t *m);

/* coll_qtopo_xport_pml.c: a transport over the PML; ranks maps group index to
 * communicator rank (NULL: the whole communicator) */
typedef struct mca_coll_qtopo_pml_ctx_t {
    struct ompi_communicator_t *comm;
    const int *ranks;
} mca_coll_qtopo_pml_ctx_t;

void mca_coll_qtopo_xport_pml_init(qtopo_xport_t *x, mca_coll_qtopo_pml_ctx_t *ctx,
                                   struct ompi_communicator_t *comm, const int *ranks,
                                   int rank, int size);

/* coll_qtopo_allreduce.c */
int mca_coll_qtopo_allreduce(const void *sbuf, void *rbuf, int count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                             struct ompi_communicator_t *comm, mca_coll_base_module_t *module);

END_C_DECLS

#endif /* MCA_COLL_QTOPO_EXPORT_H */
