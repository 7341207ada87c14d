/*
 * coll/qtopo component: the structure Open MPI loads (mca_coll_qtopo_component), the
 * MCA parameters with their help texts (ompi_info --param coll qtopo --level 9), the
 * MPI_T performance variables, and validation of parameter values.
 */

#include "ompi_config.h"

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

static int qtopo_register(void);
static int qtopo_open(void);
static int qtopo_close(void);

mca_coll_qtopo_component_t mca_coll_qtopo_component = {
    .super = {
        .collm_version = {
            MCA_COLL_BASE_VERSION_2_0_0,
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
                 "match wins, e.g. \"<=256K:32,<=8M:8/256,*:4/128\"; empty: coll_qtopo_bits "
                 "for every size. MPI_T-settable",
                 MCA_BASE_VAR_TYPE_STRING, NULL, OPAL_INFO_LVL_4, true, &c->rules);
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

static void register_counters(mca_coll_qtopo_counters_t *k)
{
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
    c->node_size = 0;
    register_var("node_size",
                 "Pretend that every K consecutive ranks form a node (testing and tuning the "
                 "hierarchy on one host); 0 (default) uses the real node layout",
                 MCA_BASE_VAR_TYPE_INT, NULL, OPAL_INFO_LVL_9, false, &c->node_size);
    register_quantization_params(c);
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

/*
 * Prints a help text of help-coll-qtopo.txt from the first process of the job only:
 * what qtopo reports concerns settings that are equal on every process. (Open MPI
 * 4.1's aggregation of opal_show_help messages at mpirun was seen to drop a message
 * with "Data unpack would read past end of buffer" when the job ends right after.)
 */
void mca_coll_qtopo_show_help(const char *topic, ...)
{
    va_list ap;
    char *msg;

    if (0 != opal_proc_local_get()->proc_name.vpid) {
        return;
    }
    va_start(ap, topic);
    msg = opal_show_help_vstring("help-coll-qtopo.txt", topic, true, ap);
    va_end(ap);
    if (NULL != msg) {
        opal_output(0, "%s", msg);
        free(msg);
    }
}

/* Reports a bad parameter value once per process and value. */
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

/*
 * Checks the current parameter values. A bad one is reported once and qtopo falls
 * back. The values must be equal on all ranks, so all ranks reach the same verdict.
 */
bool mca_coll_qtopo_params_valid(mca_coll_qtopo_module_t *m)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    char *text = NULL;
    qtopo_rules_t rules;
    bool ok;

    if (!numbers_valid(c)) {
        return false;
    }
    if (NULL != m) {
        return rules_valid(c->rules, &m->rules_text, &m->rules);
    }
    ok = rules_valid(c->rules, &text, &rules);
    free(text);
    return ok;
}

static void add_counts(mca_coll_qtopo_counters_t *to, const mca_coll_qtopo_counters_t *d)
{
    __atomic_fetch_add(&to->calls_handled, d->calls_handled, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->calls_quantized, d->calls_quantized, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->calls_fallback, d->calls_fallback, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->bytes_logical, d->bytes_logical, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->bytes_wire, d->bytes_wire, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->usec_total, d->usec_total, __ATOMIC_RELAXED);
    __atomic_fetch_add(&to->usec_code, d->usec_code, __ATOMIC_RELAXED);
}

void mca_coll_qtopo_count(mca_coll_qtopo_module_t *m, const mca_coll_qtopo_counters_t *delta)
{
    add_counts(&mca_coll_qtopo_component.counters, delta);
    add_counts(&m->counters, delta);
}
