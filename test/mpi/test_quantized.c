/*
 * MPI test of coll/qtopo's quantized allreduce, run with coll_qtopo_bits < 32.
 *
 *   test_quantized [--quick]
 *
 * Reads the quantization parameters through MPI_T and checks, on several
 * communicators, counts and both MPI_IN_PLACE forms:
 *   - every rank's result equals, bit for bit, the specification model
 *     (test/unit/sra_model.c) run locally on all ranks' inputs: hence all ranks agree
 *     (where qtopo runs split-rail, the split-rail model on integer-valued data);
 *   - every element is within the documented bound of the exact double sum;
 *   - NaN/Inf in one rank's input appear exactly where the exact sum has them;
 *   - calls_quantized moves by one per call;
 * then, changing parameters through MPI_T between calls (as every rank does alike):
 *   - coll_qtopo_ratio/warmup: exactly the scheduled calls are quantized;
 *   - coll_qtopo_rules: each size class runs with its own bits/block/segment;
 *   - coll_qtopo_error_feedback: over 100 calls on one buffer, the running sum of the
 *     outputs tracks the exact running sum far better than without.
 * Prints "N passed, M failed" on rank 0.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mpit.h"
#include "sra_model.h"



/* A communicator under test and the number of calls qtopo handled on it (the
 * eligible-call index that keys stochastic rounding and the ratio schedule). */
typedef struct qcomm {
    const char *name;
    MPI_Comm comm;
    int rank, size;
    uint64_t calls;
    int hier_local; /* ranks per pretended node when qtopo runs split-rail here, else 0 */
    int fold_width; /* ... on nodes of hier_local ranks and one smaller last node: the
                     * folded form, as wide as that node (else 0), which qtopo takes for
                     * 8 and 16 bits, or any width with coll_qtopo_algorithm hier */
    int hier_forced; /* coll_qtopo_algorithm hier */
    int *order;     /* the flat algorithms' order of the ranks (by node) */
} qcomm_t;

/* Ranks per node of comm when they are laid out node-major with the same count on
 * every node (rank = node * L + local rank), else 0. */
static int real_local_size(MPI_Comm comm)
{
    int rank, size, local, lrank, ok, all_ok, lmin, lmax;
    MPI_Comm shm;

    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm);
    MPI_Comm_size(shm, &local);
    MPI_Comm_rank(shm, &lrank);
    MPI_Comm_free(&shm);
    ok = rank % local == lrank;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    MPI_Allreduce(&local, &lmin, 1, MPI_INT, MPI_MIN, comm);
    MPI_Allreduce(&local, &lmax, 1, MPI_INT, MPI_MAX, comm);
    return all_ok && lmin == lmax ? local : 0;
}

/* qtopo runs split-rail on M > 1 nodes with L > 1 ranks on some node unless
 * coll_qtopo_algorithm is flat; nodes are K consecutive ranks with coll_qtopo_node_size
 * = K (the last one smaller when K does not divide the size: the folded form, *width
 * set to its size), else real. */
static int hier_local_size(MPI_Comm comm, int size, int *width)
{
    int k, alg;

    mpit_cvar_read("node_size", &k);
    mpit_cvar_read("algorithm", &alg);
    if (0 == k) {
        k = real_local_size(comm);
    }
    *width = 1 != alg && k > 1 && size > k && 0 != size % k ? size % k : 0;
    return 1 != alg && k > 1 && size > k ? k : 0;
}

/* The node label qtopo gives this rank (coll_qtopo_topo.c): K consecutive ranks per node
 * with coll_qtopo_node_size = K, ranks dealt to ceil(size / K) nodes with -K, else the
 * lowest rank on this rank's real node. */
static int node_label(MPI_Comm comm, int rank, int size)
{
    int k, label;
    MPI_Comm shm;

    mpit_cvar_read("node_size", &k);
    if (0 != k) {
        return 0 < k ? rank / k : rank % ((size - k - 1) / -k);
    }
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shm);
    MPI_Allreduce(&rank, &label, 1, MPI_INT, MPI_MIN, shm);
    MPI_Comm_free(&shm);
    return label;
}

/* order: the ranks by node (nodes in order of their lowest rank), then by rank, as
 * qtopo's flat algorithms run them (coll_qtopo_nodes.h). */
static void flat_order(MPI_Comm comm, int rank, int size, int *order)
{
    int *labels = malloc(sizeof(int) * (size_t) size), label = node_label(comm, rank, size);
    int i, j, first, pos = 0;

    MPI_Allgather(&label, 1, MPI_INT, labels, 1, MPI_INT, comm);
    for (i = 0; i < size; ++i) {
        for (j = 0, first = 1; j < i; ++j) {
            first = first && labels[j] != labels[i];
        }
        for (j = i; first && j < size; ++j) {
            if (labels[j] == labels[i]) {
                order[pos++] = j;
            }
        }
    }
    free(labels);
}

static qcomm_t qcomm_make(const char *name, MPI_Comm comm)
{
    qcomm_t q = {name, comm, 0, 0, 0, 0, 0, 0, NULL};

    MPI_Comm_rank(comm, &q.rank);
    MPI_Comm_size(comm, &q.size);
    q.hier_local = hier_local_size(comm, q.size, &q.fold_width);
    mpit_cvar_read("algorithm", &q.hier_forced);
    q.hier_forced = 2 == q.hier_forced;
    q.order = malloc(sizeof(int) * (size_t) q.size);
    flat_order(comm, q.rank, q.size, q.order);
    return q;
}

/* The current parameters, as the component sees them. */
static qtopo_sra_args_t current_args(void)
{
    qtopo_sra_args_t a;
    unsigned long long seed;
    size_t seg;

    memset(&a, 0, sizeof(a));
    mpit_cvar_read("bits", &a.codec.bits);
    mpit_cvar_read("block_size", &a.codec.block);
    mpit_cvar_read("rounding", &a.codec.rounding);
    mpit_cvar_read("seed", &seed);
    mpit_cvar_read("segment_size", &seg);
    mpit_cvar_read("scratch_max", &a.scratch_max);
    a.seed = seed;
    a.seg_bytes = seg;
    return a;
}

static float input_value(int rank, size_t i, int salt)
{
    uint64_t h = ((uint64_t) rank + 1) * 0x9e3779b97f4a7c15ULL
                 ^ ((uint64_t) i + 0x1000 * (uint64_t) salt) * 0xbf58476d1ce4e5b9ULL;
    double u1, u2;

    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    u1 = ((double) (h >> 11) + 0.5) / 9007199254740992.0;
    u2 = ((double) (h & 0x7ff) + 0.5) / 2048.0;
    /* Gaussian, scaled per rank */
    return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)) * (float) (1 + rank % 3);
}

/* The folded form's model: split-rail on a grid as wide as the smallest node, whose
 * rank (node j, local l) holds the sum of node j's local ranks l, l + W, l + 2W, ...
 * (added in that order, as the core rank does) and keys with its rank j * K + l. */
static void folded_model_run(const qcomm_t *q, const sra_model_in_t *t, sra_model_out_t *mo)
{
    int K = q->hier_local, W = q->fold_width, nodes = (q->size + K - 1) / K, j, l, k;
    float **sums = malloc(sizeof(float *) * (size_t) (nodes * W));
    int *keys = malloc(sizeof(int) * (size_t) (nodes * W));
    sra_model_in_t mi = *t;

    for (j = 0; j < nodes; ++j) {
        for (l = 0; l < W; ++l) {
            float *y = malloc(t->count * sizeof(float) + 1);
            memcpy(y, t->in[j * K + l], t->count * sizeof(float));
            for (k = l + W; k < K && j * K + k < q->size; k += W) {
                for (size_t i = 0; i < t->count; ++i) {
                    y[i] += t->in[j * K + k][i];
                }
            }
            sums[j * W + l] = y;
            keys[j * W + l] = j * K + l;
        }
    }
    mi.n = nodes * W;
    mi.in = sums;
    mi.key_ranks = keys;
    hier_model_run(&mi, W, mo);
    for (j = 0; j < nodes * W; ++j) {
        free(sums[j]);
    }
    free(sums);
    free(keys);
}

/* integers: small whole numbers, whose node sums are exact in fp32 (the hier model) */
static void fill_inputs(float **in, int n, size_t count, int salt, int integers)
{
    for (int r = 0; r < n; ++r) {
        for (size_t i = 0; i < count; ++i) {
            in[r][i] = input_value(r, i, salt);
            in[r][i] = integers ? rintf(8.0f * in[r][i]) : in[r][i];
        }
    }
}

static void place_nonfinite(float **in, int n, size_t count)
{
    if (n < 2 || count < 3000) {
        return;
    }
    in[1][5] = INFINITY;
    in[0][777] = NAN;
    in[0][2500] = INFINITY;
    in[1][2500] = -INFINITY;
    in[n - 1][count - 1] = -INFINITY;
}

static float **alloc_inputs(int n, size_t count)
{
    float **in = malloc((size_t) n * sizeof(float *));

    for (int r = 0; r < n; ++r) {
        in[r] = malloc(count * sizeof(float) + 1);
    }
    return in;
}

static void free_inputs(float **in, int n)
{
    for (int r = 0; r < n; ++r) {
        free(in[r]);
    }
    free(in);
}

/* One quantized call checked against the model; returns 1 if it was quantized. */
static int check_call(qcomm_t *q, size_t count, int in_place, int salt, int nonfinite,
                      const qtopo_sra_args_t *args)
{
    float **in = alloc_inputs(q->size, count);
    float *out = malloc(count * sizeof(float) + 1);
    float **by_node = malloc(sizeof(float *) * (size_t) q->size);
    sra_model_in_t mi = {q->size, count, in, *args, NULL};
    sra_model_out_t mo;
    unsigned long q0 = mpit_counter("calls_quantized");
    size_t i, not_model = 0, off_bound = 0;
    int quantized;

    fill_inputs(in, q->size, count, salt, 0 != q->hier_local);
    if (nonfinite) {
        place_nonfinite(in, q->size, count);
    }
    memcpy(out, in[q->rank], count * sizeof(float));
    MPI_Allreduce(in_place ? MPI_IN_PLACE : in[q->rank], out, (int) count, MPI_FLOAT, MPI_SUM,
                  q->comm);
    quantized = (int) (mpit_counter("calls_quantized") - q0);
    mi.args.call = q->calls++;

    mo.y = malloc(count * sizeof(float) + 1);
    mo.bound = malloc(count * sizeof(double) + 1);
    if (q->fold_width && (q->hier_forced || 8 <= args->codec.bits)) {
        folded_model_run(q, &mi, &mo);
    } else if (q->hier_local && !q->fold_width) {
        hier_model_run(&mi, q->hier_local, &mo);
    } else {
        /* group member p is rank order[p], keyed with its rank */
        for (int p = 0; p < q->size; ++p) {
            by_node[p] = in[q->order[p]];
        }
        mi.in = by_node;
        mi.key_ranks = q->order;
        sra_model_run(&mi, &mo);
    }
    for (i = 0; i < count; ++i) {
        double exact = 0.0;
        for (int r = 0; r < q->size; ++r) {
            exact += in[r][i];
        }
        not_model += 0 != memcmp(&out[i], &mo.y[i], sizeof(float));
        if (isfinite(exact)) {
            off_bound += !(fabs((double) out[i] - exact) <= mo.bound[i]);
        } else {
            off_bound += !(isnan(exact) ? isnan(out[i]) : exact == out[i]);
        }
    }
    CHECK(0 == mo.codec_errors, "model codec errors");
    CHECK(0 == not_model, "%s count=%zu bits=%d in_place=%d: %zu values differ from the model",
          q->name, count, args->codec.bits, in_place, not_model);
    CHECK(0 == off_bound, "%s count=%zu bits=%d: %zu values outside the documented bound",
          q->name, count, args->codec.bits, off_bound);
    free(mo.y);
    free(mo.bound);
    free(out);
    free_inputs(in, q->size);
    free(by_node);
    return quantized;
}

static void test_model_and_bound(qcomm_t *q, int quick)
{
    qtopo_sra_args_t a = current_args();
    size_t min_bytes, counts[] = {0, 100003, (1 << 20) + 3};
    int k, nk = quick ? 2 : 3;

    mpit_cvar_read("min_bytes", &min_bytes);
    counts[0] = min_bytes / sizeof(float) + 1;
    for (k = 0; k < nk; ++k) {
        CHECK(1 == check_call(q, counts[k], k % 2, k, 0, &a), "%s count=%zu not quantized",
              q->name, counts[k]);
        CHECK(1 == check_call(q, counts[k], !(k % 2), k, 1, &a), "%s count=%zu not quantized",
              q->name, counts[k]);
    }
}

/* The ratio schedule, changed through MPI_T: call k after the warm-up is quantized iff
 * floor((k+1) r) > floor(k r). */
static void test_ratio(qcomm_t *q)
{
    double ratio = 0.3, one = 1.0;
    int warmup = 3, zero = 0, k, mismatches = 0, quantized = 0;
    size_t min_bytes;

    mpit_cvar_read("min_bytes", &min_bytes);
    mpit_cvar_write("ratio", &ratio);
    mpit_cvar_write("warmup", &warmup);
    for (k = 0; k < 23; ++k) {
        uint64_t idx = q->calls;
        int expect = idx >= (uint64_t) warmup
                     && floor((double) (idx - warmup + 1) * ratio)
                            > floor((double) (idx - warmup) * ratio);
        unsigned long q0 = mpit_counter("calls_quantized");
        float *buf = calloc(min_bytes / sizeof(float) + 1, sizeof(float));
        MPI_Allreduce(MPI_IN_PLACE, buf, (int) (min_bytes / sizeof(float) + 1), MPI_FLOAT, MPI_SUM,
                      q->comm);
        q->calls++;
        mismatches += (int) (mpit_counter("calls_quantized") - q0) != expect;
        quantized += expect;
        free(buf);
    }
    CHECK(0 == mismatches, "ratio 0.3 warm-up 3: %d calls off the schedule", mismatches);
    CHECK(6 == quantized, "schedule quantized %d of 20 post-warm-up calls", quantized);
    mpit_cvar_write("ratio", &one);
    mpit_cvar_write("warmup", &zero);
}

/* Joint layers, set through MPI_T: each size class runs with its own setting. */
static void test_rules(qcomm_t *q)
{
    const char *rules = "<=1M:32,<=4M:8/128,*:4/64/64K";
    char empty[1] = "";
    qtopo_sra_args_t a = current_args(), a8 = a, a4 = a;
    unsigned long q0;
    float *buf;
    size_t count = (512 << 10) / sizeof(float);

    mpit_cvar_write("rules", rules);
    /* 512 KiB: exact (ring) */
    buf = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; ++i) {
        buf[i] = 1.0f + (float) (i % 7);
    }
    q0 = mpit_counter("calls_quantized");
    MPI_Allreduce(MPI_IN_PLACE, buf, (int) count, MPI_FLOAT, MPI_SUM, q->comm);
    q->calls++;
    CHECK(mpit_counter("calls_quantized") == q0, "512 KiB quantized under \"%s\"", rules);
    CHECK(buf[3] == (float) (4 * q->size) && buf[6] == (float) (7 * q->size),
          "512 KiB exact sum wrong: %g", buf[3]);
    free(buf);
    /* 2 MiB: 8 bits in blocks of 128; 8 MiB: 4 bits in blocks of 64, 64 KiB segments */
    a8.codec.bits = 8;
    a8.codec.block = 128;
    CHECK(1 == check_call(q, (2 << 20) / sizeof(float), 1, 11, 0, &a8), "2 MiB not quantized");
    a4.codec.bits = 4;
    a4.codec.block = 64;
    a4.seg_bytes = 64 << 10;
    CHECK(1 == check_call(q, (8 << 20) / sizeof(float), 0, 12, 0, &a4), "8 MiB not quantized");
    mpit_cvar_write("rules", empty);
}

/* Error feedback: the same tensor reduced 100 times from one buffer; returns the
 * largest gap between the running sums of the outputs and of the exact sums. */
static double ef_drift(qcomm_t *q, int enable)
{
    size_t count = 65536 + 17, i;
    float *grad = malloc(count * sizeof(float)), *out = malloc(count * sizeof(float));
    double *acc = calloc(count, sizeof(double)), worst = 0.0;
    int flag = enable, two = 2, k;
    int32_t bits_saved;

    mpit_cvar_read("bits", &bits_saved);
    mpit_cvar_write("bits", &two);
    mpit_cvar_write("error_feedback", &flag);
    for (k = 0; k < 100; ++k) {
        for (i = 0; i < count; ++i) {
            grad[i] = input_value(q->rank, i, 99);
        }
        MPI_Allreduce(grad, out, (int) count, MPI_FLOAT, MPI_SUM, q->comm);
        q->calls++;
        for (i = 0; i < count; ++i) {
            double exact = 0.0;
            for (int r = 0; r < q->size; ++r) {
                exact += input_value(r, i, 99);
            }
            acc[i] += (double) out[i] - exact;
        }
    }
    for (i = 0; i < count; ++i) {
        worst = fabs(acc[i]) > worst ? fabs(acc[i]) : worst;
    }
    flag = 0;
    mpit_cvar_write("error_feedback", &flag);
    mpit_cvar_write("bits", &bits_saved);
    free(grad);
    free(out);
    free(acc);
    return worst;
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && 0 == strcmp(argv[1], "--quick"), size, rc;
    MPI_Comm dup, half;
    qcomm_t world, qdup, qhalf;

    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mpit_open();
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    MPI_Comm_split(MPI_COMM_WORLD, mpit_rank % 2, size - mpit_rank, &half);
    world = qcomm_make("world", MPI_COMM_WORLD);
    qdup = qcomm_make("dup", dup);
    qhalf = qcomm_make("odd/even reversed", half);

    test_model_and_bound(&world, quick);
    if (qhalf.size > 1) {
        test_model_and_bound(&qhalf, 1);
    }
    if (!quick) {
        test_ratio(&qdup);
        test_rules(&qdup);
        {
            double without = ef_drift(&qdup, 0), with = ef_drift(&qdup, 1);
            if (0 == mpit_rank) {
                printf("error feedback, 2 bits, 100 calls: drift %.4g without, %.4g with\n",
                       without, with);
            }
            CHECK(with * 5.0 < without, "EF drift %.4g not far below %.4g", with, without);
        }
    }
    free(world.order);
    free(qdup.order);
    free(qhalf.order);
    MPI_Comm_free(&half);
    MPI_Comm_free(&dup);

    rc = mpit_summary("test_quantized");
    MPI_Finalize();
    return rc;
}
