/*
 * coll/qtopo component: the structure Open MPI loads (mca_coll_qtopo_component), the
 * MCA parameters with their help texts (ompi_info --param coll qtopo --level 9), the
 * MPI_T performance variables, and validation of parameter values.
 */

#include "ompi_config.h"

#include "coll_qtopo.h"

#include "mpi.h"
#include "opal/mca/base/mca_base_pvar.h"
#include "opal/mca/base/mca_base_var.h"
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

/* Bit widths qtopo implements; coll_qtopo_bits must be one of them. */
static const int qtopo_supported_bits[] = {32};

static const mca_base_var_enum_value_t qtopo_algorithms[] = {
    {QTOPO_ALG_AUTO, "auto"},
    {QTOPO_ALG_RING, "ring"},
    {0, NULL},
};

static void register_int(const char *name, const char *help, mca_base_var_enum_t *enumerator,
                         mca_base_var_info_lvl_t level, bool settable, int *storage)
{
    (void) mca_base_component_var_register(
        &mca_coll_qtopo_component.super.collm_version, name, help, MCA_BASE_VAR_TYPE_INT,
        enumerator, 0, settable ? MCA_BASE_VAR_FLAG_SETTABLE : 0, level,
        settable ? MCA_BASE_VAR_SCOPE_ALL_EQ : MCA_BASE_VAR_SCOPE_READONLY, storage);
}

static void register_size(const char *name, const char *help, mca_base_var_info_lvl_t level,
                          size_t *storage)
{
    (void) mca_base_component_var_register(&mca_coll_qtopo_component.super.collm_version, name,
                                           help, MCA_BASE_VAR_TYPE_SIZE_T, NULL, 0,
                                           MCA_BASE_VAR_FLAG_SETTABLE, level,
                                           MCA_BASE_VAR_SCOPE_ALL_EQ, storage);
}

static void register_counter(const char *name, const char *help, unsigned long *counter)
{
    (void) mca_base_component_pvar_register(
        &mca_coll_qtopo_component.super.collm_version, name, help, OPAL_INFO_LVL_4,
        MCA_BASE_PVAR_CLASS_COUNTER, MCA_BASE_VAR_TYPE_UNSIGNED_LONG, NULL,
        MCA_BASE_VAR_BIND_NO_OBJECT, MCA_BASE_PVAR_FLAG_READONLY | MCA_BASE_PVAR_FLAG_CONTINUOUS,
        NULL, NULL, NULL, counter);
}

static int qtopo_register(void)
{
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;
    mca_base_var_enum_t *algs = NULL;

    /* defaults are set here, every time: register can run more than once */
    c->priority = 0;
    register_int("priority",
                 "Priority of coll/qtopo; 0 (default) leaves it off. Set it above tuned (30) "
                 "and below cuda (78), e.g. 40, to let qtopo run MPI_Allreduce on float sums",
                 NULL, OPAL_INFO_LVL_2, false, &c->priority);
    c->bits = 32;
    register_int("bits",
                 "Bits per value on the wire: 32 = exact fp32 (lossless). Must be equal on all "
                 "ranks; MPI_T-settable between calls",
                 NULL, OPAL_INFO_LVL_2, true, &c->bits);
    /* Cut-over measured with examples/qtopo_bench, 4 ranks on one 2-core host, lossless
     * ring vs Open MPI's default in the same run (speedup, 3 runs of segment sizes
     * 64K/256K/1M): 16 KiB 0.69-0.77x, 64 KiB 0.87-0.98x, 256 KiB 0.98-1.18x,
     * 1 MiB 0.93-1.24x. Below 256 KiB the previous component's latency-bound
     * algorithms win; 256 KiB segments were best or within noise at every size. */
    c->min_bytes = 262144;
    register_size("min_bytes",
                  "Smallest allreduce, in bytes (count * 4), that qtopo runs itself; smaller "
                  "ones go to the previous component (default 262144)",
                  OPAL_INFO_LVL_4, &c->min_bytes);
    c->segment_size = 262144;
    register_size("segment_size",
                  "Pipeline segment size in bytes: transfers of one segment overlap the "
                  "reduction of the previous one (default 262144)",
                  OPAL_INFO_LVL_5, &c->segment_size);
    c->algorithm = QTOPO_ALG_AUTO;
    if (OPAL_SUCCESS == mca_base_var_enum_create("coll_qtopo_algorithms", qtopo_algorithms,
                                                 &algs)) {
        register_int("algorithm",
                     "Allreduce algorithm: auto (choose by topology and size) or ring "
                     "(pipelined ring reduce-scatter + allgather); for tests and tuning",
                     algs, OPAL_INFO_LVL_5, true, &c->algorithm);
        OBJ_RELEASE(algs);
    }
    c->verbose = 0;
    register_int("verbose",
                 "Verbosity of coll/qtopo: 0 silent, 1 setup decisions, 2 every handled call",
                 NULL, OPAL_INFO_LVL_9, false, &c->verbose);

    register_counter("calls_handled", "MPI_Allreduce calls run by qtopo's own algorithms",
                     &c->counters.calls_handled);
    register_counter("calls_fallback",
                     "MPI_Allreduce calls on qtopo communicators handed to the previous "
                     "component (other types or ops, small counts, bad parameters)",
                     &c->counters.calls_fallback);
    register_counter("bytes_logical", "fp32 bytes reduced by qtopo (count * 4 per call)",
                     &c->counters.bytes_logical);
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

static bool bits_supported(int bits)
{
    size_t i;

    for (i = 0; i < sizeof(qtopo_supported_bits) / sizeof(qtopo_supported_bits[0]); ++i) {
        if (qtopo_supported_bits[i] == bits) {
            return true;
        }
    }
    return false;
}

/*
 * Checks the current parameter values; a bad one is reported once per process (the
 * help system folds identical reports of all ranks into one) and qtopo falls back.
 * The values must be equal on all ranks, so all ranks reach the same verdict.
 */
int mca_coll_qtopo_params_valid(void)
{
    static int reported_bits = -1;
    mca_coll_qtopo_component_t *c = &mca_coll_qtopo_component;

    if (bits_supported(c->bits)) {
        return 1;
    }
    if (reported_bits != c->bits) {
        reported_bits = c->bits;
        opal_show_help("help-coll-qtopo.txt", "bad-bits", true, c->bits, "32");
    }
    return 0;
}
