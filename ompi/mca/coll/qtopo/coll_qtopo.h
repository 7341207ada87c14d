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
#include "ompi/mca/coll/base/coll_tags.h"
#include "opal/util/output.h"
#include "ompi/request/request.h"

#include "coll_qtopo_codec.h"
#include "coll_qtopo_compat.h"
#include "coll_qtopo_ef.h"
#include "coll_qtopo_nodes.h"
#include "coll_qtopo_policy.h"
#include "coll_qtopo_railsplit.h"
#include "coll_qtopo_xport.h"

BEGIN_C_DECLS

/* Values of coll_qtopo_algorithm. */
enum {
    QTOPO_ALG_AUTO = 0,
    QTOPO_ALG_FLAT = 1,
    QTOPO_ALG_HIER = 2,
};

/* Values of coll_qtopo_exact: who runs exact (32-bit) calls. */
enum {
    QTOPO_EXACT_AUTO = 0,   /* qtopo where measured faster (qtopo_exact_min_bytes), else handed on */
    QTOPO_EXACT_ALWAYS = 1, /* qtopo, from coll_qtopo_min_bytes on */
    QTOPO_EXACT_NEVER = 2,  /* always handed on: qtopo only quantizes */
};

/* Values of coll_qtopo_rail_eager. */
enum {
    QTOPO_EAGER_AUTO = 0, /* on network interfaces (UCX's TCP) with fixed rail weights */
    QTOPO_EAGER_ON = 1,
    QTOPO_EAGER_OFF = 2,
};

/*
 * Point-to-point tags of qtopo's own messages, at the far end of Open MPI's internal tag
 * range, which no other component reaches (QTOPO_TAG_FAR_END, coll_qtopo_compat.h). Data has a tag of its own, not MCA_COLL_BASE_TAG_ALLREDUCE: a message with
 * that tag arriving during qtopo's agreement can then only come from a rank that runs
 * MPI_Allreduce through another component (coll_qtopo_agree.c).
 */
#define QTOPO_TAG_OFF (QTOPO_TAG_FAR_END + 1)   /* "qtopo is off here" notice */
#define QTOPO_TAG_AGREE (QTOPO_TAG_FAR_END + 2) /* the per-call agreement */
#define QTOPO_TAG_RAILS (QTOPO_TAG_FAR_END + 4) /* the rail setup's exchanges */
#define QTOPO_TAG_FAILOVER (QTOPO_TAG_FAR_END + 5) /* "a rail failed in this call" notice */
/* The algorithms' messages: one tag per rail-failover epoch of the communicator (mod
 * QTOPO_DATA_EPOCHS), so that messages of a call abandoned at a rail failure can never
 * match those of the call's redo or of later calls (coll_qtopo_agree.c). */
#define QTOPO_DATA_EPOCHS 4096
#define QTOPO_TAG_DATA(epoch) (QTOPO_TAG_FAR_END + 16 + (int) ((epoch) % QTOPO_DATA_EPOCHS))

/* The parameters that decide what goes on the wire, read once per call (under the
 * MPI_T lock, so an MPI_T write from another thread cannot tear them) and compared
 * across ranks by the agreement before qtopo runs the call. */
enum {
    QTOPO_SET_BITS,
    QTOPO_SET_BLOCK,
    QTOPO_SET_ROUNDING,
    QTOPO_SET_SEED,
    QTOPO_SET_MIN_BYTES,
    QTOPO_SET_SEGMENT,
    QTOPO_SET_RATIO,
    QTOPO_SET_WARMUP,
    QTOPO_SET_RULES,
    QTOPO_SET_ALGORITHM,
    QTOPO_SET_HIER_MIN,
    QTOPO_SET_NODE_SIZE,
    QTOPO_SET_ERROR_BOUND,
    QTOPO_SET_ERROR_BOUND_MODE,
    QTOPO_SET_SCRATCH_MAX,
    QTOPO_SET_EXACT,
    QTOPO_NSETTINGS
};

typedef struct mca_coll_qtopo_settings_t {
    bool valid;                          /* every value usable (else reported once) */
    uint64_t wire[QTOPO_NSETTINGS];      /* the values above as integers (ratio: its bits,
                                          * rules: a hash of the text) */
    int bits, block_size, rounding, warmup, algorithm, exact;
    unsigned long long seed;
    size_t min_bytes, segment_size, hier_min_bytes, ef_max_bytes, scratch_max;
    double ratio;
    double error_bound;
    int error_bound_mode;
    bool error_feedback;
} mca_coll_qtopo_settings_t;

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
    unsigned long usec_node_rs;    /* ... in split-rail's node reduce-scatter */
    unsigned long usec_network;    /* ... in the phase across nodes (all of a flat call) */
    unsigned long usec_node_ag;    /* ... in split-rail's node allgather */
    unsigned long usec_agree;      /* in the per-call agreement (not in usec_total) */
} mca_coll_qtopo_counters_t;

/* Values of coll_qtopo_cuda. */
enum {
    QTOPO_CUDA_OFF = 0,  /* calls with device buffers are handed on */
    QTOPO_CUDA_AUTO = 1, /* device buffers are staged through host memory when the driver
                          * is there */
};

/* Memory kind of one rank's buffers in a call, agreed (coll_qtopo_agree.c: MAX over the
 * ranks decides). */
enum {
    QTOPO_MEM_HOST = 0,     /* host memory (or no CUDA driver: see coll_qtopo_allreduce.c) */
    QTOPO_MEM_STAGED = 1,   /* a device buffer, copied to host and back by this rank */
    QTOPO_MEM_UNUSABLE = 2, /* a device buffer this rank cannot run: every rank hands on */
};

/* Values of coll_qtopo_transport and coll_qtopo_rail_policy. */
enum {
    QTOPO_TRANSPORT_AUTO = 0, /* rails when UCX and >= 2 usable rails, else the PML */
    QTOPO_TRANSPORT_PML = 1,
    QTOPO_TRANSPORT_UCX = 2,
};
enum {
    QTOPO_RAIL_STRIPE = 0,  /* every message cut over all rails by weight */
    QTOPO_RAIL_ALIGNED = 1, /* local rank l sends on rail l mod R */
};

typedef struct mca_coll_qtopo_component_t {
    mca_coll_base_component_t super;

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
    double error_bound; /* > 0: the error-bounded mode, absolute or relative */
    int error_bound_mode; /* QTOPO_EB_ABS or QTOPO_EB_REL */
    bool error_feedback;
    size_t ef_max_bytes;
    size_t scratch_max; /* scratch memory of one call, bytes (0: no limit) */
    int cuda; /* QTOPO_CUDA_*: what qtopo does with device buffers */
    int algorithm;
    int exact;
    size_t hier_min_bytes;
    int node_size;
    int verbose;
    char *fault;        /* fault injection for tests, "what:rank:call" */
    /* rails (coll_qtopo_rails.c; read once per communicator, at its first call) */
    int transport;
    char *rails;
    char *rail_weights;
    int rail_policy;
    int rail_adapt_calls;
    double rail_timeout; /* seconds without progress before a rail is suspected */
    int rail_eager;      /* QTOPO_EAGER_*: rails send eagerly (coll_qtopo_rails.c) */

    int output; /* opal_output stream, verbosity = coll_qtopo_verbose */
    mca_coll_qtopo_counters_t counters;
    /* bytes per rail (rail index of the communicator's agreed list), process totals */
    unsigned long rail_bytes_sent[QTOPO_RAILS_MAX];
    unsigned long rail_bytes_recv[QTOPO_RAILS_MAX];
} mca_coll_qtopo_component_t;

OMPI_DECLSPEC extern mca_coll_qtopo_component_t mca_coll_qtopo_component;

/* qtopo's own rails of a communicator (coll_qtopo_rails.h; only with UCX) */
typedef struct mca_coll_qtopo_rails mca_coll_qtopo_rails_t;

typedef struct mca_coll_qtopo_module_t {
    mca_coll_base_module_t super;

    /* the allreduce that would run without qtopo, captured in module_enable */
    mca_coll_base_module_allreduce_fn_t prev_allreduce;
    mca_coll_base_module_t *prev_allreduce_module;

    /* true while qtopo's own allreduce runs on this communicator: a nested call
     * (Open MPI's internals during a communicator split) goes to prev. Only the thread
     * in the call touches it: MPI forbids concurrent collectives on one communicator. */
    bool busy;
    /* qtopo is off on this communicator for good, on every rank (coll_qtopo_agree.c) */
    bool off;
    /* the agreement's buffers, made with the module so that the agreement itself cannot
     * fail for memory: [2][QTOPO_AGREE_FIXED + comm size] words, and comm size labels */
    uint64_t *agree_buf;
    int *labels;
    /* sends of an abandoned agreement may still read agree_buf: never free it then */
    bool agree_buf_pinned;
    /* the last settings mismatch reported, so it is printed once */
    uint64_t reported_mismatch;

    /* node and rail groups, discovered on the first handled call */
    bool topo_ready;
    qtopo_nodes_t nodes;

    /* eligible calls so far: drives the ratio schedule and the stochastic-rounding key */
    uint64_t ncalls;
    /* the coll_qtopo_rules string last parsed, and its rules */
    char *rules_text;
    qtopo_rules_t rules;
    /* error-feedback residuals of this communicator (created on first use, dropped
     * whenever a call runs with error feedback off) */
    qtopo_ef_store_t *ef;
    bool ef_warned; /* "residual does not fit under the cap" was said */
    bool scratch_warned; /* "a call needs more than coll_qtopo_scratch_max" was said */

    /* scratch memory reused across calls (see module_scratch in coll_qtopo_allreduce.c) */
    void *scratch;
    size_t scratch_size;
    bool scratch_pinned; /* a failed call detached sends that may read it: never freed */

    /* rails: set up at the first call qtopo runs (same verdict on every rank); NULL
     * when the communicator's inter-node traffic goes through the PML */
    bool rails_decided;
    mca_coll_qtopo_rails_t *rails;
    /* rail failovers so far on this communicator (agreed): picks the data tags */
    uint32_t epoch;
    /* a copy of an in-place call's input while it runs on rails, for a redo */
    float *saved;
    size_t saved_size;
    /* host copy of a call's device buffer (QTOPO_MEM_STAGED) */
    float *staged;
    size_t staged_size;
    bool device_warned; /* "device buffers are handed on" was said */

    mca_coll_qtopo_counters_t counters; /* this communicator's share */
    int comm_size, comm_rank;
    char comm_name[MPI_MAX_OBJECT_NAME]; /* for the summary: the communicator is gone by then */
} mca_coll_qtopo_module_t;

OBJ_CLASS_DECLARATION(mca_coll_qtopo_module_t);

#define QTOPO_VERBOSE(level, ...)                                                   \
    opal_output_verbose((level), mca_coll_qtopo_component.output, "coll:qtopo: " __VA_ARGS__)

/* coll_qtopo_component.c */
/* Reads the parameters into *s under the MPI_T lock and checks them, with the module's
 * parsed rules (re-parsed when coll_qtopo_rules changed; m may be NULL); reports a bad
 * value once. Returns s->valid. */
bool mca_coll_qtopo_settings_read(mca_coll_qtopo_module_t *m, mca_coll_qtopo_settings_t *s);
/* Name of setting i (QTOPO_SET_*) as an MCA parameter. */
const char *mca_coll_qtopo_setting_name(int i);
/* Prints a text of help-coll-qtopo.txt once per job (from its first process). */
void mca_coll_qtopo_show_help(const char *topic, ...);
/* The same from the calling process, whichever it is. */
void mca_coll_qtopo_show_help_here(const char *topic, ...);
/* Adds a call's counts to the process totals and the module's. */
void mca_coll_qtopo_count(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_counters_t *delta);
/* Whether the test-only fault `what` ("alloc", "xport") is set for this rank and call. */
bool mca_coll_qtopo_fault(const char *what, int rank, uint64_t call);

/* coll_qtopo_agree.c */
/* Words of the agreement vector besides the node labels: ready, count, call, memory
 * kind, the settings, and one MIN-reduced word per rail (coll_qtopo_rails.h). */
#define QTOPO_AGREE_FIXED (7 + 2 * QTOPO_NSETTINGS + QTOPO_RAILS_MAX)

/* What the agreement decided for a call. */
typedef enum {
    QTOPO_RUN,      /* every rank runs the call with qtopo */
    QTOPO_HAND_ON,  /* every rank hands this call to the previous component */
    QTOPO_OFF,      /* qtopo is off on this communicator from now on, on every rank;
                     * this call is handed on */
} mca_coll_qtopo_verdict_t;

/*
 * The per-call agreement (protocol at the top of coll_qtopo_agree.c). memkind: this
 * rank's QTOPO_MEM_* (a device buffer this rank cannot run hands the call on
 * everywhere); ready: this rank can run the call (memory, valid settings); labels:
 * when not NULL, this rank's node
 * label is exchanged too and labels[0..size) receives every rank's; rail_words: this
 * rank's QTOPO_RAILS_MAX words for the rails, replaced by their MIN over all ranks when
 * the agreement completes (any verdict but off).
 */
mca_coll_qtopo_verdict_t mca_coll_qtopo_agree(mca_coll_qtopo_module_t *m,
                                              struct ompi_communicator_t *comm,
                                              const mca_coll_qtopo_settings_t *s, size_t count,
                                              int memkind, bool ready, int *labels,
                                              uint64_t *rail_words);
/* What a wait watches for besides its request (flags of mca_coll_qtopo_wait_watched). */
#define QTOPO_WATCH_FOREIGN 1  /* a rank running MPI_Allreduce through another component */
#define QTOPO_WATCH_FAILOVER 2 /* a rail-failover notice of the running call */
/* Waits for one PML request, watching for an "off" notice from any rank and what
 * `watch` says. OMPI_SUCCESS when it completed; OMPI_ERR_UNREACH on an off or failover
 * notice, OMPI_ERR_NOT_AVAILABLE on a foreign allreduce, the request still pending in
 * those cases. */
int mca_coll_qtopo_wait_watched(struct ompi_communicator_t *comm, ompi_request_t **req,
                                ompi_status_public_t *status, int watch);
/* One round of a dissemination allreduce over the PML with `tag`: `bytes` of v go to the
 * rank dist ahead, exactly as many come from the rank dist behind into in (another size
 * is OMPI_ERR_BAD_PARAM). Waits watch as `watch` says. On failure the receive is
 * cancelled and the send, with detached, detached (*detached set: v must outlive it),
 * else waited for. The caller combines in with v. */
int mca_coll_qtopo_exchange_round(struct ompi_communicator_t *comm, int tag, void *v, void *in,
                                  size_t bytes, int dist, int watch, bool *detached);
/* Which notice from some rank is waiting (an off notice first), for waits that poll
 * other requests than the PML's and for the end of a failed call. */
enum { QTOPO_NOTICE_NONE, QTOPO_NOTICE_OFF, QTOPO_NOTICE_FAILOVER };
int mca_coll_qtopo_notice(struct ompi_communicator_t *comm);
/* After a failure inside a call on this rank: tells every rank that qtopo is off. */
void mca_coll_qtopo_notify_off(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm);
/* After a rail failure seen by this rank inside a call: tells every rank. */
void mca_coll_qtopo_notify_failover(struct ompi_communicator_t *comm);

/* The end of a call that ran on rails (protocol in coll_qtopo_agree.c). In: this rank's
 * outcome and suspect[r] (this rank's rank where it saw rail r fail, else UINT64_MAX).
 * Out: whether every rank succeeded or can redo, and suspect[r] = the lowest rank that
 * saw rail r fail. Failover notices of the call are received before it returns. */
typedef struct mca_coll_qtopo_call_end {
    bool ok, can_redo, notified;
    uint64_t suspect[QTOPO_RAILS_MAX];
    double agreed_at; /* qtopo_now() when it completed */
} mca_coll_qtopo_call_end_t;
int mca_coll_qtopo_agree_end(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                             mca_coll_qtopo_call_end_t *e);

/* coll_qtopo_module.c */
int mca_coll_qtopo_init_query(bool enable_progress_threads, bool enable_mpi_threads);
mca_coll_base_module_t *mca_coll_qtopo_comm_query(struct ompi_communicator_t *comm,
                                                  int *priority);

/* coll_qtopo_topo.c: node structure of the communicator. The label of this rank's node
 * (equal labels = same node), exchanged by the first agreement; then the node and rail
 * groups built from every rank's label (-1 when out of memory). */
int mca_coll_qtopo_topo_label(struct ompi_communicator_t *comm, int node_size);
int mca_coll_qtopo_topo_build(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                              const int *labels);
/* the split-rail algorithm applies: several nodes, and more than one rank on some node
 * (the same number on each, or the folded form, coll_qtopo_hier.c) */
bool mca_coll_qtopo_topo_hier_ok(const mca_coll_qtopo_module_t *m);

/* coll_qtopo_xport_pml.c: a transport over the PML; ranks maps group index to
 * communicator rank (NULL: the whole communicator) */
typedef struct mca_coll_qtopo_pml_ctx_t {
    struct ompi_communicator_t *comm;
    const int *ranks;
    int tag;         /* QTOPO_TAG_DATA(epoch) */
    bool fail_waits; /* fault injection: every wait fails */
} mca_coll_qtopo_pml_ctx_t;

void mca_coll_qtopo_xport_pml_init(qtopo_xport_t *x, mca_coll_qtopo_pml_ctx_t *ctx,
                                   struct ompi_communicator_t *comm, const int *ranks,
                                   int rank, int size, int tag);
/* The abandon of one pending request of that transport, if it is a receive (recvs) or a
 * send (!recvs): a receive is cancelled, a send gets until `deadline` (qtopo_now() time)
 * to complete, then is detached. For transports built on this one. */
void mca_coll_qtopo_xport_pml_drop(qtopo_req_t *req, bool recvs, double deadline);

#if QTOPO_HAVE_UCX
/* coll_qtopo_rails.c: called by every rank at the first call qtopo runs on comm (after
 * the node map is built); sets m->rails when every rank can use the same rails. */
void mca_coll_qtopo_rails_setup(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm);
/* Closes the endpoints, destroys the workers and contexts; prints bytes per rail with
 * coll_qtopo_verbose >= 1. */
void mca_coll_qtopo_rails_destroy(mca_coll_qtopo_rails_t *rails, const char *comm_name);
/* Adaptive weights, at call number `call` (agreed): this rank's words for the agreement
 * (its measured rate per rail, QTOPO_RAIL_NO_RATE when it has none or no new weights
 * are due), then the new weights from the MIN-reduced words. */
void mca_coll_qtopo_rails_offer(mca_coll_qtopo_rails_t *rails, uint64_t call, uint64_t *words);
void mca_coll_qtopo_rails_accept(mca_coll_qtopo_rails_t *rails, uint64_t call,
                                 const uint64_t *words, const char *comm_name);
/* Whether any rail is still in service. */
bool mca_coll_qtopo_rails_usable(const mca_coll_qtopo_rails_t *rails);
/* This rank saw rail trouble in the running call; the suspects for the end agreement
 * (UINT64_MAX where none), and forgets them. */
bool mca_coll_qtopo_rails_troubled(const mca_coll_qtopo_rails_t *rails);
void mca_coll_qtopo_rails_take_suspects(mca_coll_qtopo_rails_t *rails, uint64_t *suspect);
/* Takes the rails that the end agreement found failed out of service (the same on every
 * rank), and starts the agreed epoch; one warning per failed rail. */
void mca_coll_qtopo_rails_fail(mca_coll_qtopo_rails_t *rails, const uint64_t *suspect,
                               uint32_t epoch, const char *comm_name);
/* The thread running a call on the rails holds them (see the progress callback). */
void mca_coll_qtopo_rails_hold(mca_coll_qtopo_rails_t *rails);
void mca_coll_qtopo_rails_release(mca_coll_qtopo_rails_t *rails);

/* coll_qtopo_xport_ucx.c: a transport over the rails for a group of communicator
 * ranks (ranks maps group index to communicator rank; NULL: the whole communicator);
 * peers on this rank's node go through the PML */
typedef struct mca_coll_qtopo_ucx_ctx_t {
    mca_coll_qtopo_rails_t *rails;
    struct ompi_communicator_t *comm;
    const int *ranks;
    bool fail_waits; /* fault injection: every wait fails */
    qtopo_xport_t pml_x; /* peers on this node; its handles are ompi_request_t pointers */
    mca_coll_qtopo_pml_ctx_t pml_ctx;
} mca_coll_qtopo_ucx_ctx_t;

void mca_coll_qtopo_xport_ucx_init(qtopo_xport_t *x, mca_coll_qtopo_ucx_ctx_t *ctx,
                                   mca_coll_qtopo_rails_t *rails,
                                   struct ompi_communicator_t *comm, const int *ranks, int rank,
                                   int size, int tag);
#endif

/* coll_qtopo_allreduce.c */
int mca_coll_qtopo_allreduce(const void *sbuf, void *rbuf, qtopo_coll_count_t count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                             struct ompi_communicator_t *comm, mca_coll_base_module_t *module);

END_C_DECLS

#endif /* MCA_COLL_QTOPO_EXPORT_H */
