/*
 * coll/qtopo component: the structure Open MPI loads (mca_coll_qtopo_component), the
 * MCA parameters with their help texts (ompi_info --param coll qtopo --level 9), the
 * MPI_T performance variables, and validation of parameter values.
 */

#include "ompi_config.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo.h"

#include "mpi.h"
#include "opal/mca/base/mca_base_pvar.h"
#include "opal/mca/base/mca_base_var.h"
#include "opal/util/proc.h"
#include "opal/util/show_help.h"

/* The lock MPI_T_cvar_write holds while it sets a variable (ompi/mpi/tool/mpit-internal.h,
 * which includes a header Debian does not install). */
void ompi_mpit_lock(void);
void ompi_mpit_unlock(void);

static int qtopo_register(void);
static int qtopo_open(void);
static int qtopo_close(void);

mca_coll_qtopo_component_t mca_coll_qtopo_component = {
    .super = {
        .collm_version = {
            QTOPO_COLL_BASE_VERSION,
            .mca_component_name = "qtopo",
            MCA_BASE_MAKE_VERSION(component, OMPI_MAJOR_VERSION, OMPI_MINOR_VERSION,
                                  OMPI_RELEASE_VERSION),
            .mca_open_component = qtopo_open,
            .mca_close_component = qtopo_close,
            .mca_register_component_params = qtopo_register,
        },
        .collm_data = {
            MCA_BASE_METADATA_PARAM_CHECKPOINT
        },
        .collm_init_query = mca_coll_qtopo_init_query,
        .collm_comm_query = mca_coll_qtopo_comm_query,
    },
    .output = -1,
};

static const mca_base_var_enum_value_t qtopo_algorithms[] = {
    {QTOPO_ALG_AUTO, "auto"},
    {QTOPO_ALG_FLAT, "flat"},
    {QTOPO_ALG_HIER, "hier"},
    {0, NULL},
};

static const mca_base_var_enum_value_t qtopo_exact_values[] = {
    {QTOPO_EXACT_AUTO, "auto"},
    {QTOPO_EXACT_ALWAYS, "always"},
    {QTOPO_EXACT_NEVER, "never"},
    {0, NULL},
};

static const mca_base_var_enum_value_t qtopo_eb_modes[] = {
    {QTOPO_EB_ABS, "abs"},
    {QTOPO_EB_REL, "rel"},
    {0, NULL},
};

static const mca_base_var_enum_value_t qtopo_roundings[] = {
    {QTOPO_ROUND_NEAREST, "nearest"},
    {QTOPO_ROUND_STOCHASTIC, "stochastic"},
    {0, NULL},
};

/* Settable variables may change between calls through MPI_T; scope ALL_EQ tells tools
 * that every rank must hold the same value. */
static void register_var(const char *name, const char *help, mca_base_var_type_t type,
                         const mca_base_var_enum_value_t *values, mca_base_var_info_lvl_t level,
                         bool settable, void *storage)
{
    mca_base_var_enum_t *enumerator = NULL;

    if (NULL != values
        && OPAL_SUCCESS != mca_base_var_enum_create(name, values, &enumerator)) {
        enumerator = NULL;
    }
    (void) mca_base_component_var_register(
        &mca_coll_qtopo_component.super.collm_version, name, help, type, enumerator, 0,
        settable ? MCA_BASE_VAR_FLAG_SETTABLE : 0, level,
        settable ? MCA_BASE_VAR_SCOPE_ALL_EQ : MCA_BASE_VAR_SCOPE_READONLY, storage);
    if (NULL != enumerator) {
        OBJ_RELEASE(enumerator);
    }
}

static void register_counter(const char *name, const char *help, unsigned long *counter)
{
    (void) mca_base_component_pvar_register(
        &mca_coll_qtopo_component.super.collm_version, name, help, OPAL_INFO_LVL_4,
        MCA_BASE_PVAR_CLASS_COUNTER, MCA_BASE_VAR_TYPE_UNSIGNED_LONG, NULL,
        MCA_BASE_VAR_BIND_NO_OBJECT, MCA_BASE_PVAR_FLAG_READONLY | MCA_BASE_PVAR_FLAG_CONTINUOUS,
        NULL, NULL, NULL, counter);
}

static void register_quantization_params(mca_coll_qtopo_component_t *c)
{
    c->bits = 32;
    register_var("bits",
                 "Bits per value on the wire: 32 = exact fp32 (lossless); 16 = bfloat16; 8, 4, "
                 "2, 1 = integer codes with a scale per block. Same on all ranks; MPI_T-settable",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_2, true, &c->bits);
    c->block_size = QTOPO_CODEC_DEFAULT_BLOCK;
    register_var("block_size",
                 "Values per quantization block (one scale each): 32..4096, a multiple of 8 "
                 "(default 256, chosen by measurement)",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_4, true, &c->block_size);
    c->rounding = QTOPO_ROUND_NEAREST;
    register_var("rounding",
                 "Rounding of quantized values: nearest (smallest error) or stochastic "
                 "(unbiased: the expected value of a decoded value is the input)",
                 MCA_BASE_VAR_TYPE_INT, qtopo_roundings, OPAL_INFO_LVL_4, true, &c->rounding);
    c->seed = 0x9e3779b97f4a7c15ULL;
    register_var("seed",
                 "Seed of the counter-based generator behind stochastic rounding (with the call "
                 "number, rank and element index): runs are reproducible",
                 MCA_BASE_VAR_TYPE_UNSIGNED_LONG_LONG, NULL, OPAL_INFO_LVL_5, true, &c->seed);
    c->ratio = 1.0;
    register_var("ratio",
                 "Share of eligible calls on a communicator that are quantized, in [0, 1], by "
                 "a deterministic schedule identical on all ranks (default 1: all). "
                 "MPI_T-settable",
                 MCA_BASE_VAR_TYPE_DOUBLE, NULL, OPAL_INFO_LVL_4, true, &c->ratio);
    c->warmup = 0;
    register_var("warmup",
                 "Number of first eligible calls on each communicator that stay lossless "
                 "(default 0)",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_4, true, &c->warmup);
    c->rules = NULL;
    register_var("rules",
                 "Joint layers: buffer-size classes mapped to bits[/block[/segment]], first "
                 "match wins, e.g. \"<=256K:32,<=8M:8/256,*:4/128\"; eE / rE instead of bits: "
                 "error-bounded with absolute / relative bound E (\"*:e1e-3\"); empty: "
                 "coll_qtopo_bits for every size. MPI_T-settable",
                 MCA_BASE_VAR_TYPE_STRING, NULL, OPAL_INFO_LVL_4, true, &c->rules);
    c->error_bound = 0.0;
    register_var("error_bound",
                 "Error-bounded mode: largest error of any element of the result, > 0 (0: off, "
                 "coll_qtopo_bits applies). qtopo picks the bits of every block of 256 values "
                 "(1, 2, 4, 8, 16 or fp32) to stay within it. Same on all ranks; MPI_T-settable",
                 MCA_BASE_VAR_TYPE_DOUBLE, NULL, OPAL_INFO_LVL_2, true, &c->error_bound);
    c->error_bound_mode = QTOPO_EB_ABS;
    register_var("error_bound_mode",
                 "abs: coll_qtopo_error_bound is an absolute error; rel: a share of the largest "
                 "|value| of the result (bounded from below by an exact sum of a sample of 128 "
                 "elements, one extra small allreduce per call). MPI_T-settable",
                 MCA_BASE_VAR_TYPE_INT, qtopo_eb_modes, OPAL_INFO_LVL_2, true,
                 &c->error_bound_mode);
    c->error_feedback = false;
    register_var("error_feedback",
                 "Carry each call's quantization error into the next call with the same "
                 "(communicator, buffer, count). Only meaningful when the application reuses a "
                 "buffer for the same tensor; off by default",
                 MCA_BASE_VAR_TYPE_BOOL, NULL, OPAL_INFO_LVL_4, true, &c->error_feedback);
    c->ef_max_bytes = (size_t) 256 << 20;
    register_var("ef_max_bytes",
                 "Memory cap of the error-feedback residuals per communicator, bytes; the least "
                 "recently used are evicted (default 256 MiB)",
                 MCA_BASE_VAR_TYPE_SIZE_T, NULL, OPAL_INFO_LVL_5, false, &c->ef_max_bytes);
}

static const mca_base_var_enum_value_t qtopo_transports[] = {
    {QTOPO_TRANSPORT_AUTO, "auto"},
    {QTOPO_TRANSPORT_PML, "pml"},
    {QTOPO_TRANSPORT_UCX, "ucx"},
    {0, NULL},
};

static const mca_base_var_enum_value_t qtopo_eager_values[] = {
    {QTOPO_EAGER_AUTO, "auto"},
    {QTOPO_EAGER_ON, "on"},
    {QTOPO_EAGER_OFF, "off"},
    {0, NULL},
};

static const mca_base_var_enum_value_t qtopo_rail_policies[] = {
    {QTOPO_RAIL_STRIPE, "stripe"},
    {QTOPO_RAIL_ALIGNED, "aligned"},
    {0, NULL},
};

/* Read once per communicator, at its first call qtopo runs, and agreed then
 * (coll_qtopo_rails.c): not settable through MPI_T. */
static void register_rail_params(mca_coll_qtopo_component_t *c)
{
    c->transport = QTOPO_TRANSPORT_AUTO;
    register_var("transport",
                 "How qtopo reaches ranks on other nodes: auto (its own UCX rails when qtopo "
                 "was built with UCX and every rank has >= 2 usable rails, else the PML), pml, "
                 "or ucx (rails even with one rail; a message when they cannot be used)",
                 MCA_BASE_VAR_TYPE_INT, qtopo_transports, OPAL_INFO_LVL_4, false, &c->transport);
    c->rails = "auto";
    register_var("rails",
                 "Network devices qtopo uses as rails, one UCX context each: auto (active "
                 "InfiniBand ports, else every network interface that is up except lo) or a "
                 "comma list such as rail0,rail1 or mlx5_0:1,mlx5_1:1 (same order on all ranks)",
                 MCA_BASE_VAR_TYPE_STRING, NULL, OPAL_INFO_LVL_4, false, &c->rails);
    c->rail_weights = "auto";
    register_var("rail_weights",
                 "Share of each rail in a striped message: auto (the link speeds the OS "
                 "reports, equal where unknown) or a list like 4,1 (one per rail; 0 leaves a "
                 "rail out); each rail's weight is the smallest any rank gives it",
                 MCA_BASE_VAR_TYPE_STRING, NULL, OPAL_INFO_LVL_4, false, &c->rail_weights);
    c->rail_policy = QTOPO_RAIL_STRIPE;
    register_var("rail_policy",
                 "stripe (every message to another node cut over all rails by weight) or "
                 "aligned (local rank l sends on rail l mod R)",
                 MCA_BASE_VAR_TYPE_INT, qtopo_rail_policies, OPAL_INFO_LVL_4, false,
                 &c->rail_policy);
    c->rail_adapt_calls = 8;
    register_var("rail_adapt_calls",
                 "With coll_qtopo_rail_weights auto and policy stripe: every this many calls on "
                 "a communicator, the rail weights are re-estimated from the throughput each "
                 "rail showed since the last time and agreed by all ranks (0: keep the link "
                 "speeds; default 8)",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_5, false, &c->rail_adapt_calls);
    c->rail_timeout = 5.0;
    register_var("rail_timeout",
                 "Seconds a wait inside a call may see nothing arrive on qtopo's rails before "
                 "the rails it waits on are suspected to have failed (then the call is redone "
                 "over the rails left, see README \"Rail failure\"); UCX's keep-alive runs at "
                 "half of it (default 5; values under 0.1 count as 0.1)",
                 MCA_BASE_VAR_TYPE_DOUBLE, NULL, OPAL_INFO_LVL_5, false, &c->rail_timeout);
    c->rail_eager = QTOPO_EAGER_AUTO;
    register_var("rail_eager",
                 "Whether qtopo's rails send eagerly (UCX_RNDV_THRESH=inf, UCX_TCP_SNDBUF=128k: "
                 "data goes straight into the receives qtopo posts ahead instead of waiting for "
                 "a rendezvous answer): auto (on network interfaces, i.e. UCX's TCP transport, "
                 "when coll_qtopo_rail_weights are fixed; not with weights that follow the "
                 "network, which time sends, nor on InfiniBand ports), on, or off. A UCX_ "
                 "variable the user sets wins",
                 MCA_BASE_VAR_TYPE_INT, qtopo_eager_values, OPAL_INFO_LVL_5, false,
                 &c->rail_eager);
}

/* The per-rail counters are arrays of QTOPO_RAILS_MAX values (the MPI_T handle's count). */
static int rail_counter_notify(mca_base_pvar_t *pvar, mca_base_pvar_event_t event,
                               void *obj_handle, int *count)
{
    (void) pvar;
    (void) obj_handle;
    if (MCA_BASE_PVAR_HANDLE_BIND == event) {
        *count = QTOPO_RAILS_MAX;
    }
    return OPAL_SUCCESS;
}

static int rail_counter_read(const mca_base_pvar_t *pvar, void *value, void *obj_handle)
{
    size_t r;

    (void) obj_handle;
    for (r = 0; r < QTOPO_RAILS_MAX; ++r) {
        ((unsigned long *) value)[r] = __atomic_load_n((unsigned long *) pvar->ctx + r,
                                                       __ATOMIC_RELAXED);
    }
    return OPAL_SUCCESS;
}

static void register_rail_counter(const char *name, const char *help, unsigned long *counters)
{
    (void) mca_base_component_pvar_register(
        &mca_coll_qtopo_component.super.collm_version, name, help, OPAL_INFO_LVL_4,
        MCA_BASE_PVAR_CLASS_COUNTER, MCA_BASE_VAR_TYPE_UNSIGNED_LONG, NULL,
        MCA_BASE_VAR_BIND_NO_OBJECT, MCA_BASE_PVAR_FLAG_READONLY | MCA_BASE_PVAR_FLAG_CONTINUOUS,
        rail_counter_read, NULL, rail_counter_notify, counters);
}

static void register_counters(mca_coll_qtopo_counters_t *k)
{
    register_rail_counter("rail_bytes_sent",
                          "Bytes qtopo sent on each of its rails (element r: rail r of the "
                          "communicator's list, as coll_qtopo_verbose 1 prints it)",
                          mca_coll_qtopo_component.rail_bytes_sent);
    register_rail_counter("rail_bytes_recv", "Bytes qtopo received on each of its rails",
                          mca_coll_qtopo_component.rail_bytes_recv);
    register_counter("calls_handled", "MPI_Allreduce calls run by qtopo's own algorithms",
                     &k->calls_handled);
    register_counter("calls_quantized", "... of which quantized (bits < 32)",
                     &k->calls_quantized);
    register_counter("calls_fallback",
                     "MPI_Allreduce calls on qtopo communicators handed to the previous "
                     "component (other types or ops, small counts, bad parameters)",
                     &k->calls_fallback);
    register_counter("bytes_logical", "fp32 bytes reduced by qtopo (count * 4 per call)",
                     &k->bytes_logical);
    register_counter("bytes_wire", "Bytes this process sent for qtopo's calls",
                     &k->bytes_wire);
    register_counter("usec_total", "Microseconds spent in qtopo's allreduce algorithms",
                     &k->usec_total);
    register_counter("usec_code", "... of which encoding and decoding", &k->usec_code);
    register_counter("usec_node_rs",
                     "... of which in split-rail's reduce-scatter inside the node (waiting for "
                     "and adding the node's pieces)", &k->usec_node_rs);
    register_counter("usec_network",
                     "... of which in the phase across nodes (split-rail's rail phase; all of "
                     "a flat algorithm), coding included", &k->usec_network);
    register_counter("usec_node_ag", "... of which in split-rail's allgather inside the node",
                     &k->usec_node_ag);
    register_counter("usec_agree",
                     "Microseconds in qtopo's per-call agreement, before its algorithms (not "
                     "in usec_total)", &k->usec_agree);
}

static int qtopo_register(void)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    /* defaults are set here, every time: register can run more than once */
    c->priority = 0;
    register_var("priority",
                 "Priority of coll/qtopo; 0 (default) leaves it off. Set it above tuned (30) "
                 "and below cuda (78), e.g. 40, to let qtopo run MPI_Allreduce on float sums",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_2, false, &c->priority);
    /* Cut-over measured with examples/qtopo_bench, 4 ranks on one 2-core host, lossless
     * ring vs Open MPI's default in the same run (speedup, 3 runs of segment sizes
     * 64K/256K/1M): 16 KiB 0.69-0.77x, 64 KiB 0.87-0.98x, 256 KiB 0.98-1.18x,
     * 1 MiB 0.93-1.24x. Below 256 KiB the previous component's latency-bound
     * algorithms win; 256 KiB segments were best or within noise at every size. */
    c->min_bytes = 262144;
    register_var("min_bytes",
                 "Smallest allreduce, in bytes (count * 4), that qtopo runs itself; smaller "
                 "ones go to the previous component (default 262144)",
                 MCA_BASE_VAR_TYPE_SIZE_T, NULL, OPAL_INFO_LVL_4, true, &c->min_bytes);
    c->segment_size = 262144;
    register_var("segment_size",
                 "Pipeline segment size in fp32 bytes, at least 1024: the transfer of one "
                 "segment overlaps the coding and reduction of the next (default 262144)",
                 MCA_BASE_VAR_TYPE_SIZE_T, NULL, OPAL_INFO_LVL_5, true, &c->segment_size);
    c->algorithm = QTOPO_ALG_AUTO;
    register_var("algorithm",
                 "Allreduce algorithm: auto (hier on several nodes with equal ranks per node, "
                 "else flat), flat (ring reduce-scatter + allgather when lossless, "
                 "scatter-reduce-allgather when quantized) or hier (split-rail: fp32 inside "
                 "nodes, the flat algorithm across nodes per local rank; flat where the "
                 "topology does not allow it); for tests and tuning",
                 MCA_BASE_VAR_TYPE_INT, qtopo_algorithms, OPAL_INFO_LVL_5, true, &c->algorithm);
    c->exact = QTOPO_EXACT_AUTO;
    register_var("exact",
                 "Who runs exact (32-bit) allreduce calls: auto (default) qtopo only where its "
                 "algorithms were measured faster than Open MPI's tuned for the layout, rank "
                 "count and size (one node, split-rail or flat across nodes; the table is in "
                 "the README), the previous component elsewhere; always (qtopo from "
                 "coll_qtopo_min_bytes on); never (qtopo only runs quantized calls)",
                 MCA_BASE_VAR_TYPE_INT, qtopo_exact_values, OPAL_INFO_LVL_3, true, &c->exact);
    /* Emulated cluster, 4 nodes x 2 ranks x 2 rails of 500 Mbit/s, exact calls, speedup
     * over Open MPI in the same run (examples/cluster_bench.sh and qtopo_bench runs):
     * 1 MiB flat 1.02x, hier 0.79x; 2-8 MiB within noise of each other (2 runs each);
     * 16 MiB flat 1.06x, hier 1.14x; 64 MiB flat 1.08x, hier 1.13x. */
    c->hier_min_bytes = (size_t) 16 << 20;
    register_var("hier_min_bytes",
                 "With coll_qtopo_algorithm auto, exact (32-bit) calls from this many bytes on "
                 "take the split-rail algorithm on multi-node layouts; quantized calls always "
                 "do (default 16 MiB, measured)",
                 MCA_BASE_VAR_TYPE_SIZE_T, NULL, OPAL_INFO_LVL_5, true, &c->hier_min_bytes);
    c->scratch_max = (size_t) 1 << 30;
    register_var("scratch_max",
                 "Most scratch memory, in bytes, one allreduce may use (0: no limit). The "
                 "algorithms need O(buffer) whatever the number of ranks: the quantized one "
                 "cuts finer segments to stay within the buffer's size (at least 8 MiB) and "
                 "this cap, the exact ring keeps fewer receives in flight, split-rail runs "
                 "flat where its node stage does not fit. A call that cannot fit even so is "
                 "handed to the previous component on every rank, said once per communicator "
                 "(default 1 GiB)",
                 MCA_BASE_VAR_TYPE_SIZE_T, NULL, OPAL_INFO_LVL_5, true, &c->scratch_max);
    c->cuda = QTOPO_CUDA_AUTO;
    register_var("cuda",
                 "GPU (CUDA device) buffers: 1 (auto) copies them to host memory, runs the "
                 "call there and copies the result back, when qtopo was built with CUDA and "
                 "the driver is there; 0 hands every call with a device buffer to the previous "
                 "component. Either way all ranks agree per call (README, GPU buffers)",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_4, false, &c->cuda);
    c->node_size = 0;
    register_var("node_size",
                 "Pretend that every K consecutive ranks form a node (testing and tuning the "
                 "hierarchy on one host); -K: pretend ceil(size / K) nodes and deal the ranks "
                 "to them in turn, as mpirun --map-by node does; 0 (default) uses the real "
                 "node layout",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_9, false, &c->node_size);
    register_quantization_params(c);
    register_rail_params(c);
    c->fault = NULL;
    register_var("fault",
                 "For tests only: make one rank fail at one call, \"WHAT:RANK:CALL\" with WHAT "
                 "alloc (its scratch allocation fails before the call), xport (its transport "
                 "fails inside the call), rail (it finds its first rail failed, on qtopo's "
                 "rails) or device (it has a GPU buffer it cannot run), RANK its rank in the communicator and CALL the call number on it (0 "
                 "= the first call qtopo takes)",
                 MCA_BASE_VAR_TYPE_STRING, NULL, OPAL_INFO_LVL_9, true, &c->fault);
    c->verbose = 0;
    register_var("verbose",
                 "Verbosity of coll/qtopo: 0 silent, 1 setup decisions and a per-communicator "
                 "summary when it is freed, 2 every handled call",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_9, false, &c->verbose);
    register_counters(&c->counters);
    return OMPI_SUCCESS;
}

static int qtopo_open(void)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    c->output = opal_output_open(NULL);
    opal_output_set_verbosity(c->output, c->verbose);
    /* help-coll-qtopo.txt may be installed outside Open MPI's own data directory */
    (void) opal_show_help_add_dir(QTOPO_HELP_DIR);
    return OMPI_SUCCESS;
}

static int qtopo_close(void)
{
    opal_output_close(mca_coll_qtopo_component.output);
    mca_coll_qtopo_component.output = -1;
    return OMPI_SUCCESS;
}

static void show_help_va(const char *topic, va_list ap)
{
    char *msg = opal_show_help_vstring("help-coll-qtopo.txt", topic, true, ap);

    if (NULL != msg) {
        opal_output(0, "%s", msg);
        free(msg);
    }
}

/*
 * Prints a help text of help-coll-qtopo.txt from the first process of the job only:
 * what qtopo reports concerns settings that are equal on every process. (Open MPI
 * 4.1's aggregation of opal_show_help messages at mpirun was seen to drop a message
 * with "Data unpack would read past end of buffer" when the job ends right after.)
 */
void mca_coll_qtopo_show_help(const char *topic, ...)
{
    va_list ap;

    if (0 != opal_proc_local_get()->proc_name.vpid) {
        return;
    }
    va_start(ap, topic);
    show_help_va(topic, ap);
    va_end(ap);
}

void mca_coll_qtopo_show_help_here(const char *topic, ...)
{
    va_list ap;

    va_start(ap, topic);
    show_help_va(topic, ap);
    va_end(ap);
}

/* Reports a bad parameter value once per process and value. Called with the MPI_T lock
 * held (mca_coll_qtopo_settings_read), which also guards `last`. */
static void report_bad_param(const char *name, const char *value, const char *reason)
{
    static char last[512];
    char key[512];

    snprintf(key, sizeof(key), "%s=%s", name, value);
    if (0 != strcmp(key, last)) {
        snprintf(last, sizeof(last), "%s", key);
        mca_coll_qtopo_show_help("bad-param", name, value, reason);
    }
}

static bool numbers_valid(const mca_coll_qtopo_component_t *c)
{
    char value[64];

    if (!qtopo_bits_valid(c->bits)) {
        snprintf(value, sizeof(value), "%d", c->bits);
        report_bad_param("coll_qtopo_bits", value, "use one of 32, 16, 8, 4, 2, 1");
        return false;
    }
    if (!qtopo_block_valid(c->block_size)) {
        snprintf(value, sizeof(value), "%d", c->block_size);
        report_bad_param("coll_qtopo_block_size", value, "use a multiple of 8 from 32 to 4096");
        return false;
    }
    if (!(0.0 <= c->ratio && 1.0 >= c->ratio)) {
        snprintf(value, sizeof(value), "%g", c->ratio);
        report_bad_param("coll_qtopo_ratio", value, "use a share between 0 and 1");
        return false;
    }
    if (!(0.0 <= c->error_bound && c->error_bound <= DBL_MAX)) {
        snprintf(value, sizeof(value), "%g", c->error_bound);
        report_bad_param("coll_qtopo_error_bound", value,
                         "use 0 (off) or a finite bound above 0");
        return false;
    }
    if (1024 > c->segment_size || 0 > c->warmup) {
        snprintf(value, sizeof(value), "%zu/%d", c->segment_size, c->warmup);
        report_bad_param("coll_qtopo_segment_size/coll_qtopo_warmup", value,
                         "the segment size must be at least 1024 and warmup at least 0");
        return false;
    }
    return true;
}

/* Parses coll_qtopo_rules into *rules when it differs from *cached_text. */
static bool rules_valid(const char *text, char **cached_text, qtopo_rules_t *rules)
{
    char err[512];

    if (NULL != *cached_text && NULL != text && 0 == strcmp(text, *cached_text)) {
        return true;
    }
    if (NULL == *cached_text && NULL == text) {
        rules->n = 0;
        return true;
    }
    if (0 != qtopo_rules_parse(text, rules, err, sizeof(err))) {
        report_bad_param("coll_qtopo_rules", text, err);
        return false;
    }
    free(*cached_text);
    *cached_text = NULL == text ? NULL : strdup(text);
    return true;
}

static const char *const setting_names[QTOPO_NSETTINGS] = {
    [QTOPO_SET_BITS] = "coll_qtopo_bits",
    [QTOPO_SET_BLOCK] = "coll_qtopo_block_size",
    [QTOPO_SET_ROUNDING] = "coll_qtopo_rounding",
    [QTOPO_SET_SEED] = "coll_qtopo_seed",
    [QTOPO_SET_MIN_BYTES] = "coll_qtopo_min_bytes",
    [QTOPO_SET_SEGMENT] = "coll_qtopo_segment_size",
    [QTOPO_SET_RATIO] = "coll_qtopo_ratio",
    [QTOPO_SET_WARMUP] = "coll_qtopo_warmup",
    [QTOPO_SET_RULES] = "coll_qtopo_rules",
    [QTOPO_SET_ALGORITHM] = "coll_qtopo_algorithm",
    [QTOPO_SET_HIER_MIN] = "coll_qtopo_hier_min_bytes",
    [QTOPO_SET_NODE_SIZE] = "coll_qtopo_node_size",
    [QTOPO_SET_ERROR_BOUND] = "coll_qtopo_error_bound",
    [QTOPO_SET_ERROR_BOUND_MODE] = "coll_qtopo_error_bound_mode",
    [QTOPO_SET_SCRATCH_MAX] = "coll_qtopo_scratch_max",
    [QTOPO_SET_EXACT] = "coll_qtopo_exact",
};

const char *mca_coll_qtopo_setting_name(int i)
{
    return setting_names[i];
}

/* FNV-1a of a string (NULL and "" hash alike: both mean "no rules"). */
static uint64_t text_hash(const char *text)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; NULL != text && '\0' != *text; ++text) {
        h = (h ^ (uint8_t) *text) * 0x100000001b3ULL;
    }
    return h;
}

static void copy_settings(const mca_coll_qtopo_component_t *c, mca_coll_qtopo_settings_t *s)
{
    uint64_t ratio_bits, bound_bits;

    s->bits = c->bits;
    s->block_size = c->block_size;
    s->rounding = c->rounding;
    s->seed = c->seed;
    s->min_bytes = c->min_bytes;
    s->segment_size = c->segment_size;
    s->ratio = c->ratio;
    s->warmup = c->warmup;
    s->algorithm = c->algorithm;
    s->exact = c->exact;
    s->hier_min_bytes = c->hier_min_bytes;
    s->error_feedback = c->error_feedback;
    s->ef_max_bytes = c->ef_max_bytes;
    s->scratch_max = c->scratch_max;
    s->error_bound = c->error_bound;
    s->error_bound_mode = c->error_bound_mode;
    memcpy(&ratio_bits, &s->ratio, sizeof(ratio_bits));
    memcpy(&bound_bits, &s->error_bound, sizeof(bound_bits));
    s->wire[QTOPO_SET_BITS] = (uint64_t) s->bits;
    s->wire[QTOPO_SET_BLOCK] = (uint64_t) s->block_size;
    s->wire[QTOPO_SET_ROUNDING] = (uint64_t) s->rounding;
    s->wire[QTOPO_SET_SEED] = (uint64_t) s->seed;
    s->wire[QTOPO_SET_MIN_BYTES] = (uint64_t) s->min_bytes;
    s->wire[QTOPO_SET_SEGMENT] = (uint64_t) s->segment_size;
    s->wire[QTOPO_SET_RATIO] = ratio_bits;
    s->wire[QTOPO_SET_WARMUP] = (uint64_t) s->warmup;
    s->wire[QTOPO_SET_RULES] = text_hash(c->rules);
    s->wire[QTOPO_SET_ALGORITHM] = (uint64_t) s->algorithm;
    s->wire[QTOPO_SET_EXACT] = (uint64_t) s->exact;
    s->wire[QTOPO_SET_HIER_MIN] = (uint64_t) s->hier_min_bytes;
    s->wire[QTOPO_SET_NODE_SIZE] = (uint64_t) c->node_size;
    s->wire[QTOPO_SET_ERROR_BOUND] = bound_bits;
    s->wire[QTOPO_SET_ERROR_BOUND_MODE] = (uint64_t) s->error_bound_mode;
    s->wire[QTOPO_SET_SCRATCH_MAX] = (uint64_t) s->scratch_max;
}

/*
 * Reads the parameters. An MPI_T write replaces (and frees) coll_qtopo_rules while it
 * holds the MPI_T lock: taking the same lock makes the copy consistent and keeps the
 * string alive while it is compared and parsed. A bad value is reported once and
 * qtopo hands the call on; the values must be equal on all ranks, which the agreement
 * checks (coll_qtopo_agree.c).
 */
bool mca_coll_qtopo_settings_read(mca_coll_qtopo_module_t *m, mca_coll_qtopo_settings_t *s)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    char *text = NULL;
    qtopo_rules_t rules;

    ompi_mpit_lock();
    copy_settings(c, s);
    s->valid = numbers_valid(c);
    if (s->valid && NULL != m) {
        s->valid = rules_valid(c->rules, &m->rules_text, &m->rules);
    } else if (s->valid) {
        s->valid = rules_valid(c->rules, &text, &rules);
        free(text);
    }
    ompi_mpit_unlock();
    return s->valid;
}

/* The fault "what:rank:call" is set for this rank and call. */
bool mca_coll_qtopo_fault(const char *what, int rank, uint64_t call)
{
    char kind[16];
    unsigned long long at;
    bool hit = false;
    int who;

    ompi_mpit_lock();
    if (NULL != mca_coll_qtopo_component.fault
        && 3 == sscanf(mca_coll_qtopo_component.fault, "%15[a-z]:%d:%llu", kind, &who, &at)) {
        hit = 0 == strcmp(kind, what) && who == rank && at == call;
    }
    ompi_mpit_unlock();
    return hit;
}

/* Only the counts that changed are added: the process totals atomically (calls on
 * several communicators run at once), the module's plainly (one call at a time). */
static void add_counts(mca_coll_qtopo_counters_t *total, mca_coll_qtopo_counters_t *mine,
                       const mca_coll_qtopo_counters_t *d)
{
    const unsigned long *from = (const unsigned long *) d;
    unsigned long *to = (unsigned long *) total, *own = (unsigned long *) mine;
    size_t i;

    for (i = 0; i < sizeof(*d) / sizeof(unsigned long); ++i) {
        if (0 != from[i]) {
            __atomic_fetch_add(&to[i], from[i], __ATOMIC_RELAXED);
            own[i] += from[i];
        }
    }
}

void mca_coll_qtopo_count(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_counters_t *delta)
{
    add_counts(&mca_coll_qtopo_component.counters, &m->counters, delta);
}
