/*
 * qtopo_bench: MPI_Allreduce of floats (MPI_SUM), qtopo against Open MPI's own
 * allreduce, measured side by side in the same run (osu_allreduce-like).
 *
 *   mpirun -np 4 --mca coll_qtopo_priority 40 qtopo_bench [-b MIN] [-e MAX] [-r ROUNDS]
 *          [--sizes 1M,16M,64M] [--bits B] [--rounding nearest|stochastic]
 *          [--data grad|gauss|student|smooth|sparse] [--median] [--csv]
 *
 * Sizes are bytes of fp32 data: MIN to MAX in x4 steps (default 4 B .. 64 MiB), or the
 * explicit --sizes list (K, M, G suffixes: 2^10, 2^20, 2^30). --bits and --rounding set the
 * MPI_T control variables coll_qtopo_bits and coll_qtopo_rounding on every rank after
 * MPI_Init; the header prints the qtopo settings in effect, read back through MPI_T.
 *
 * For every size it times the call on a duplicate of MPI_COMM_WORLD (where qtopo runs, if
 * enabled) and on a twin duplicate that excludes qtopo (ompi_comm_coll_preference=^qtopo:
 * Open MPI's default choice), alternating the two for ROUNDS rounds and keeping each one's
 * best round. With --median, each time is the median over the rounds instead, and the
 * speedup is the median of the rounds' own ratios (each round's two timings are adjacent,
 * so a load that changes during the run touches both sides of a ratio alike): steadier on
 * a shared machine than best-of, where one lucky round decides. The input (--data) is,
 * from a deterministic generator of (rank, index):
 *   grad     (default) gradient-like: Gaussian, standard deviation 1e-3 times 1..4 by rank
 *   gauss    standard Gaussian
 *   student  Student-t with 3 degrees of freedom (heavy tails)
 *   smooth   a sampled field: a sum of three sines per rank (periods 6283, 459, 88 values)
 *   sparse   standard Gaussian in 1/16 of the 1024-value regions (another set per rank),
 *            zero elsewhere
 * (the unit-scale kinds are for the error-bounded mode, coll_qtopo_error_bound).
 *
 * Reported per size, nccl-tests style, with times per call of the slowest rank:
 *   qtopo_us      qtopo's time
 *   eff_busbw     algbw * 2(n-1)/n in GB/s, algbw = logical fp32 bytes / time ("effective"
 *                 because quantized calls move fewer bytes than that)
 *   wire_B/rank   bytes one rank sent per call: the coll_qtopo_bytes_wire counter's delta
 *                 over the timed qtopo calls, averaged over ranks and calls
 *   code%         share of qtopo's time spent encoding and decoding (usec_code/usec_total)
 *   max_abs, mean_abs, max_rel   error of qtopo's result against an exact double-precision
 *                 sum of the inputs, checked once per size on the first (untimed) call;
 *                 max_rel is max_abs / max |exact|. Each rank checks a 1/n slice,
 *                 regenerating every rank's inputs for it, and a checksum checks that all
 *                 ranks got the same result (a warning on stderr if not). With
 *                 coll_qtopo_warmup or coll_qtopo_ratio < 1 that call may be lossless.
 *   ompi_us, ompi_busbw   the same for Open MPI's allreduce
 *   speedup       Open MPI time / qtopo time
 *   ran           from the MPI_T counters: "qtopo" (lossless), "q-<bits>" (quantized;
 *                 "q-rule" when coll_qtopo_rules picks the width, "q-eb" in the error-bounded
 *                 mode), "mixed" (only some calls
 *                 quantized or handled) or "prev" (handed to the previous component)
 *
 * --csv prints the same rows comma-separated, with the bits, rounding, rank count and data
 * kind on every row, after '#' comment lines and one line of column names. Absolute times on a
 * shared machine are noise: compare the two columns of one run.
 */

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#define BENCH_MAX_SIZES 64
#define NORMAL_TABLE_BITS 16
#define NORMAL_TABLE_SIZE (1 << NORMAL_TABLE_BITS)

typedef struct bench_opts {
    size_t min_bytes, max_bytes;
    size_t sizes[BENCH_MAX_SIZES]; /* --sizes, else MIN..MAX in x4 steps */
    int nsizes;
    int rounds;
    int median;   /* --median: medians over the rounds instead of the best round */
    int bits;     /* -1: leave coll_qtopo_bits as it is */
    int rounding; /* -1: leave coll_qtopo_rounding as it is */
    int csv;
} bench_opts_t;

/* --data: the input kind */
enum { DATA_GRAD, DATA_GAUSS, DATA_STUDENT, DATA_SMOOTH, DATA_SPARSE, DATA_COUNT };
static const char *const g_data_names[DATA_COUNT] = {"grad", "gauss", "student", "smooth",
                                                     "sparse"};
static int g_data = DATA_GRAD;

/* The MPI_T counters the benchmark reads, in this order. */
enum { CTR_HANDLED, CTR_QUANTIZED, CTR_WIRE, CTR_USEC_TOTAL, CTR_USEC_CODE, CTR_COUNT };
static const char *const g_counter_names[CTR_COUNT] = {
    "coll_qtopo_calls_handled", "coll_qtopo_calls_quantized", "coll_qtopo_bytes_wire",
    "coll_qtopo_usec_total",    "coll_qtopo_usec_code",
};

/* The settings the header reports, read back through MPI_T. */
static const char *const g_setting_names[] = {
    "bits",         "rounding",  "block_size", "algorithm", "segment_size",
    "min_bytes",    "rules",     "ratio",      "warmup",    "error_feedback",
    "error_bound",  "error_bound_mode",
};

static MPI_T_pvar_session g_session;
static MPI_T_pvar_handle g_pvar[CTR_COUNT];
static int g_have_pvar[CTR_COUNT];
static float g_normal[NORMAL_TABLE_SIZE];

/* Results of one size, as rank 0 prints them. */
typedef struct bench_row {
    size_t bytes;
    double tq, to;                     /* seconds per call: qtopo, Open MPI */
    double speedup;                    /* to / tq, or with --median the rounds' median */
    double wire_per_call, code_share;  /* code_share < 0: no time counted */
    double max_abs, mean_abs, max_rel; /* qtopo's error */
    const char *ran;
} bench_row_t;

/* ---- MPI_T ------------------------------------------------------------------------------ */

static void open_counters(void)
{
    int provided, i, idx, count;

    MPI_T_init_thread(MPI_THREAD_SINGLE, &provided);
    MPI_T_pvar_session_create(&g_session);
    for (i = 0; i < CTR_COUNT; ++i) {
        if (MPI_SUCCESS == MPI_T_pvar_get_index(g_counter_names[i], MPI_T_PVAR_CLASS_COUNTER, &idx)
            && MPI_SUCCESS == MPI_T_pvar_handle_alloc(g_session, idx, NULL, &g_pvar[i], &count)) {
            g_have_pvar[i] = 1;
        }
    }
}

static void close_counters(void)
{
    int i;

    for (i = 0; i < CTR_COUNT; ++i) {
        if (g_have_pvar[i]) {
            MPI_T_pvar_handle_free(g_session, &g_pvar[i]);
        }
    }
    MPI_T_pvar_session_free(&g_session);
    MPI_T_finalize();
}

static void read_counters(unsigned long *v)
{
    int i;

    for (i = 0; i < CTR_COUNT; ++i) {
        v[i] = 0;
        if (g_have_pvar[i]) {
            MPI_T_pvar_read(g_session, g_pvar[i], &v[i]);
        }
    }
}

/* Allocates a handle for the control variable coll_qtopo_<name>; 0 if there is none. */
static int cvar_open(const char *name, MPI_T_cvar_handle *h, MPI_Datatype *dt, MPI_T_enum *en)
{
    char full[128], cname[128], desc[16];
    int idx, count, verb, bind, scope, nlen = sizeof(cname), dlen = sizeof(desc);

    snprintf(full, sizeof(full), "coll_qtopo_%s", name);
    if (MPI_SUCCESS != MPI_T_cvar_get_index(full, &idx)
        || MPI_SUCCESS != MPI_T_cvar_get_info(idx, cname, &nlen, &verb, dt, en, desc, &dlen,
                                              &bind, &scope)) {
        return 0;
    }
    return MPI_SUCCESS == MPI_T_cvar_handle_alloc(idx, NULL, h, &count);
}

/* Sets the int control variable coll_qtopo_<name>; 0 if that failed. */
static int cvar_write_int(const char *name, int value)
{
    MPI_T_cvar_handle h;
    MPI_Datatype dt;
    MPI_T_enum en;
    int ok;

    if (!cvar_open(name, &h, &dt, &en)) {
        return 0;
    }
    ok = MPI_INT == dt && MPI_SUCCESS == MPI_T_cvar_write(h, &value);
    MPI_T_cvar_handle_free(&h);
    return ok;
}

/* The name of `value` in an MPI_T enumeration, else the number. */
static void format_enum(MPI_T_enum en, int value, char *buf, size_t len)
{
    char name[64];
    int num, i, v, nlen;

    snprintf(buf, len, "%d", value);
    nlen = sizeof(name);
    if (MPI_T_ENUM_NULL == en || MPI_SUCCESS != MPI_T_enum_get_info(en, &num, name, &nlen)) {
        return;
    }
    for (i = 0; i < num; ++i) {
        nlen = sizeof(name);
        if (MPI_SUCCESS == MPI_T_enum_get_item(en, i, &v, name, &nlen) && v == value) {
            snprintf(buf, len, "%s", name);
            return;
        }
    }
}

/* The value of coll_qtopo_<name> as text ("n/a" where it does not exist). */
static void cvar_format(const char *name, char *buf, size_t len)
{
    union {
        int i;
        unsigned u;
        unsigned long ul;
        unsigned long long ull;
        double d;
        _Bool b;
        char s[1024];
    } v;
    MPI_T_cvar_handle h;
    MPI_Datatype dt;
    MPI_T_enum en;

    snprintf(buf, len, "n/a");
    memset(&v, 0, sizeof(v));
    if (!cvar_open(name, &h, &dt, &en)) {
        return;
    }
    if (MPI_SUCCESS == MPI_T_cvar_read(h, &v)) {
        if (MPI_INT == dt) {
            format_enum(en, v.i, buf, len);
        } else if (MPI_UNSIGNED == dt) {
            snprintf(buf, len, "%u", v.u);
        } else if (MPI_UNSIGNED_LONG == dt) {
            snprintf(buf, len, "%lu", v.ul);
        } else if (MPI_UNSIGNED_LONG_LONG == dt) {
            snprintf(buf, len, "%llu", v.ull);
        } else if (MPI_DOUBLE == dt) {
            snprintf(buf, len, "%g", v.d);
        } else if (MPI_C_BOOL == dt) {
            snprintf(buf, len, "%s", v.b ? "true" : "false");
        } else if (MPI_CHAR == dt) {
            snprintf(buf, len, "\"%.*s\"", (int) sizeof(v.s) - 1, v.s);
        } else {
            snprintf(buf, len, "?");
        }
    }
    MPI_T_cvar_handle_free(&h);
}

/* ---- input data and the exact reference ------------------------------------------------ */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

/* A table of standard normal values (Box-Muller from a fixed seed): equal on all ranks. */
static void init_normal_table(void)
{
    const double two_pi = 6.283185307179586;
    int i;

    for (i = 0; i < NORMAL_TABLE_SIZE; i += 2) {
        uint64_t h = mix64(0x243f6a8885a308d3ULL + (uint64_t) i);
        double u1 = ((double) (h >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
        double u2 = (double) (mix64(h) >> 11) / 9007199254740992.0;  /* [0, 1) */
        double r = sqrt(-2.0 * log(u1));
        g_normal[i] = (float) (r * cos(two_pi * u2));
        g_normal[i + 1] = (float) (r * sin(two_pi * u2));
    }
}

/* Table value number k (0..3) picked by the hash h. */
static float normal_at(uint64_t h, int k)
{
    return g_normal[(h >> (16 * k)) & (NORMAL_TABLE_SIZE - 1)];
}

/* Element i of rank `rank`'s input, of the --data kind (see the top of this file); z is
 * N(0, 1) from two table values (/ sqrt 2). */
static float input_value(int rank, size_t i)
{
    uint64_t h = mix64(((uint64_t) rank + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t) i), h2;
    float z = (normal_at(h, 0) + normal_at(h, 2)) * 0.70710678f;
    double t = (double) i, chi2 = 0.0;

    switch (g_data) {
    case DATA_GAUSS:
        return z;
    case DATA_STUDENT:
        h2 = mix64(h);
        for (int k = 0; k < 3; ++k) {
            double g = (double) normal_at(h2, k);
            chi2 += g * g;
        }
        return (float) ((double) z / sqrt(chi2 / 3.0));
    case DATA_SMOOTH:
        return (float) ((1.0 + 0.1 * rank) * sin(t * 1e-3 + 0.3 * rank)
                        + 0.5 * sin(t * 0.0137 + rank) + 0.25 * cos(t * 0.071 + 0.3 * rank));
    case DATA_SPARSE:
        return 0 == (i / 1024 * 2654435761u + (size_t) rank * 40503u) % 16 ? z : 0.0f;
    default:
        return z * (1e-3f * (float) (1 + rank % 4));
    }
}

/* FNV-1a over the result's bytes, to check that all ranks got the same one. */
static uint64_t checksum(const float *out, size_t count)
{
    const unsigned char *p = (const unsigned char *) out;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; i < count * sizeof(float); ++i) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

/* Error of `out` against the exact sum, over this rank's 1/size slice, reduced over all
 * ranks: max |err|, mean |err| and max |err| / max |exact|. Warns if ranks differ. */
static void result_error(MPI_Comm comm, const float *out, size_t count, bench_row_t *row)
{
    double local[2] = {0.0, 0.0}, global[2], sum_abs = 0.0, total_abs;
    uint64_t sums[2], mins[2];
    int rank, size, r;
    size_t i, lo, hi;

    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    lo = count * (size_t) rank / (size_t) size;
    hi = count * (size_t) (rank + 1) / (size_t) size;
    for (i = lo; i < hi; ++i) {
        double exact = 0.0, err;
        for (r = 0; r < size; ++r) {
            exact += (double) input_value(r, i);
        }
        err = fabs((double) out[i] - exact);
        local[0] = err > local[0] ? err : local[0];
        local[1] = fabs(exact) > local[1] ? fabs(exact) : local[1];
        sum_abs += err;
    }
    MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(&sum_abs, &total_abs, 1, MPI_DOUBLE, MPI_SUM, comm);
    row->max_abs = global[0];
    row->mean_abs = total_abs / (double) count;
    row->max_rel = 0.0 < global[1] ? global[0] / global[1] : 0.0;

    /* all checksums equal <=> min(h) == max(h), and max(h) == ~min(~h) */
    sums[0] = checksum(out, count);
    sums[1] = ~sums[0];
    MPI_Allreduce(sums, mins, 2, MPI_UINT64_T, MPI_MIN, comm);
    if (0 == rank && mins[0] != ~mins[1]) {
        fprintf(stderr, "qtopo_bench: WARNING: %zu bytes: ranks got different results\n",
                count * sizeof(float));
    }
}

/* ---- measuring -------------------------------------------------------------------------- */

/* Seconds per call, slowest rank, for `iters` calls. */
static double time_calls(MPI_Comm comm, const float *in, float *out, int count, int iters)
{
    double t0, dt, worst;
    int i;

    MPI_Barrier(comm);
    t0 = MPI_Wtime();
    for (i = 0; i < iters; ++i) {
        MPI_Allreduce(in, out, count, MPI_FLOAT, MPI_SUM, comm);
    }
    dt = (MPI_Wtime() - t0) / iters;
    MPI_Allreduce(&dt, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
    return worst;
}

/* Which module ran `calls` calls on every rank, from the summed counter deltas. */
static const char *module_ran(const unsigned long *d, unsigned long calls, int bits,
                              int by_rule)
{
    static char name[16];

    if (0 == d[CTR_HANDLED]) {
        return "prev";
    }
    if (calls != d[CTR_HANDLED] || (0 != d[CTR_QUANTIZED] && calls != d[CTR_QUANTIZED])) {
        return "mixed";
    }
    if (0 == d[CTR_QUANTIZED]) {
        return "qtopo";
    }
    if (by_rule) {
        return "q-rule";
    }
    if (0 == bits) {
        return "q-eb";
    }
    snprintf(name, sizeof(name), "q-%d", bits);
    return name;
}

static void fill_input(float *in, size_t count, int rank)
{
    size_t i;

    for (i = 0; i < count; ++i) {
        in[i] = input_value(rank, i);
    }
}

static void print_row(const bench_row_t *w, int size, const bench_opts_t *o, int bits,
                      const char *rounding)
{
    double busf = 2.0 * (size - 1) / size;
    double qbus = (double) w->bytes / w->tq / 1e9 * busf;
    double obus = (double) w->bytes / w->to / 1e9 * busf;
    char code[16];

    if (0.0 > w->code_share) {
        snprintf(code, sizeof(code), "-");
    } else {
        snprintf(code, sizeof(code), "%.1f", 100.0 * w->code_share);
    }
    if (o->csv) {
        printf("%zu,%.2f,%.4f,%.0f,%s,%.3e,%.3e,%.3e,%.2f,%.4f,%.3f,%s,%d,%s,%d,%s\n", w->bytes,
               w->tq * 1e6, qbus, w->wire_per_call, code, w->max_abs, w->mean_abs, w->max_rel,
               w->to * 1e6, obus, w->speedup, w->ran, bits, rounding, size,
               g_data_names[g_data]);
    } else {
        printf("%12zu %11.1f %9.3f %12.0f %6s %9.2e %9.2e %9.2e %11.1f %10.3f %7.2fx  %s\n",
               w->bytes, w->tq * 1e6, qbus, w->wire_per_call, code, w->max_abs, w->mean_abs,
               w->max_rel, w->to * 1e6, obus, w->speedup, w->ran);
    }
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}

/* The median of v[0..n-1] (sorts v). */
static double median_of(double *v, int n)
{
    qsort(v, (size_t) n, sizeof(double), cmp_double);
    return 0 == n % 2 ? 0.5 * (v[n / 2 - 1] + v[n / 2]) : v[n / 2];
}

/* The rounds' timings, qtopo and Open MPI, into row->tq, row->to and row->speedup. */
static void time_rounds(MPI_Comm qcomm, MPI_Comm ocomm, const bench_opts_t *o, const float *in,
                        float *out, int count, int iters, bench_row_t *row)
{
    double *t = malloc(3 * (size_t) o->rounds * sizeof(double));
    double *tq = t, *to = t + o->rounds, *ratio = t + 2 * o->rounds;
    int k;

    if (NULL == t) {
        fprintf(stderr, "qtopo_bench: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    row->tq = row->to = 1e30;
    for (k = 0; k < o->rounds; ++k) {
        tq[k] = time_calls(qcomm, in, out, count, iters);
        to[k] = time_calls(ocomm, in, out, count, iters);
        ratio[k] = to[k] / tq[k];
        row->tq = tq[k] < row->tq ? tq[k] : row->tq;
        row->to = to[k] < row->to ? to[k] : row->to;
    }
    row->speedup = row->to / row->tq;
    if (o->median) {
        row->tq = median_of(tq, o->rounds);
        row->to = median_of(to, o->rounds);
        row->speedup = median_of(ratio, o->rounds);
    }
    free(t);
}

/* Times one size on both communicators and fills `row` (on every rank). */
static void bench_size(MPI_Comm qcomm, MPI_Comm ocomm, const bench_opts_t *o, int bits,
                       int by_rule, bench_row_t *row)
{
    size_t count = row->bytes / sizeof(float);
    float *in = malloc(row->bytes), *out = malloc(row->bytes);
    unsigned long c0[CTR_COUNT], c1[CTR_COUNT], d[CTR_COUNT], calls;
    int rank, size, iters, i;

    MPI_Comm_rank(qcomm, &rank);
    MPI_Comm_size(qcomm, &size);
    if (NULL == in || NULL == out) {
        fprintf(stderr, "qtopo_bench: out of memory for %zu bytes\n", row->bytes);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    fill_input(in, count, rank);
    iters = (int) (((size_t) 64 << 20) / (row->bytes * size) + 1);
    iters = 200 < iters ? 200 : iters;

    MPI_Allreduce(in, out, (int) count, MPI_FLOAT, MPI_SUM, ocomm); /* warm-up */
    MPI_Allreduce(in, out, (int) count, MPI_FLOAT, MPI_SUM, qcomm); /* warm-up, checked */
    result_error(ocomm, out, count, row);

    read_counters(c0);
    time_rounds(qcomm, ocomm, o, in, out, (int) count, iters, row);
    read_counters(c1);
    for (i = 0; i < CTR_COUNT; ++i) {
        c1[i] -= c0[i];
    }
    MPI_Allreduce(c1, d, CTR_COUNT, MPI_UNSIGNED_LONG, MPI_SUM, ocomm);

    calls = (unsigned long) o->rounds * (unsigned long) iters;
    row->wire_per_call = (double) d[CTR_WIRE] / (double) size / (double) calls;
    row->code_share = 0 == d[CTR_USEC_TOTAL] ? -1.0
                                             : (double) d[CTR_USEC_CODE] / d[CTR_USEC_TOTAL];
    row->ran = module_ran(d, calls * (unsigned long) size, bits, by_rule);
    free(in);
    free(out);
}

/* ---- options and main ------------------------------------------------------------------- */

static void usage(int rank)
{
    if (0 == rank) {
        fprintf(stderr,
                "usage: qtopo_bench [-b MIN] [-e MAX] [-r ROUNDS] [--sizes S1,S2,...]\n"
                "                   [--bits 32|16|8|4|2|1] [--rounding nearest|stochastic] "
                "\n                   [--data grad|gauss|student|smooth|sparse] [--median] "
                "[--csv]\n"
                "  sizes in bytes of floats (multiples of 4), K/M/G suffixes; default -b 4 -e 64M"
                "\n");
    }
}

/* Bytes with an optional K, M or G suffix; 0 if malformed or not a positive multiple of 4. */
static size_t parse_bytes(const char *s, const char **end)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);

    if ('K' == *e || 'k' == *e) {
        v <<= 10;
        ++e;
    } else if ('M' == *e || 'm' == *e) {
        v <<= 20;
        ++e;
    } else if ('G' == *e || 'g' == *e) {
        v <<= 30;
        ++e;
    }
    *end = e;
    if (e == s || 0 != v % sizeof(float) || v / sizeof(float) > (unsigned long long) INT_MAX) {
        return 0;
    }
    return (size_t) v;
}

static int parse_size_list(const char *s, bench_opts_t *o)
{
    const char *end;

    o->nsizes = 0;
    do {
        if (BENCH_MAX_SIZES == o->nsizes) {
            return 0;
        }
        o->sizes[o->nsizes] = parse_bytes(s, &end);
        if (0 == o->sizes[o->nsizes++] || (',' != *end && '\0' != *end)) {
            return 0;
        }
        s = end + 1;
    } while (',' == *end);
    return 1;
}

static int parse_bits(const char *s)
{
    int b = atoi(s);

    return (32 == b || 16 == b || 8 == b || 4 == b || 2 == b || 1 == b) ? b : -2;
}

static int parse_rounding(const char *s)
{
    if (0 == strcmp(s, "nearest")) {
        return 0;
    }
    return 0 == strcmp(s, "stochastic") ? 1 : -2;
}

/* One option with its value; 0 if unknown or malformed. */
static int parse_option(const char *opt, const char *val, bench_opts_t *o)
{
    const char *end;

    if (0 == strcmp(opt, "-b")) {
        o->min_bytes = parse_bytes(val, &end);
        return 0 != o->min_bytes && '\0' == *end;
    } else if (0 == strcmp(opt, "-e")) {
        o->max_bytes = parse_bytes(val, &end);
        return 0 != o->max_bytes && '\0' == *end;
    } else if (0 == strcmp(opt, "-r")) {
        o->rounds = atoi(val);
        return 0 < o->rounds;
    } else if (0 == strcmp(opt, "--sizes")) {
        return parse_size_list(val, o);
    } else if (0 == strcmp(opt, "--bits")) {
        o->bits = parse_bits(val);
        return -2 != o->bits;
    } else if (0 == strcmp(opt, "--rounding")) {
        o->rounding = parse_rounding(val);
        return -2 != o->rounding;
    } else if (0 == strcmp(opt, "--data")) {
        for (g_data = 0; g_data < DATA_COUNT && 0 != strcmp(val, g_data_names[g_data]);
             ++g_data) {
        }
        return DATA_COUNT != g_data;
    }
    return 0;
}

/* 1 if the command line is good; prints the usage (rank 0) otherwise. */
static int parse_args(int argc, char **argv, bench_opts_t *o, int rank)
{
    size_t bytes;
    int i;

    memset(o, 0, sizeof(*o));
    o->min_bytes = 4;
    o->max_bytes = (size_t) 64 << 20;
    o->rounds = 3;
    o->bits = o->rounding = -1;
    for (i = 1; i < argc; ++i) {
        if (0 == strcmp(argv[i], "--csv")) {
            o->csv = 1;
        } else if (0 == strcmp(argv[i], "--median")) {
            o->median = 1;
        } else if (i + 1 >= argc || !parse_option(argv[i], argv[i + 1], o)) {
            if (0 == rank) {
                fprintf(stderr, "qtopo_bench: bad or incomplete option '%s'\n", argv[i]);
            }
            usage(rank);
            return 0;
        } else {
            ++i;
        }
    }
    if (0 == o->nsizes) {
        for (bytes = o->min_bytes; bytes <= o->max_bytes && BENCH_MAX_SIZES > o->nsizes;
             bytes *= 4) {
            o->sizes[o->nsizes++] = bytes;
        }
    }
    return 1;
}

/* Applies --bits and --rounding through MPI_T (every rank alike); 0 if that failed. */
static int apply_settings(const bench_opts_t *o, int rank)
{
    if ((0 <= o->bits && !cvar_write_int("bits", o->bits))
        || (0 <= o->rounding && !cvar_write_int("rounding", o->rounding))) {
        if (0 == rank) {
            fprintf(stderr, "qtopo_bench: cannot set coll_qtopo_bits/rounding through MPI_T "
                            "(is qtopo installed?)\n");
        }
        return 0;
    }
    return 1;
}

static void print_header(int size, const bench_opts_t *o)
{
    char value[1100];
    size_t i;

    printf("# qtopo_bench: MPI_Allreduce float sum, %d ranks, %d rounds (%s), data %s; "
           "qtopo counters %s\n# qtopo settings:",
           size, o->rounds, o->median ? "medians" : "best kept", g_data_names[g_data],
           g_have_pvar[CTR_HANDLED] ? "found" : "missing (qtopo not loaded)");
    for (i = 0; i < sizeof(g_setting_names) / sizeof(g_setting_names[0]); ++i) {
        cvar_format(g_setting_names[i], value, sizeof(value));
        printf(" %s=%s", g_setting_names[i], value);
    }
    printf("\n# eff_busbw = (fp32 bytes / time) * 2(n-1)/n, GB/s; wire_B/rank = bytes one rank "
           "sent per call; code%% = coding share of qtopo's time;\n# errors vs exact double sum,"
           " max_rel = max_abs / max|exact|; speedup = Open MPI time / qtopo time\n");
    if (o->csv) {
        printf("bytes,qtopo_us,eff_busbw,wire_bytes_per_rank,code_pct,max_abs_err,mean_abs_err,"
               "max_rel_err,ompi_us,ompi_busbw,speedup,ran,bits,rounding,ranks,data\n");
    } else {
        printf("# %10s %11s %9s %12s %6s %9s %9s %9s %11s %10s %8s  %s\n", "bytes", "qtopo_us",
               "eff_busbw", "wire_B/rank", "code%", "max_abs", "mean_abs", "max_rel", "ompi_us",
               "ompi_busbw", "speedup", "ran");
    }
    fflush(stdout);
}

/* The bits in effect (0: the error-bounded mode), and whether coll_qtopo_rules may
 * override them per size. */
static int current_bits(int *by_rule, char *rounding, size_t len)
{
    char bits[32], rules[1100], bound[64];

    cvar_format("bits", bits, sizeof(bits));
    cvar_format("rules", rules, sizeof(rules));
    cvar_format("rounding", rounding, len);
    cvar_format("error_bound", bound, sizeof(bound));
    *by_rule = 0 != strcmp(rules, "\"\"") && 0 != strcmp(rules, "n/a");
    return 0.0 < atof(bound) ? 0 : atoi(bits);
}

static void run_sizes(MPI_Comm qcomm, MPI_Comm ocomm, const bench_opts_t *o)
{
    char rounding[32];
    bench_row_t row;
    int rank, size, by_rule, bits = current_bits(&by_rule, rounding, sizeof(rounding));
    int i;

    MPI_Comm_rank(qcomm, &rank);
    MPI_Comm_size(qcomm, &size);
    for (i = 0; i < o->nsizes; ++i) {
        memset(&row, 0, sizeof(row));
        row.bytes = o->sizes[i];
        bench_size(qcomm, ocomm, o, bits, by_rule, &row);
        if (0 == rank) {
            print_row(&row, size, o, bits, rounding);
        }
    }
}

int main(int argc, char **argv)
{
    bench_opts_t o;
    MPI_Comm qcomm, ocomm;
    MPI_Info info;
    int rank, size, ok;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    open_counters();
    ok = parse_args(argc, argv, &o, rank) && apply_settings(&o, rank);
    if (!ok) {
        close_counters();
        MPI_Finalize();
        return 1;
    }
    init_normal_table();
    MPI_Comm_dup(MPI_COMM_WORLD, &qcomm);
    MPI_Info_create(&info);
    MPI_Info_set(info, "ompi_comm_coll_preference", "^qtopo");
    MPI_Comm_dup_with_info(MPI_COMM_WORLD, info, &ocomm);
    MPI_Info_free(&info);

    if (0 == rank) {
        print_header(size, &o);
    }
    run_sizes(qcomm, ocomm, &o);
    MPI_Comm_free(&qcomm);
    MPI_Comm_free(&ocomm);
    close_counters();
    MPI_Finalize();
    return 0;
}
