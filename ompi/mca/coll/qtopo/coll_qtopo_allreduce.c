/*
 * coll/qtopo MPI_Allreduce entry point: decides whether qtopo runs the call or hands
 * it, untouched, to the module that would have run it without qtopo; picks the
 * setting (joint-layer rules, ratio schedule) and runs the algorithm over the PML
 * transport: the exact ring when lossless, scatter-reduce-allgather when quantized,
 * split-rail across nodes.
 *
 * A call that qtopo would take by its arguments and this rank's settings is run only
 * after the per-call agreement (coll_qtopo_agree.c): every rank prepares the call
 * (settings, scratch memory), then all learn together whether every rank is ready and
 * configured alike, so a local failure (an allocation, a bad value, a setting that
 * differs) hands the call on on every rank, or turns qtopo off on every rank. What the
 * algorithms then do depends only on agreed values (count, settings, node map, call
 * number), never on buffer addresses, timings or local state. Error-feedback state is
 * local, but it only changes the values a rank encodes, never the path.
 *
 * GPU buffers (memory kind): a device pointer is never read as host memory. Each rank
 * classifies its buffers (coll_qtopo_cuda.h: the CUDA driver's pointer attributes) and
 * the class goes into the agreement (QTOPO_MEM_*): a rank that cannot run its device
 * buffer (coll_qtopo_cuda 0, qtopo built without CUDA, no memory for the copy, a failed
 * copy) makes every rank hand the call on; otherwise a rank with a device buffer copies
 * it to host memory before the agreement, runs the host algorithm on the copy, and
 * copies the result back. Without the CUDA driver no buffer can be classified as device
 * memory, and all are taken as host memory: that is sound because only a CUDA-aware MPI
 * accepts device pointers in MPI_Allreduce (Debian's Open MPI 4.1 is not), and a
 * CUDA-aware one needs the driver, which qtopo then finds. (Quantizing on the GPU and
 * pipelining encoded segments with the network is not done yet: README, GPU buffers.)
 */

#include "ompi_config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "coll_qtopo.h"
#include "coll_qtopo_algo.h"
#include "coll_qtopo_cuda.h"
#if QTOPO_HAVE_UCX
#include "coll_qtopo_rails.h"
#endif

#include "ompi/datatype/ompi_datatype.h"

/* Scratch memory above this size is released after the call that needed it: a single
 * huge call must not pin gigabytes until the communicator is freed. Below it the
 * memory is kept, since training loops repeat the same sizes. */
#define QTOPO_SCRATCH_KEEP_BYTES ((size_t) 64 << 20)

/* How one call is run. */
typedef struct qtopo_call {
    int bits;      /* 32: exact; 0: error-bounded */
    int eb_mode;   /* QTOPO_EB_*, with the bound error_bound (absolute once the call runs) */
    double error_bound;
    int block;
    size_t segment;
    uint64_t index; /* eligible call number on the communicator */
    bool hier;     /* split-rail */
    void *scratch;
    int memkind;   /* this rank's QTOPO_MEM_* */
    const void *ef_key; /* the user's send buffer: keys error-feedback residuals */
} qtopo_call_t;

/* MPI_FLOAT, and the Fortran MPI_REAL and MPI_REAL4 where they are 4-byte floats in
 * this Open MPI (REAL can be 8 bytes in a build with a promoted default real; REAL4
 * exists only in an Open MPI built with Fortran). */
static bool is_float_type(struct ompi_datatype_t *dtype)
{
    size_t size = 0;

    if (MPI_FLOAT == dtype) {
        return true;
    }
    if (MPI_REAL != dtype
#if OMPI_HAVE_FORTRAN_REAL4
        && MPI_REAL4 != dtype
#endif
    ) {
        return false;
    }
    return OMPI_SUCCESS == ompi_datatype_type_size(dtype, &size) && sizeof(float) == size;
}

/* The call is one qtopo could run, by its arguments and this rank's settings; reads
 * the settings into *s. */
static bool call_eligible(mca_coll_qtopo_module_t *m, qtopo_coll_count_t count,
                          struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                          mca_coll_qtopo_settings_t *s)
{
    if (m->busy || m->off || MPI_SUM != op || !is_float_type(dtype)) {
        return false;
    }
    (void) mca_coll_qtopo_settings_read(m, s);
    return (size_t) count * sizeof(float) >= s->min_bytes;
}

/* Residuals made while error feedback was on are stale once a call ran without it. */
static void drop_stale_residuals(mca_coll_qtopo_module_t *m)
{
    if (NULL != m->ef && !mca_coll_qtopo_component.error_feedback) {
        qtopo_ef_store_destroy(m->ef);
        m->ef = NULL;
    }
}

static int hand_on(mca_coll_qtopo_module_t *m, const void *sbuf, void *rbuf,
                   qtopo_coll_count_t count, struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                   struct ompi_communicator_t *comm)
{
    mca_coll_qtopo_counters_t fallback = {0};

    fallback.calls_fallback = 1;
    mca_coll_qtopo_count(m, &fallback);
    drop_stale_residuals(m);
    return m->prev_allreduce(sbuf, rbuf, count, dtype, op, comm, m->prev_allreduce_module);
}

/* The joint-layer rule for this size, else the global parameters; quantized only when
 * the ratio schedule says so for this call. */
static void choose_setting(const mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                           size_t bytes, qtopo_call_t *call)
{
    const qtopo_rule_t *rule = qtopo_rules_match(&m->rules, bytes);

    call->index = m->ncalls;
    call->bits = NULL != rule ? rule->bits : s->bits;
    call->eb_mode = NULL != rule ? rule->eb_mode
                                 : (0.0 < s->error_bound ? s->error_bound_mode : QTOPO_EB_OFF);
    call->error_bound = NULL != rule ? rule->error_bound : s->error_bound;
    call->bits = QTOPO_EB_OFF != call->eb_mode ? 0 : call->bits;
    call->block = NULL != rule && 0 != rule->block ? rule->block : s->block_size;
    call->segment = NULL != rule && 0 != rule->segment ? rule->segment : s->segment_size;
    if (32 != call->bits
        && !qtopo_schedule_quantize(call->index, s->ratio, (uint64_t) s->warmup)) {
        call->bits = 32;
        call->eb_mode = QTOPO_EB_OFF;
    }
}

/*
 * Relative error bound: E times a lower bound of max |result|. Every rank sends a sample
 * of QTOPO_REL_SAMPLES evenly spaced elements (as doubles, with their |x|) to every other
 * rank over qtopo's own transport, and each sums them in rank order: the same exact-ish
 * sums, hence the same E, on every rank. The largest |sample sum| less its rounding bound
 * is a lower bound of max |result|, which keeps the guarantee |error| <= E max |result|
 * without knowing the result before it is computed. The alternatives: agreeing on the
 * true max |result| would need every owner's reduced values before the second
 * quantization (a barrier per segment); a bound from the inputs alone (max |x|) bounds
 * max |result| only from above, which breaks the guarantee under cancellation. Cost: one
 * 2 KiB message to and from every peer per call. (Not the previous component's
 * allreduce: its tag is how the agreement recognises a rank that runs without qtopo.)
 * The scratch memory, allocated before the agreement, holds the samples; the algorithm
 * reuses it afterwards.
 */
#define QTOPO_REL_SAMPLES 128

static size_t sample_bytes(int n)
{
    return (size_t) n * (2 * QTOPO_REL_SAMPLES * sizeof(double) + 2 * sizeof(qtopo_req_t));
}

/* all[p * len ...] holds rank p's len doubles on return (ours are there already). */
static int exchange_samples(struct ompi_communicator_t *comm, int rank, int n, double *all,
                            size_t len, qtopo_req_t *reqs, int tag)
{
    size_t bytes = len * sizeof(double);
    mca_coll_qtopo_pml_ctx_t ctx;
    qtopo_xport_t x;
    int p, rc = QTOPO_XPORT_OK;

    mca_coll_qtopo_xport_pml_init(&x, &ctx, comm, NULL, rank, n, tag);
    for (p = 0; p < 2 * n; ++p) {
        reqs[p] = (qtopo_req_t) QTOPO_REQ_INIT;
    }
    for (p = 0; QTOPO_XPORT_OK == rc && p < n; ++p) {
        rc = p == rank ? rc : x.irecv(&x, p, all + (size_t) p * len, bytes, &reqs[p]);
    }
    for (p = 0; QTOPO_XPORT_OK == rc && p < n; ++p) {
        rc = p == rank ? rc : x.isend(&x, p, all + (size_t) rank * len, bytes, &reqs[n + p]);
    }
    rc = qtopo_xport_finish(&x, reqs, 2 * n, rc);
    for (p = 0; QTOPO_XPORT_OK == rc && p < n; ++p) {
        rc = p == rank || reqs[p].bytes == bytes ? rc : QTOPO_XPORT_ERR;
    }
    return QTOPO_XPORT_OK == rc ? OMPI_SUCCESS : OMPI_ERROR;
}

static int relative_to_absolute(const mca_coll_qtopo_module_t *m,
                                struct ompi_communicator_t *comm, const float *src,
                                size_t count, qtopo_call_t *call)
{
    int n = m->comm_size, p, rc;
    size_t k = count < QTOPO_REL_SAMPLES ? count : QTOPO_REL_SAMPLES, len = 2 * k, j;
    double *all = call->scratch, *mine = all + (size_t) m->comm_rank * len, lower = 0.0;
    double nu = (double) n * 0x1p-53, gamma = nu / (1.0 - nu);

    for (j = 0; j < k; ++j) {
        mine[j] = (double) src[j * count / k];
        mine[k + j] = fabs(mine[j]);
    }
    rc = exchange_samples(comm, m->comm_rank, n, all, len,
                          (qtopo_req_t *) (all + (size_t) n * 2 * QTOPO_REL_SAMPLES),
                          QTOPO_TAG_DATA(m->epoch));
    for (j = 0; OMPI_SUCCESS == rc && j < k; ++j) {
        double sum = 0.0, mag = 0.0;
        for (p = 0; p < n; ++p) {
            sum += all[(size_t) p * len + j];
            mag += all[(size_t) p * len + k + j];
        }
        lower = fmax(lower, fabs(sum) - gamma * mag); /* NaN/Inf: skipped */
    }
    call->error_bound *= lower;
    call->eb_mode = QTOPO_EB_ABS;
    return rc;
}

/*
 * hier takes the split-rail path wherever the topology allows it; auto does so for every
 * quantized call and for exact ones from coll_qtopo_hier_min_bytes on. Split-rail
 * quantizes only node sums, so it sends 1/L of the flat algorithm's codes per rank; for
 * exact calls it saves nothing on the wire and adds two node phases, which pays only on
 * large buffers (see coll_qtopo_component.c for the measurement). On nodes with unequal
 * rank counts (the folded form) auto takes it for 8- and 16-bit calls only. Measured on
 * the test bed, 2,2,2,1 ranks, ms per call folded / flat: 8-bit 11.3 / 15.3 (1 MiB),
 * 168 / 225 (16 MiB), 794 / 947 (64 MiB); 4-bit 24.2 / 18.5, 107 / 145, 868 / 531;
 * exact 21.5 / 41.4, 322 / 318, 1755 / 1352 (README, Algorithms).
 */
static bool use_hier(const mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                     const qtopo_call_t *call, size_t bytes)
{
    if (QTOPO_ALG_FLAT == s->algorithm || !mca_coll_qtopo_topo_hier_ok(m)) {
        return false;
    }
    if (!qtopo_nodes_uniform(&m->nodes)) {
        return QTOPO_ALG_HIER == s->algorithm || (8 <= call->bits && 32 != call->bits);
    }
    return QTOPO_ALG_HIER == s->algorithm || 32 != call->bits || bytes >= s->hier_min_bytes;
}

/* Split-rail's width: the ranks per node that take part in it (the fewest on any node;
 * the others fold into them). */
static int hier_width(const mca_coll_qtopo_module_t *m)
{
    return m->nodes.min_local;
}

/* The layout of the exact-call table (coll_qtopo_policy.h), from the agreed node map. */
static int exact_layout(const mca_coll_qtopo_module_t *m)
{
    if (1 == m->nodes.nnodes) {
        return QTOPO_LAYOUT_ONE_NODE;
    }
    return mca_coll_qtopo_topo_hier_ok(m) && qtopo_nodes_uniform(&m->nodes) ? QTOPO_LAYOUT_SPLIT
                                                                           : QTOPO_LAYOUT_FLAT;
}

/*
 * coll_qtopo_exact: an exact call goes to the previous component always (never), or
 * where qtopo's own algorithms were measured slower than it (auto; the layout comes from
 * the node map, so auto decides from the second call on: the first call, which agrees
 * the node map, runs in qtopo). Depends only on values that are equal on every rank
 * (settings, count, call number, the node map of the first call), so every rank decides
 * alike without a message; ranks whose settings differ end up in the agreement's "ranks
 * that do not take part" path (coll_qtopo_agree.c).
 */
static bool exact_handed_on(const mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                            const qtopo_call_t *call, size_t bytes)
{
    if (32 != call->bits || QTOPO_EXACT_ALWAYS == s->exact) {
        return false;
    }
    if (QTOPO_EXACT_NEVER == s->exact) {
        return true;
    }
    return m->topo_ready && bytes < qtopo_exact_min_bytes(exact_layout(m), m->comm_size);
}

/* Pinned memory (sends of an abandoned call may still read it) is left allocated. */
static void release_scratch(mca_coll_qtopo_module_t *m)
{
    if (!m->scratch_pinned) {
        free(m->scratch);
    }
    m->scratch_pinned = false;
    m->scratch = NULL;
    m->scratch_size = 0;
}

/* Scratch memory, the copy of an in-place input and the host copy of a device buffer
 * above QTOPO_SCRATCH_KEEP_BYTES are not kept between calls. */
static void release_large_buffers(mca_coll_qtopo_module_t *m)
{
    bool pinned = m->scratch_pinned;

    if (QTOPO_SCRATCH_KEEP_BYTES < m->scratch_size) {
        release_scratch(m);
    }
    if (QTOPO_SCRATCH_KEEP_BYTES < m->saved_size) {
        free(m->saved);
        m->saved = NULL;
        m->saved_size = 0;
    }
    if (QTOPO_SCRATCH_KEEP_BYTES < m->staged_size) {
        if (!pinned) {
            free(m->staged); /* else an abandoned attempt's sends may still read it */
        }
        m->staged = NULL;
        m->staged_size = 0;
    }
}

/* The module's scratch memory, grown to at least `bytes`; NULL if out of memory. */
static void *module_scratch(mca_coll_qtopo_module_t *m, size_t bytes)
{
    void *p;

    if (bytes <= m->scratch_size) {
        return m->scratch;
    }
    /* no realloc: the old contents are not needed, and a copy would double the peak */
    release_scratch(m);
    p = malloc(bytes);
    if (NULL != p) {
        m->scratch = p;
        m->scratch_size = bytes;
    }
    return p;
}

static void fill_sra_args(const mca_coll_qtopo_settings_t *s, struct ompi_communicator_t *comm,
                          const qtopo_call_t *call, qtopo_sra_args_t *a)
{
    a->codec.bits = 0 != call->bits ? call->bits : 8; /* error-bounded: not used */
    a->codec.block = call->block;
    a->codec.rounding = s->rounding;
    a->seg_bytes = call->segment;
    a->seed = s->seed;
    a->call = call->index;
    a->key_rank = (uint32_t) ompi_comm_rank(comm);
    a->elem_base = 0;
    a->residual = NULL;
    a->error_bounded = QTOPO_EB_OFF != call->eb_mode;
    a->error_bound = call->error_bound;
    a->scratch_max = s->scratch_max;
}

static size_t scratch_bytes(const mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                            struct ompi_communicator_t *comm, size_t count,
                            const qtopo_call_t *call)
{
    qtopo_hier_args_t a;
    size_t bytes;

    fill_sra_args(s, comm, call, &a.sra);
    if (call->hier) {
        a.seg_bytes = call->segment;
        a.quantize = 32 != call->bits;
        bytes = qtopo_nodes_uniform(&m->nodes)
                    ? qtopo_hier_scratch_bytes(count, hier_width(m), m->nodes.nnodes, &a)
                    : qtopo_hier_folded_scratch_bytes(count, hier_width(m), m->nodes.nnodes, &a);
    } else {
        bytes = 32 == call->bits ? qtopo_ring_scratch_bytes(count, m->comm_size, call->segment,
                                                            s->scratch_max)
                                 : qtopo_sra_scratch_bytes(count, m->comm_size, &a.sra);
    }
    /* the samples of the relative bound use the same memory before the algorithm does */
    if (QTOPO_EB_REL == call->eb_mode && bytes < sample_bytes(m->comm_size)) {
        bytes = sample_bytes(m->comm_size);
    }
    return bytes;
}

static bool scratch_fits(const mca_coll_qtopo_settings_t *s, size_t bytes)
{
    return 0 == s->scratch_max || bytes <= s->scratch_max;
}

/* The scratch size is a function of agreed values (count, settings, node map), so every
 * rank finds the same and hands the call on; rank 0 says so, once per communicator. */
static void scratch_too_large(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                              size_t count, size_t bytes, size_t max)
{
    if (0 == m->comm_rank && !m->scratch_warned) {
        opal_output(0, "coll:qtopo: %s: an allreduce of %zu floats needs %zu bytes of scratch "
                    "memory, more than coll_qtopo_scratch_max (%zu); such calls run through "
                    "the previous component", comm->c_name, count, bytes, max);
    }
    m->scratch_warned = true;
}

/* Everything a call needs that can fail on this rank alone, before the agreement:
 * the setting, the algorithm, the scratch memory. False when this rank cannot run it. */
static bool prepare_call(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                         struct ompi_communicator_t *comm, size_t count, qtopo_call_t *call)
{
    size_t bytes;

    if (!s->valid) {
        return false;
    }
    choose_setting(m, s, count * sizeof(float), call);
    call->hier = use_hier(m, s, call, count * sizeof(float));
    if (mca_coll_qtopo_fault("alloc", m->comm_rank, call->index)) {
        return false;
    }
    bytes = scratch_bytes(m, s, comm, count, call);
    if (call->hier && !scratch_fits(s, bytes)) {
        /* split-rail's node stage is half the buffer: the flat algorithms fit finer */
        call->hier = false;
        bytes = scratch_bytes(m, s, comm, count, call);
    }
    if (!scratch_fits(s, bytes)) {
        scratch_too_large(m, comm, count, bytes, s->scratch_max);
        return false;
    }
    call->scratch = module_scratch(m, bytes);
    return NULL != call->scratch;
}

/* The first call on a communicator also exchanges the node labels and builds the node
 * map, then agrees a second time, since building and preparing can fail on one rank. */
static mca_coll_qtopo_verdict_t agree_first_call(mca_coll_qtopo_module_t *m,
                                                 struct ompi_communicator_t *comm,
                                                 const mca_coll_qtopo_settings_t *s,
                                                 size_t count, qtopo_call_t *call)
{
    mca_coll_qtopo_verdict_t v;
    bool ready;

    uint64_t none[QTOPO_RAILS_MAX];

    /* no rails yet: nothing to offer */
    memset(none, 0xff, sizeof(none));
    m->labels[m->comm_rank] = mca_coll_qtopo_topo_label(comm, mca_coll_qtopo_component.node_size);
    v = mca_coll_qtopo_agree(m, comm, s, count, call->memkind, s->valid, m->labels, none);
    if (QTOPO_RUN != v) {
        return v;
    }
    ready = 0 == mca_coll_qtopo_topo_build(m, comm, m->labels)
            && prepare_call(m, s, comm, count, call);
    v = mca_coll_qtopo_agree(m, comm, s, count, call->memkind, ready, NULL, none);
    if (QTOPO_RUN != v) {
        /* some rank has no node map: every rank starts over on the next call */
        qtopo_nodes_free(&m->nodes);
        m->topo_ready = false;
    }
    return v;
}

/* The rails' words of the agreement (adaptive weights, coll_qtopo_rails.h). */
static void offer_rail_words(const mca_coll_qtopo_module_t *m, uint64_t *words)
{
    memset(words, 0xff, sizeof(uint64_t) * QTOPO_RAILS_MAX);
#if QTOPO_HAVE_UCX
    if (NULL != m->rails) {
        mca_coll_qtopo_rails_offer(m->rails, m->ncalls, words);
    }
#endif
}

static void accept_rail_words(const mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                              const uint64_t *words)
{
#if QTOPO_HAVE_UCX
    if (NULL != m->rails) {
        mca_coll_qtopo_rails_accept(m->rails, m->ncalls, words, comm->c_name);
    }
#else
    (void) m;
    (void) comm;
    (void) words;
#endif
}

static mca_coll_qtopo_verdict_t agree_call(mca_coll_qtopo_module_t *m,
                                           struct ompi_communicator_t *comm,
                                           const mca_coll_qtopo_settings_t *s, size_t count,
                                           qtopo_call_t *call)
{
    mca_coll_qtopo_verdict_t v;

    uint64_t words[QTOPO_RAILS_MAX];

    if (!m->topo_ready) {
        v = agree_first_call(m, comm, s, count, call);
    } else {
        offer_rail_words(m, words);
        v = mca_coll_qtopo_agree(m, comm, s, count, call->memkind,
                                 prepare_call(m, s, comm, count, call), NULL, words);
        if (QTOPO_OFF != v) {
            accept_rail_words(m, comm, words);
        }
    }
    if (QTOPO_OFF != v) {
        m->ncalls++; /* the same verdict everywhere: the count stays equal */
    }
    return v;
}

/* The error-feedback residual of this (communicator, buffer, count), or NULL. Local:
 * without it this rank encodes its values as they are, on the same path. */
static float *ef_residual(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm,
                          const mca_coll_qtopo_settings_t *s, const void *src, size_t count,
                          bool hier)
{
    int width = hier_width(m), l = m->nodes.local_rank;
    size_t len = hier ? qtopo_hier_residual_len(count, width, l) : count;
    /* the residual's elements: all of them (flat) or this rank's pieces (split-rail) */
    uint64_t layout = hier ? ((uint64_t) width << 32 | (uint64_t) l) : 0;
    float *r;

    if (hier && l >= width) {
        return NULL; /* folded into a core rank: it quantizes nothing */
    }
    if (NULL == m->ef) {
        m->ef = qtopo_ef_store_create(s->ef_max_bytes);
    }
    r = qtopo_ef_lookup_layout(m->ef, QTOPO_COMM_ID(comm), (uintptr_t) src, count, len, layout);
    if (NULL == r && !m->ef_warned) {
        m->ef_warned = true;
        opal_output(0, "coll:qtopo: rank %d: no room for the error-feedback residual of %zu "
                    "floats on %s (coll_qtopo_ef_max_bytes = %zu): such calls run without error "
                    "feedback on this rank", m->comm_rank, len, comm->c_name, s->ef_max_bytes);
    }
    return r;
}

static int xport_rc(int rc)
{
    return QTOPO_XPORT_OK == rc ? OMPI_SUCCESS : OMPI_ERROR;
}

/* The first call every rank runs on the communicator (the same one everywhere): its
 * rails are set up and agreed (coll_qtopo_rails.c), or the PML it is. */
static void decide_rails(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm)
{
#if QTOPO_HAVE_UCX
    mca_coll_qtopo_rails_setup(m, comm);
#else
    m->rails_decided = true;
    if (QTOPO_TRANSPORT_UCX == mca_coll_qtopo_component.transport && 0 == m->comm_rank
        && 1 < m->nodes.nnodes) {
        mca_coll_qtopo_show_help_here("rails-no-ucx");
    }
#endif
}

/* The rails are this thread's while the call runs (the progress callback leaves them). */
static void hold_rails(mca_coll_qtopo_module_t *m, bool hold)
{
#if QTOPO_HAVE_UCX
    if (NULL != m->rails && hold) {
        mca_coll_qtopo_rails_hold(m->rails);
    } else if (NULL != m->rails) {
        mca_coll_qtopo_rails_release(m->rails);
    }
#else
    (void) m;
    (void) hold;
#endif
}

/* What a transport of either kind needs. */
typedef struct xport_ctx {
    mca_coll_qtopo_pml_ctx_t pml;
#if QTOPO_HAVE_UCX
    mca_coll_qtopo_ucx_ctx_t ucx;
#endif
} xport_ctx_t;

/* The call goes over qtopo's rails (agreed at setup; a rail failure takes rails out of
 * service on every rank alike). */
static bool on_rails(const mca_coll_qtopo_module_t *m)
{
#if QTOPO_HAVE_UCX
    return NULL != m->rails && mca_coll_qtopo_rails_usable(m->rails);
#else
    (void) m;
    return false;
#endif
}

/* The transport across nodes to the ranks `ranks` (NULL: all) of comm: the rails where
 * the communicator has them, else the PML. */
static void network_xport(const mca_coll_qtopo_module_t *m, bool fail_waits, qtopo_xport_t *x,
                          xport_ctx_t *ctx, struct ompi_communicator_t *comm, const int *ranks,
                          int rank, int size)
{
#if QTOPO_HAVE_UCX
    if (on_rails(m)) {
        mca_coll_qtopo_xport_ucx_init(x, &ctx->ucx, m->rails, comm, ranks, rank, size,
                                      QTOPO_TAG_DATA(m->epoch));
        ctx->ucx.fail_waits = fail_waits;
        return;
    }
#endif
    mca_coll_qtopo_xport_pml_init(x, &ctx->pml, comm, ranks, rank, size, QTOPO_TAG_DATA(m->epoch));
    ctx->pml.fail_waits = fail_waits;
}

/* Flat: the exact ring, or scatter-reduce-allgather when quantized, over all ranks in
 * node order (coll_qtopo_nodes.h): with ranks dealt to nodes round-robin (mpirun
 * --map-by node) a ring in rank order would cross the network at every hop, in node
 * order it does so once per node. The order comes from the node labels of the first
 * call's agreement, so it is the same on every rank; keys of stochastic rounding stay the
 * communicator ranks. */
static int run_flat(const mca_coll_qtopo_module_t *m, bool fail_waits,
                    struct ompi_communicator_t *comm, const float *src, float *rbuf,
                    size_t count, const qtopo_call_t *call, qtopo_sra_args_t *a,
                    qtopo_sra_stats_t *stats)
{
    int size = ompi_comm_size(comm), rc;
    double t0 = qtopo_now();
    xport_ctx_t ctx;
    qtopo_xport_t x;

    network_xport(m, fail_waits, &x, &ctx, comm, m->nodes.order, m->nodes.order_index, size);
    if (32 == call->bits) {
        rc = qtopo_ring_allreduce(&x, src, rbuf, count, call->segment, a->scratch_max,
                                  call->scratch);
        stats->bytes_sent = qtopo_ring_bytes_sent(count, size, x.rank, QTOPO_RING_BOTH);
    } else {
        rc = qtopo_sra_allreduce(&x, src, rbuf, count, a, call->scratch, stats);
    }
    stats->phase_seconds[QTOPO_PHASE_NETWORK] = qtopo_now() - t0;
    return xport_rc(rc);
}

/* Split-rail on nodes with unequal rank counts: the core (the first hier_width() local
 * ranks of every node) runs it, the other ranks fold into the core over fold_x. */
static int run_folded(const mca_coll_qtopo_module_t *m, bool fail_waits,
                      struct ompi_communicator_t *comm, const float *src, float *rbuf,
                      size_t count, const qtopo_call_t *call, const qtopo_hier_args_t *a,
                      qtopo_sra_stats_t *stats)
{
    const qtopo_nodes_t *t = &m->nodes;
    mca_coll_qtopo_pml_ctx_t fold_ctx, node_ctx;
    xport_ctx_t rail_ctx;
    qtopo_xport_t fold_x, node_x, rail_x;
    int width = hier_width(m);
    bool core = t->local_rank < width;

    mca_coll_qtopo_xport_pml_init(&fold_x, &fold_ctx, comm, t->node_ranks, t->local_rank,
                                  t->local_size, QTOPO_TAG_DATA(m->epoch));
    fold_ctx.fail_waits = fail_waits;
    if (core) {
        mca_coll_qtopo_xport_pml_init(&node_x, &node_ctx, comm, t->node_ranks, t->local_rank,
                                      width, QTOPO_TAG_DATA(m->epoch));
        node_ctx.fail_waits = fail_waits;
        network_xport(m, fail_waits, &rail_x, &rail_ctx, comm, t->rail_ranks, t->rail_index,
                      t->rail_size);
    }
    return xport_rc(qtopo_hier_folded_allreduce(&fold_x, width, core ? &node_x : NULL,
                                                core ? &rail_x : NULL, src, rbuf, count, a,
                                                call->scratch, stats));
}

/* Hierarchical: fp32 inside the node, the flat algorithm on the rail group. */
static int run_hier(const mca_coll_qtopo_module_t *m, bool fail_waits,
                    struct ompi_communicator_t *comm, const float *src, float *rbuf,
                    size_t count, const qtopo_call_t *call, const qtopo_sra_args_t *sra,
                    qtopo_sra_stats_t *stats)
{
    const qtopo_nodes_t *t = &m->nodes;
    mca_coll_qtopo_pml_ctx_t node_ctx;
    xport_ctx_t rail_ctx;
    qtopo_xport_t node_x, rail_x;
    qtopo_hier_args_t a;

    a.seg_bytes = call->segment;
    a.quantize = 32 != call->bits;
    a.sra = *sra;
    if (!qtopo_nodes_uniform(t)) {
        return run_folded(m, fail_waits, comm, src, rbuf, count, call, &a, stats);
    }
    mca_coll_qtopo_xport_pml_init(&node_x, &node_ctx, comm, t->node_ranks, t->local_rank,
                                  t->local_size, QTOPO_TAG_DATA(m->epoch));
    node_ctx.fail_waits = fail_waits;
    network_xport(m, fail_waits, &rail_x, &rail_ctx, comm, t->rail_ranks, t->rail_index,
                  t->rail_size);
    return xport_rc(qtopo_hier_allreduce(&node_x, &rail_x, src, rbuf, count, &a, call->scratch,
                                         stats));
}

/*
 * Quantized results are bit-identical on every rank only if every rank decodes with
 * the same arithmetic: a process with flush-to-zero or denormals-are-zero on (a
 * framework's "flush denormal" switch) would turn denormal scales and sums into 0
 * where the others do not. The call runs with both off and restores the caller's mode.
 */
static unsigned fp_mode_enter(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned saved = _mm_getcsr();

    _mm_setcsr(saved & ~(unsigned) (_MM_FLUSH_ZERO_ON | 0x0040 /* DAZ */));
    return saved;
#else
    return 0;
#endif
}

static void fp_mode_leave(unsigned saved)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(saved);
#else
    (void) saved;
#endif
}

static int run_call(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                    const float *src, float *rbuf, size_t count, struct ompi_communicator_t *comm,
                    qtopo_call_t *call)
{
    mca_coll_qtopo_counters_t k = {0};
    qtopo_sra_stats_t stats = {0};
    qtopo_sra_args_t a;
    bool fail;
    double t0 = qtopo_now();
    unsigned fp_mode;
    int rc;

    if (QTOPO_EB_REL == call->eb_mode) {
        rc = relative_to_absolute(m, comm, src, count, call);
        if (OMPI_SUCCESS != rc) {
            return rc;
        }
    }
    fp_mode = fp_mode_enter();
    fill_sra_args(s, comm, call, &a);
    /* error feedback would add last call's residual, outside the error bound */
    if (32 != call->bits && s->error_feedback && QTOPO_EB_OFF == call->eb_mode) {
        a.residual = ef_residual(m, comm, s, call->ef_key, count, call->hier);
    }
    fail = mca_coll_qtopo_fault("xport", m->comm_rank, call->index);
    if (call->hier) {
        rc = run_hier(m, fail, comm, src, rbuf, count, call, &a, &stats);
    } else {
        rc = run_flat(m, fail, comm, src, rbuf, count, call, &a, &stats);
    }
    fp_mode_leave(fp_mode);
    if (OMPI_SUCCESS != rc) {
        return rc;
    }
    k.calls_handled = 1;
    k.bytes_wire = (unsigned long) stats.bytes_sent;
    k.usec_code = (unsigned long) (stats.code_seconds * 1e6);
    k.calls_quantized = 32 != call->bits;
    k.bytes_logical = (unsigned long) (count * sizeof(float));
    k.usec_total = (unsigned long) ((qtopo_now() - t0) * 1e6);
    k.usec_node_rs = (unsigned long) (stats.phase_seconds[QTOPO_PHASE_NODE_RS] * 1e6);
    k.usec_network = (unsigned long) (stats.phase_seconds[QTOPO_PHASE_NETWORK] * 1e6);
    k.usec_node_ag = (unsigned long) (stats.phase_seconds[QTOPO_PHASE_NODE_AG] * 1e6);
    mca_coll_qtopo_count(m, &k);
    QTOPO_VERBOSE(2, "allreduce #%lu of %zu floats on %s: %s, %d bits (0: error bound %g), "
                  "block %d, segment %zu; %.3f ms: node reduce-scatter %.3f, network %.3f "
                  "(coding %.3f), node allgather %.3f", (unsigned long) call->index, count,
                  comm->c_name, call->hier ? "hier" : "flat", call->bits, call->error_bound,
                  call->block, call->segment, 1e-3 * (double) k.usec_total,
                  1e3 * stats.phase_seconds[QTOPO_PHASE_NODE_RS],
                  1e3 * stats.phase_seconds[QTOPO_PHASE_NETWORK], 1e3 * stats.code_seconds,
                  1e3 * stats.phase_seconds[QTOPO_PHASE_NODE_AG]);
    return OMPI_SUCCESS;
}

/* The input of a call on rails, kept for a redo after a rail failure: the send buffer,
 * or a copy of an in-place call's input (NULL when there is no memory for it). */
static const float *keep_input(mca_coll_qtopo_module_t *m, const float *src, const float *rbuf,
                               size_t count)
{
    size_t bytes = count * sizeof(float);

    if (src != rbuf) {
        return src; /* MPI forbids the buffers to overlap: the algorithms never write it */
    }
    if (m->saved_size < bytes) {
        free(m->saved);
        m->saved = malloc(bytes);
        m->saved_size = NULL != m->saved ? bytes : 0;
    }
    if (NULL != m->saved) {
        memcpy(m->saved, src, bytes);
    }
    return m->saved;
}

#if QTOPO_HAVE_UCX
/* Test-only fault "rail:RANK:CALL": this rank finds its first rail failed in that call's
 * first attempt, as if its watchdog had fired. */
static void inject_rail_fault(mca_coll_qtopo_module_t *m, const qtopo_call_t *call)
{
    if (mca_coll_qtopo_fault("rail", m->comm_rank, call->index)) {
        mca_coll_qtopo_rails_suspect(m->rails, 0, -1, "failure injected by coll_qtopo_fault");
    }
}
#endif

/*
 * A call on rails, with the failover protocol of coll_qtopo_agree.c: every attempt ends
 * with the end agreement; after a rail failure every rank takes the same rails out of
 * service, starts the next epoch and redoes the call from its input, over the rails
 * left or the PML. A failure that is not a rail's (or an "off" notice) returns the error
 * at once, as on the PML: the caller turns qtopo off on every rank.
 */
static int run_with_failover(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                             const float *src, float *rbuf, size_t count,
                             struct ompi_communicator_t *comm, qtopo_call_t *call)
{
#if QTOPO_HAVE_UCX
    const float *input = NULL;
    int rc;

    while (on_rails(m)) {
        mca_coll_qtopo_call_end_t e;
        double t0 = qtopo_now(), t1;
        bool troubled;
        int notice;

        if (NULL == input) {
            input = keep_input(m, src, rbuf, count);
            inject_rail_fault(m, call);
            rc = run_call(m, s, src, rbuf, count, comm, call);
        } else {
            rc = run_call(m, s, input, rbuf, count, comm, call);
        }
        troubled = mca_coll_qtopo_rails_troubled(m->rails);
        notice = OMPI_SUCCESS == rc ? QTOPO_NOTICE_NONE : mca_coll_qtopo_notice(comm);
        if (QTOPO_NOTICE_OFF == notice
            || (OMPI_SUCCESS != rc && !troubled && QTOPO_NOTICE_FAILOVER != notice)) {
            return rc;
        }
        if (troubled) {
            mca_coll_qtopo_notify_failover(comm);
        }
        t1 = qtopo_now();
        e.ok = OMPI_SUCCESS == rc && !troubled;
        e.can_redo = NULL != input;
        e.notified = troubled;
        mca_coll_qtopo_rails_take_suspects(m->rails, e.suspect);
        rc = mca_coll_qtopo_agree_end(m, comm, &e);
        if (OMPI_SUCCESS != rc || e.ok) {
            return rc;
        }
        if (!e.can_redo) {
            return OMPI_ERROR;
        }
        /* the abandoned attempt may have left sends that read the scratch memory */
        m->scratch_pinned = true;
        m->epoch++;
        mca_coll_qtopo_rails_fail(m->rails, e.suspect, m->epoch, comm->c_name);
        QTOPO_VERBOSE(1, "rank %d of %s: call %lu failed over: attempt %.3f s, end agreement "
                      "%.3f s, rails out of service %.3f s", m->comm_rank, comm->c_name,
                      (unsigned long) call->index, t1 - t0, e.agreed_at - t1,
                      qtopo_now() - e.agreed_at);
        src = input;
    }
#endif
    return run_call(m, s, src, rbuf, count, comm, call);
}

/* An exact call handed on without an agreement (exact_handed_on). It counts as a call, as
 * it would have after an agreement, so the ratio schedule moves on. (Handing it on after
 * the agreement instead would cost that agreement on every call; on the first call it
 * would also discard the node map, which a "not ready" verdict does.) Not in a process
 * where the CUDA driver is loaded: a rank with a device buffer must not be handed on while
 * its peers' host buffers are, and the memory kind is known alike only after the
 * agreement, so there every eligible call goes through it and runs in qtopo. */
static bool skip_exact_call(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_settings_t *s,
                            size_t count)
{
    qtopo_call_t call;

    if (!s->valid || qtopo_cuda_available(NULL)) {
        return false;
    }
    choose_setting(m, s, count * sizeof(float), &call);
    if (!exact_handed_on(m, s, &call, count * sizeof(float))) {
        return false;
    }
    m->ncalls++;
    return true;
}

/* agree_call, its time counted (coll_qtopo_usec_agree). */
static mca_coll_qtopo_verdict_t timed_agree_call(mca_coll_qtopo_module_t *m,
                                                 struct ompi_communicator_t *comm,
                                                 const mca_coll_qtopo_settings_t *s, size_t count,
                                                 qtopo_call_t *call)
{
    mca_coll_qtopo_counters_t k = {0};
    double t0 = qtopo_now();
    mca_coll_qtopo_verdict_t v = agree_call(m, comm, s, count, call);

    k.usec_agree = (unsigned long) ((qtopo_now() - t0) * 1e6);
    mca_coll_qtopo_count(m, &k);
    return v;
}

/* ---- GPU buffers (the memory-kind rule at the top of this file) ------------------- */

/* This rank's host copy of a device buffer of `bytes`, grown as needed; NULL if out of
 * memory. */
static float *staging_buffer(mca_coll_qtopo_module_t *m, size_t bytes)
{
    if (m->staged_size < bytes) {
        if (!m->scratch_pinned) {
            free(m->staged); /* else an abandoned attempt's sends may still read it */
        }
        m->staged = malloc(bytes);
        m->staged_size = NULL != m->staged ? bytes : 0;
    }
    return m->staged;
}

/* Classifies this rank's buffers and, for device buffers it can run, makes the host
 * buffers the call will run on (*src_h, *rbuf_h) and copies the input there, all before
 * the agreement, so that any failure here is agreed (QTOPO_MEM_UNUSABLE) rather than
 * met by one rank alone. An input on the device and an output in host memory: the input
 * is copied into the output, which is then reduced in place. */
static int stage_in(mca_coll_qtopo_module_t *m, const float *src, float *rbuf, size_t count,
                    const float **src_h, float **rbuf_h)
{
    size_t bytes = count * sizeof(float);
    bool src_dev = qtopo_cuda_is_device(src), rbuf_dev = src == rbuf ? src_dev
                                                                     : qtopo_cuda_is_device(rbuf);
    float *host;

    *src_h = src;
    *rbuf_h = rbuf;
    if (mca_coll_qtopo_fault("device", m->comm_rank, m->ncalls)) {
        return QTOPO_MEM_UNUSABLE; /* test-only: as if this rank had such a buffer */
    }
    if (!src_dev && !rbuf_dev) {
        return QTOPO_MEM_HOST;
    }
    if (QTOPO_CUDA_AUTO != mca_coll_qtopo_component.cuda || !qtopo_cuda_kernels_built()) {
        return QTOPO_MEM_UNUSABLE;
    }
    host = rbuf_dev ? staging_buffer(m, bytes) : rbuf;
    if (NULL == host) {
        return QTOPO_MEM_UNUSABLE;
    }
    if (src_dev && QTOPO_CODEC_OK != qtopo_cuda_copy(host, src, bytes)) {
        return QTOPO_MEM_UNUSABLE;
    }
    *rbuf_h = host;
    *src_h = src_dev ? host : src;
    return QTOPO_MEM_STAGED;
}

/* After a staged call: the result back to the device output buffer. */
static int stage_out(float *rbuf, const float *rbuf_h, size_t count)
{
    if (rbuf == rbuf_h) {
        return OMPI_SUCCESS;
    }
    return QTOPO_CODEC_OK == qtopo_cuda_copy(rbuf, rbuf_h, count * sizeof(float)) ? OMPI_SUCCESS
                                                                                : OMPI_ERROR;
}

/* A call that failed after the agreement: every rank learns that qtopo is off here
 * (the notice also wakes ranks waiting for this one), and the memory that detached
 * sends may still read is never freed. */
static void fail_call(mca_coll_qtopo_module_t *m, struct ompi_communicator_t *comm, size_t count)
{
    m->scratch_pinned = true;
    opal_output(0, "coll:qtopo: rank %d: allreduce of %zu floats on %s failed; qtopo is off on "
                "this communicator from now on", m->comm_rank, count, comm->c_name);
    mca_coll_qtopo_notify_off(m, comm);
}

int mca_coll_qtopo_allreduce(const void *sbuf, void *rbuf, qtopo_coll_count_t count,
                             struct ompi_datatype_t *dtype, struct ompi_op_t *op,
                             struct ompi_communicator_t *comm, mca_coll_base_module_t *module)
{
    mca_coll_qtopo_module_t *m = (mca_coll_qtopo_module_t *) module;
    const float *src = (MPI_IN_PLACE == sbuf) ? (const float *) rbuf : (const float *) sbuf;
    const float *src_h;
    float *rbuf_h;
    mca_coll_qtopo_settings_t s;
    qtopo_call_t call;
    int rc;

    if (!call_eligible(m, count, dtype, op, &s)
        || skip_exact_call(m, &s, (size_t) count)) {
        return hand_on(m, sbuf, rbuf, count, dtype, op, comm);
    }
    m->busy = true;
    call.ef_key = src;
    call.memkind = stage_in(m, src, (float *) rbuf, (size_t) count, &src_h, &rbuf_h);
    if (QTOPO_RUN != timed_agree_call(m, comm, &s, (size_t) count, &call)) {
        m->busy = false;
        return hand_on(m, sbuf, rbuf, count, dtype, op, comm);
    }
    if (!m->rails_decided) {
        decide_rails(m, comm);
    }
    drop_stale_residuals(m);
    hold_rails(m, true);
    rc = run_with_failover(m, &s, src_h, rbuf_h, (size_t) count, comm, &call);
    hold_rails(m, false);
    if (OMPI_SUCCESS == rc) {
        rc = stage_out((float *) rbuf, rbuf_h, (size_t) count);
    }
    if (OMPI_SUCCESS != rc) {
        fail_call(m, comm, count);
    } else {
        release_large_buffers(m);
    }
    m->busy = false;
    return rc;
}
