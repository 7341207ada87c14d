/*
 * Unit tests of the node map (coll_qtopo_nodes.c) and of the hierarchical split-rail
 * allreduce (coll_qtopo_hier.c) over the mock transport, M nodes x L ranks as threads:
 *   - node maps of regular, interleaved, uneven, one-per-node and one-node layouts, and
 *     the node order of the flat algorithms (a ring in it leaves each node once);
 *   - lossless: every rank bit-identical, within the float rounding bound of the
 *     exact sum, exact for integer data; bytes as the ring phases predict;
 *   - quantized, integer data (node sums are exact in fp32): every rank equals, bit
 *     for bit, the specification model of the quantized rail phase run on the node
 *     sums of each slice (keys: the ranks' global numbers, the slice's offset), and
 *     stays within its bound;
 *   - in both lifetime modes of the mock (mock_xport.h) on 3x2, 2x4, 2x2, 1x3, 3x1, 1x1
 *     grids, exact and quantized, with error feedback, in place and not: the eager
 *     mode's outputs and residuals, bit for bit, no buffer-lifetime rule broken;
 *   - a node or rail message of a wrong size: the receiver errs, never blocks
 *     afterwards (also when the sender falls silent), leaves nothing posted;
 *   - the folded form on nodes with unequal rank counts (2,2,2,1; 3,1; 1,3; 4,2,3; 2,3):
 *     every rank bit-identical; lossless within the rounding bound (exact for integer
 *     data); quantized, integer data: bit for bit the model of split-rail on a grid as
 *     wide as the smallest node whose inputs are the folded sums; in every mock mode,
 *     in place and not.
 */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_nodes.h"
#include "coll_qtopo_partition.h"
#include "mock_xport.h"
#include "qt_check.h"
#include "sra_model.h"

int qt_checks_passed, qt_checks_failed;

/* ---- node maps ------------------------------------------------------------------------ */

static void check_map(const int *labels, int size, int rank, int nnodes, int node, int local,
                      int lsize, const int *rail, int rail_size, int uniform)
{
    qtopo_nodes_t t;
    char line[256];

    CHECK(0 == qtopo_nodes_build(labels, size, rank, &t), "build");
    CHECK(t.nnodes == nnodes && t.node == node, "rank %d: %d nodes (node %d), expected %d (%d)",
          rank, t.nnodes, t.node, nnodes, node);
    CHECK(t.local_rank == local && t.local_size == lsize, "rank %d: local %d of %d", rank,
          t.local_rank, t.local_size);
    CHECK(t.rail_size == rail_size && 0 == memcmp(t.rail_ranks, rail, sizeof(int) * rail_size)
              && t.rail_ranks[t.rail_index] == rank,
          "rank %d: rail group of %d", rank, t.rail_size);
    CHECK(qtopo_nodes_uniform(&t) == uniform, "rank %d: uniform %d", rank, uniform);
    CHECK(t.node_ranks[t.local_rank] == rank, "rank %d not at its local rank", rank);
    qtopo_nodes_format(&t, line, sizeof(line));
    CHECK(NULL != strstr(line, "nodes"), "format: %s", line);
    qtopo_nodes_format(&t, line, 12); /* truncation must stay inside the buffer */
    CHECK(11 >= strlen(line), "format overflow");
    qtopo_nodes_free(&t);
}

static void test_node_maps(void)
{
    static const int grid[] = {7, 7, 3, 3, 9, 9, 5, 5};        /* 4 nodes x 2 */
    static const int mixed[] = {0, 1, 0, 1};                    /* interleaved */
    static const int uneven[] = {0, 0, 1, 1, 2, 2, 3};          /* 2,2,2,1 */
    static const int single[] = {4, 4, 4};                      /* one node */
    static const int spread[] = {1, 2, 3};                      /* one rank per node */
    static const int rail_1[] = {1, 3, 5, 7}, rail_m[] = {2, 3}, rail_u[] = {0, 2, 4, 6};
    static const int rail_u1[] = {1, 3, 5}, rail_s[] = {1}, rail_p[] = {0, 1, 2};

    check_map(grid, 8, 5, 4, 2, 1, 2, rail_1, 4, 1);
    check_map(mixed, 4, 2, 2, 0, 1, 2, rail_m, 2, 1);
    check_map(uneven, 7, 6, 4, 3, 0, 1, rail_u, 4, 0);
    check_map(uneven, 7, 3, 4, 1, 1, 2, rail_u1, 3, 0);
    check_map(single, 3, 1, 1, 0, 1, 3, rail_s, 1, 1);
    check_map(spread, 3, 1, 3, 1, 0, 1, rail_p, 3, 1);
}

/* The flat algorithms' node order: nodes in order of their lowest rank, each node's
 * ranks ascending; the same on every rank; a ring in it leaves each node once. */
static void check_order(const int *labels, int size, const int *want)
{
    int rank, i, crossings, moved;

    for (rank = 0; rank < size; ++rank) {
        qtopo_nodes_t t;
        char line[256];

        CHECK(0 == qtopo_nodes_build(labels, size, rank, &t), "build");
        CHECK(0 == memcmp(t.order, want, sizeof(int) * (size_t) size)
                  && t.order[t.order_index] == rank,
              "size %d rank %d: order %d,%d,... at %d", size, rank, t.order[0],
              t.order[size > 1 ? 1 : 0], t.order_index);
        for (i = 0, crossings = 0; i < size; ++i) {
            crossings += labels[t.order[i]] != labels[t.order[(i + 1) % size]];
        }
        CHECK(crossings == (1 < t.nnodes ? t.nnodes : 0), "size %d: the ring crosses %d times "
              "between %d nodes", size, crossings, t.nnodes);
        for (i = 0, moved = 0; i < size; ++i) {
            moved += want[i] != i;
        }
        qtopo_nodes_format(&t, line, sizeof(line));
        CHECK((NULL != strstr(line, "flat order")) == (0 < moved), "format: %s", line);
        qtopo_nodes_free(&t);
    }
}

static void test_node_order(void)
{
    static const int by_node[] = {0, 1, 2, 3, 0, 1, 2, 3};  /* --map-by node, 4 nodes */
    static const int mixed[] = {0, 1, 0, 1};
    static const int uneven[] = {0, 1, 2, 0, 1, 2, 0};       /* dealt round-robin: 3,2,2 */
    static const int grid[] = {7, 7, 3, 3, 9, 9, 5, 5};     /* node-major already */
    static const int labels[] = {5, 9, 5, 2, 9, 2};         /* any label values */
    static const int o_by_node[] = {0, 4, 1, 5, 2, 6, 3, 7}, o_mixed[] = {0, 2, 1, 3};
    static const int o_uneven[] = {0, 3, 6, 1, 4, 2, 5}, o_grid[] = {0, 1, 2, 3, 4, 5, 6, 7};
    static const int o_labels[] = {0, 2, 1, 4, 3, 5};

    check_order(by_node, 8, o_by_node);
    check_order(mixed, 4, o_mixed);
    check_order(uneven, 7, o_uneven);
    check_order(grid, 8, o_grid);
    check_order(labels, 6, o_labels);
    check_order(grid, 1, o_grid);
}

/* ---- the hierarchical allreduce -------------------------------------------------------- */

typedef struct hier_case {
    int nodes, local, n;
    size_t count;
    qtopo_hier_args_t args;
    int in_place, mode;  /* mode of the mock transport */
    mock_fault_t fault;
    mock_world_t *w;
    float **in, **out, **res; /* res: error-feedback residuals, or NULL */
    qtopo_sra_stats_t *stats;
    int *rc;
} hier_case_t;

/* Ranks are laid out node-major: rank = node * local + local rank. */
static void fill_groups(const hier_case_t *t, int rank, int *node_ranks, int *rail_ranks)
{
    int i;

    for (i = 0; i < t->local; ++i) {
        node_ranks[i] = rank / t->local * t->local + i;
    }
    for (i = 0; i < t->nodes; ++i) {
        rail_ranks[i] = i * t->local + rank % t->local;
    }
}

static int hier_rank_main(int rank, void *arg)
{
    hier_case_t *t = arg;
    int *node_ranks = malloc(sizeof(int) * (size_t) t->local);
    int *rail_ranks = malloc(sizeof(int) * (size_t) t->nodes);
    qtopo_hier_args_t a = t->args;
    qtopo_xport_t node_x, rail_x;
    void *scratch = malloc(qtopo_hier_scratch_bytes(t->count, t->local, t->nodes, &a) + 1);

    fill_groups(t, rank, node_ranks, rail_ranks);
    mock_xport_init_group(t->w, rank, node_ranks, t->local, rank % t->local, &node_x);
    mock_xport_init_group(t->w, rank, rail_ranks, t->nodes, rank / t->local, &rail_x);
    a.sra.key_rank = (uint32_t) rank;
    a.sra.residual = NULL != t->res ? t->res[rank] : NULL;
    if (t->in_place) {
        memcpy(t->out[rank], t->in[rank], t->count * sizeof(float));
    }
    t->rc[rank] = qtopo_hier_allreduce(&node_x, &rail_x, t->in_place ? t->out[rank] : t->in[rank],
                                       t->out[rank], t->count, &a, scratch, &t->stats[rank]);
    mock_xport_fini(&node_x);
    mock_xport_fini(&rail_x);
    free(scratch);
    free(node_ranks);
    free(rail_ranks);
    return t->rc[rank];
}

static hier_case_t *hier_setup(int nodes, int local, size_t count, int bits, int integers)
{
    hier_case_t *t = calloc(1, sizeof(*t));
    unsigned long long s = 77 + count;

    t->nodes = nodes;
    t->local = local;
    t->n = nodes * local;
    t->count = count;
    t->args.seg_bytes = 4096;
    t->args.quantize = 32 != bits;
    t->args.sra.codec.bits = 32 != bits ? bits : 8;
    t->args.sra.codec.block = 64;
    t->args.sra.codec.rounding = bits % 2 ? QTOPO_ROUND_NEAREST : QTOPO_ROUND_STOCHASTIC;
    t->args.sra.seg_bytes = 8192;
    t->args.sra.seed = 3;
    t->args.sra.call = 1;
    t->in = calloc((size_t) t->n, sizeof(float *));
    t->out = calloc((size_t) t->n, sizeof(float *));
    t->stats = calloc((size_t) t->n, sizeof(*t->stats));
    t->rc = calloc((size_t) t->n, sizeof(int));
    for (int r = 0; r < t->n; ++r) {
        t->in[r] = malloc(count * sizeof(float) + 1);
        t->out[r] = malloc(count * sizeof(float) + 1);
        for (size_t i = 0; i < count; ++i) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            t->in[r][i] = integers ? (float) ((long) (s >> 40) % 64 - 32)
                                   : (float) ((double) (s >> 11) / 9007199254740992.0 - 0.5);
        }
    }
    return t;
}

/* Runs the case on a fresh world, which stays in t->w until the next run. */
static void hier_run(hier_case_t *t)
{
    if (NULL != t->w) {
        mock_world_destroy(t->w);
    }
    for (int r = 0; r < t->n; ++r) {
        for (size_t i = 0; i < t->count; ++i) {
            t->out[r][i] = NAN; /* every element must be written */
        }
    }
    t->w = mock_world_create(t->n);
    mock_world_set_mode(t->w, t->mode);
    mock_world_set_fault(t->w, &t->fault);
    mock_world_run(t->w, hier_rank_main, t);
}

static void hier_check_run(hier_case_t *t)
{
    for (int r = 0; r < t->n; ++r) {
        CHECK(0 == t->rc[r], "%dx%d count=%zu rank %d: rc %d", t->nodes, t->local, t->count, r,
              t->rc[r]);
    }
    CHECK(0 == mock_unmatched(t->w), "%zu messages never received", mock_unmatched(t->w));
    CHECK(0 == mock_pending(t->w) && 0 == mock_violations(t->w) && 0 == mock_deadlocks(t->w),
          "%dx%d count=%zu mode=%d inplace=%d: %zu requests pending, %zu violations, "
          "%zu deadlocks", t->nodes, t->local, t->count, t->mode, t->in_place,
          mock_pending(t->w), mock_violations(t->w), mock_deadlocks(t->w));
}

static hier_case_t *hier_new(int nodes, int local, size_t count, int bits, int integers)
{
    hier_case_t *t = hier_setup(nodes, local, count, bits, integers);

    hier_run(t);
    hier_check_run(t);
    return t;
}

static void hier_free(hier_case_t *t)
{
    for (int r = 0; r < t->n; ++r) {
        free(t->in[r]);
        free(t->out[r]);
        if (NULL != t->res) {
            free(t->res[r]);
        }
    }
    free(t->res);
    if (NULL != t->w) {
        mock_world_destroy(t->w);
    }
    free(t->in);
    free(t->out);
    free(t->stats);
    free(t->rc);
    free(t);
}

static size_t count_not_identical(const hier_case_t *t)
{
    size_t bad = 0;

    for (int r = 1; r < t->n; ++r) {
        bad += 0 != memcmp(t->out[r], t->out[0], t->count * sizeof(float));
    }
    return bad;
}

static void test_lossless(int nodes, int local, size_t count, int integers)
{
    hier_case_t *t = hier_new(nodes, local, count, 32, integers);
    size_t i, off = 0;

    CHECK(0 == count_not_identical(t), "%dx%d count=%zu: ranks differ", nodes, local, count);
    for (i = 0; i < count; ++i) {
        double ref = 0.0, mag = 0.0;
        for (int r = 0; r < t->n; ++r) {
            ref += t->in[r][i];
            mag += fabs(t->in[r][i]);
        }
        double bound = integers ? 0.0 : (t->n - 1) * FLT_EPSILON / 2 * mag * 1.0001;
        off += fabs(t->out[0][i] - ref) > bound;
    }
    CHECK(0 == off, "%dx%d count=%zu integers=%d: %zu elements off", nodes, local, count,
          integers, off);
    for (int r = 0; r < t->n; ++r) {
        int l = r % local, nblk = qtopo_hier_nblocks(count);
        size_t expect = 0;
        for (int b = 0; b < nblk; ++b) {
            size_t block = qtopo_part_len(count, (size_t) nblk, (size_t) b);
            size_t mine = qtopo_seg_len(count, nblk, local, b, l);
            /* direct node exchanges: every other piece out, ours to every peer */
            expect += (block - mine + (size_t) (local - 1) * mine) * sizeof(float);
            expect += qtopo_ring_bytes_sent(mine, nodes, r / local, QTOPO_RING_BOTH);
        }
        CHECK(t->stats[r].bytes_sent == expect, "rank %d sent %zu, expected %zu", r,
              t->stats[r].bytes_sent, expect);
    }
    hier_free(t);
}

/* Quantized, integer inputs: node sums are exact, so slice l of the result must be the
 * model of the rail phase on the node sums of slice l. */
static void test_quantized(int nodes, int local, size_t count, int bits)
{
    hier_case_t *t = hier_new(nodes, local, count, bits, 1);
    size_t not_model = 0, off_bound = 0;

    sra_model_in_t mi = {t->n, count, t->in, t->args.sra, NULL};
    sra_model_out_t mo;
    size_t i;

    CHECK(0 == count_not_identical(t), "%dx%d bits=%d: ranks differ", nodes, local, bits);
    mo.y = malloc(count * sizeof(float) + 1);
    mo.bound = malloc(count * sizeof(double) + 1);
    hier_model_run(&mi, local, &mo);
    CHECK(0 == mo.codec_errors, "model codec errors");
    for (i = 0; i < count; ++i) {
        double exact = 0.0;
        for (int r = 0; r < t->n; ++r) {
            exact += t->in[r][i];
        }
        not_model += 0 != memcmp(&mo.y[i], &t->out[0][i], sizeof(float));
        off_bound += fabs(t->out[0][i] - exact) > mo.bound[i];
    }
    free(mo.y);
    free(mo.bound);
    CHECK(0 == not_model, "%dx%d count=%zu bits=%d: %zu values differ from the model", nodes,
          local, count, bits, not_model);
    CHECK(0 == off_bound, "%dx%d count=%zu bits=%d: %zu values outside the bound", nodes, local,
          count, bits, off_bound);
    hier_free(t);
}

/* The scratch of the hierarchical algorithm covers every rank's rail phase, whose
 * needs are not monotonic in the slice length (segment counts change). */
static void test_scratch_covers_slices(void)
{
    qtopo_hier_args_t a;
    size_t count, bad = 0;
    int q, L, l, b;

    memset(&a, 0, sizeof(a));
    a.seg_bytes = a.sra.seg_bytes = 262144;
    a.sra.codec.bits = 8;
    a.sra.codec.block = 256;
    for (q = 0; q < 3; ++q) { /* exact, 8-bit, error-bounded */
        a.quantize = 0 != q;
        a.sra.error_bounded = 2 == q;
        a.sra.error_bound = 1e-3;
        for (L = 2; L <= 8; L += 2) {
            for (count = 1048560; count < 1048600; count += 3) {
                size_t have = qtopo_hier_scratch_bytes(count, L, 2, &a);
                int nblk = qtopo_hier_nblocks(count);
                for (b = 0; b < nblk; ++b) {
                    for (l = 0; l < L; ++l) {
                        size_t len = qtopo_seg_len(count, nblk, L, b, l);
                        size_t need = q ? qtopo_sra_scratch_bytes(len, 2, &a.sra)
                                        : qtopo_ring_scratch_bytes(len, 2, a.seg_bytes, 0);
                        bad += need > have;
                    }
                }
            }
        }
    }
    CHECK(0 == bad, "%zu pieces need more scratch than qtopo_hier_scratch_bytes gives", bad);
}

/* ---- lifetime modes and faults ------------------------------------------------------------ */

/* Split-rail (bits 32: exact) in each mock mode, one call or, with error feedback, two
 * (residuals carried over): the lifetime modes must give the eager mode's outputs and
 * residuals bit for bit, and every rank the same bits. */
static void lifetime_hier(int nodes, int local, size_t count, int bits, int in_place, int ef)
{
    static const int modes[] = {MOCK_EAGER, MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE};
    hier_case_t *t = hier_setup(nodes, local, count, bits, 0);
    float **out0 = NULL, **res0 = NULL;

    t->in_place = in_place;
    if (ef) {
        t->res = calloc((size_t) t->n, sizeof(float *));
        for (int r = 0; r < t->n; ++r) {
            t->res[r] = malloc(count * sizeof(float) + 1);
        }
    }
    for (int m = 0; m < 3; ++m) {
        t->mode = modes[m];
        for (int r = 0; ef && r < t->n; ++r) {
            memset(t->res[r], 0, count * sizeof(float));
        }
        for (int c = 0; c < (ef ? 2 : 1); ++c) {
            t->args.sra.call = (uint64_t) c;
            hier_run(t);
            hier_check_run(t);
        }
        CHECK(0 == count_not_identical(t), "%dx%d bits=%d mode=%d: ranks differ", nodes, local,
              bits, t->mode);
        if (0 == m) {
            out0 = mock_arrays_copy(t->out, t->n, count);
            res0 = ef ? mock_arrays_copy(t->res, t->n, count) : NULL;
            continue;
        }
        CHECK(0 == mock_arrays_differ(t->out, out0, t->n, count)
                  && (!ef || 0 == mock_arrays_differ(t->res, res0, t->n, count)),
              "mode %d %dx%d count=%zu bits=%d inplace=%d ef=%d: outputs or residuals differ "
              "from the eager mode", t->mode, nodes, local, count, bits, in_place, ef);
    }
    mock_arrays_free(out0, t->n);
    mock_arrays_free(res0, t->n);
    hier_free(t);
}

/* Message k (first: a node message of the reduce-scatter; middle; last: a node message
 * of the allgather) of rank src arrives `delta` bytes off: its receiver returns an error
 * and never blocks afterwards, nothing stays posted, and no rank returns success with a
 * result other than the clean run's. */
static void fault_hier(int nodes, int local, int bits, int mode, int src, int where, long delta,
                       int silent)
{
    hier_case_t *t = hier_setup(nodes, local, 10007, bits, 0);
    float **clean;
    char what[128];

    t->mode = mode;
    t->in_place = where % 2;
    hier_run(t);
    clean = mock_arrays_copy(t->out, t->n, t->count);
    t->fault = (mock_fault_t) {src, mock_fault_pick(mock_msgs_sent(t->w, src), where), delta,
                               silent};
    hier_run(t);
    snprintf(what, sizeof(what), "split-rail %dx%d bits=%d mode=%d: message %zu of rank %d "
             "%+ld bytes%s", nodes, local, bits, mode, t->fault.k, src, delta,
             silent ? ", then silent" : "");
    CHECK(mock_fault_check(t->w, what, t->rc, t->out, clean, t->count), "%s", what);
    mock_arrays_free(clean, t->n);
    hier_free(t);
}

static void test_lifetime_and_faults(void)
{
    static const int grids[][2] = {{3, 2}, {2, 4}, {2, 2}, {1, 3}, {3, 1}, {1, 1}};
    static const int bits[] = {32, 8, 2};
    static const long deltas[] = {-4, -1, 4};

    for (size_t g = 0; g < sizeof(grids) / sizeof(grids[0]); ++g) {
        int M = grids[g][0], L = grids[g][1];
        for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); ++b) {
            lifetime_hier(M, L, 10007, bits[b], 0, 0);
            lifetime_hier(M, L, 10007, bits[b], 1, 0);
            lifetime_hier(M, L, (size_t) (M * L) + 1, bits[b], (int) b % 2, 0);
            if (32 != bits[b]) {
                lifetime_hier(M, L, 10007, bits[b], (int) (g + b) % 2, 1);
            }
        }
    }
    /* two pipeline blocks */
    lifetime_hier(2, 2, ((size_t) 1 << 20) + 7, 32, 1, 0);
    lifetime_hier(2, 2, ((size_t) 1 << 20) + 7, 8, 1, 1);
    for (int where = 0; where < 3; ++where) {
        for (size_t d = 0; d < sizeof(deltas) / sizeof(deltas[0]); ++d) {
            for (int silent = 0; silent < 2; ++silent) {
                fault_hier(3, 2, 32, MOCK_EAGER, where, where, deltas[d], silent);
                fault_hier(2, 4, 8, MOCK_LIFETIME_LATE, 7 - where, where, deltas[d], silent);
                fault_hier(2, 2, 2, MOCK_LIFETIME_EARLY, where, where, deltas[d], silent);
            }
        }
    }
}

/* ---- the folded form: nodes with unequal rank counts ------------------------------------ */

typedef struct fold_case {
    int nnodes, n, width, mode, in_place, bits;
    const int *sizes; /* ranks per node; ranks are numbered node by node */
    int first[8];     /* first rank of each node */
    size_t count;
    qtopo_hier_args_t args;
    mock_world_t *w;
    float **in, **out;
    int *rc;
} fold_case_t;

static int fold_node_of(const fold_case_t *t, int rank)
{
    int j = 0;

    while (j + 1 < t->nnodes && t->first[j + 1] <= rank) {
        ++j;
    }
    return j;
}

static int fold_rank_main(int rank, void *arg)
{
    fold_case_t *t = arg;
    int node = fold_node_of(t, rank), l = rank - t->first[node], L = t->sizes[node], i;
    int local[16], rail[8];
    qtopo_hier_args_t a = t->args;
    qtopo_xport_t fold_x, node_x, rail_x;
    size_t bytes = qtopo_hier_folded_scratch_bytes(t->count, t->width, t->nnodes, &a);
    void *scratch = malloc(bytes + 1);
    float *src = t->in_place ? t->out[rank] : t->in[rank];

    for (i = 0; i < L; ++i) {
        local[i] = t->first[node] + i;
    }
    for (i = 0; i < t->nnodes; ++i) {
        rail[i] = t->first[i] + l;
    }
    mock_xport_init_group(t->w, rank, local, L, l, &fold_x);
    if (l < t->width) {
        mock_xport_init_group(t->w, rank, local, t->width, l, &node_x);
        mock_xport_init_group(t->w, rank, rail, t->nnodes, node, &rail_x);
    }
    a.sra.key_rank = (uint32_t) (node * t->width + l); /* the model's grid numbering */
    if (t->in_place) {
        memcpy(t->out[rank], t->in[rank], t->count * sizeof(float));
    }
    t->rc[rank] = qtopo_hier_folded_allreduce(&fold_x, t->width, l < t->width ? &node_x : NULL,
                                              l < t->width ? &rail_x : NULL, src, t->out[rank],
                                              t->count, &a, scratch, &(qtopo_sra_stats_t){0});
    mock_xport_fini(&fold_x);
    if (l < t->width) {
        mock_xport_fini(&node_x);
        mock_xport_fini(&rail_x);
    }
    free(scratch);
    return t->rc[rank];
}

/* Runs the layout and checks what every run must give: success, nothing left posted,
 * no buffer rule broken, every rank the same bits. */
static void fold_run(fold_case_t *t)
{
    for (int r = 0; r < t->n; ++r) {
        t->rc[r] = -1;
        for (size_t i = 0; i < t->count; ++i) {
            t->out[r][i] = NAN;
        }
    }
    t->w = mock_world_create(t->n);
    mock_world_set_mode(t->w, t->mode);
    mock_world_run(t->w, fold_rank_main, t);
    for (int r = 0; r < t->n; ++r) {
        CHECK(0 == t->rc[r], "folded: rank %d rc %d", t->rc[r], r);
        CHECK(0 == memcmp(t->out[r], t->out[0], t->count * sizeof(float)),
              "folded %d nodes bits=%d mode=%d: rank %d differs from rank 0", t->nnodes, t->bits,
              t->mode, r);
    }
    CHECK(0 == mock_unmatched(t->w) && 0 == mock_pending(t->w) && 0 == mock_violations(t->w)
              && 0 == mock_deadlocks(t->w),
          "folded %d nodes mode=%d inplace=%d: unmatched, pending, violations or deadlocks",
          t->nnodes, t->mode, t->in_place);
    mock_world_destroy(t->w);
}

/* The folded sums (core rank l of node j: its input plus those of local ranks l + W,
 * l + 2W, ... in that order), as the model's grid of nnodes x W ranks. */
static float **fold_inputs(const fold_case_t *t)
{
    float **f = calloc((size_t) (t->nnodes * t->width), sizeof(float *));

    for (int j = 0; j < t->nnodes; ++j) {
        for (int l = 0; l < t->width; ++l) {
            float *y = malloc(t->count * sizeof(float) + 1);
            memcpy(y, t->in[t->first[j] + l], t->count * sizeof(float));
            for (int k = l + t->width; k < t->sizes[j]; k += t->width) {
                for (size_t i = 0; i < t->count; ++i) {
                    y[i] += t->in[t->first[j] + k][i];
                }
            }
            f[j * t->width + l] = y;
        }
    }
    return f;
}

/* Lossless: within the rounding bound of the exact sum (exact for integers). Quantized
 * (integers only): the split-rail model on the folded sums, bit for bit. */
static void fold_check_values(const fold_case_t *t, int integers)
{
    size_t off = 0, i;

    if (32 == t->bits) {
        for (i = 0; i < t->count; ++i) {
            double ref = 0.0, mag = 0.0;
            for (int r = 0; r < t->n; ++r) {
                ref += t->in[r][i];
                mag += fabs(t->in[r][i]);
            }
            off += fabs(t->out[0][i] - ref)
                   > (integers ? 0.0 : (t->n - 1) * FLT_EPSILON / 2 * mag * 1.0001);
        }
    } else {
        float **f = fold_inputs(t);
        sra_model_in_t mi = {t->nnodes * t->width, t->count, f, t->args.sra, NULL};
        sra_model_out_t mo;
        mo.y = malloc(t->count * sizeof(float) + 1);
        mo.bound = malloc(t->count * sizeof(double) + 1);
        hier_model_run(&mi, t->width, &mo);
        for (i = 0; i < t->count; ++i) {
            off += 0 != memcmp(&mo.y[i], &t->out[0][i], sizeof(float));
        }
        free(mo.y);
        free(mo.bound);
        mock_arrays_free(f, t->nnodes * t->width);
    }
    CHECK(0 == off, "folded %d nodes (first %d ranks) count=%zu bits=%d: %zu values off",
          t->nnodes, t->sizes[0], t->count, t->bits, off);
}

static void test_folded(const int *sizes, int nnodes, size_t count, int bits, int integers)
{
    static const int modes[] = {MOCK_EAGER, MOCK_LIFETIME_EARLY, MOCK_LIFETIME_LATE};
    hier_case_t *h = hier_setup(1, 1, count, bits, integers); /* for its arguments */
    fold_case_t t = {0};
    unsigned long long s = 99 + count;

    t.nnodes = nnodes;
    t.sizes = sizes;
    t.count = count;
    t.bits = bits;
    t.args = h->args;
    t.width = sizes[0];
    for (int j = 0; j < nnodes; ++j) {
        t.first[j] = t.n;
        t.n += sizes[j];
        t.width = sizes[j] < t.width ? sizes[j] : t.width;
    }
    t.in = calloc((size_t) t.n, sizeof(float *));
    t.out = calloc((size_t) t.n, sizeof(float *));
    t.rc = calloc((size_t) t.n, sizeof(int));
    for (int r = 0; r < t.n; ++r) {
        t.in[r] = malloc(count * sizeof(float) + 1);
        t.out[r] = malloc(count * sizeof(float) + 1);
        for (size_t i = 0; i < count; ++i) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            t.in[r][i] = integers ? (float) ((long) (s >> 40) % 64 - 32)
                                  : (float) ((double) (s >> 11) / 9007199254740992.0 - 0.5);
        }
    }
    for (int m = 0; m < 3; ++m) {
        t.mode = modes[m];
        t.in_place = m % 2;
        fold_run(&t);
        fold_check_values(&t, integers);
    }
    mock_arrays_free(t.in, t.n);
    mock_arrays_free(t.out, t.n);
    free(t.rc);
    hier_free(h);
}

static void test_folded_layouts(void)
{
    static const int l2221[] = {2, 2, 2, 1}, l31[] = {3, 1}, l13[] = {1, 3}, l423[] = {4, 2, 3};
    static const int l23[] = {2, 3};

    test_folded(l2221, 4, 10007, 32, 0);
    test_folded(l2221, 4, 10007, 8, 1);
    test_folded(l31, 2, 4099, 32, 1);
    test_folded(l31, 2, 4099, 2, 1);
    test_folded(l13, 2, 7, 8, 1);
    test_folded(l423, 3, 30011, 32, 0);
    test_folded(l423, 3, 30011, 4, 1);
    test_folded(l23, 2, 5003, 16, 1);
    test_folded(l23, 2, ((size_t) 1 << 20) + 7, 8, 1); /* two pipeline blocks */
}

int main(void)
{
    static const int grids[][2] = {{2, 2}, {4, 2}, {3, 3}, {2, 4}, {4, 1}, {1, 4}, {5, 3}};
    size_t g;

    test_node_maps();
    test_scratch_covers_slices();
    test_node_order();
    test_lifetime_and_faults();
    test_folded_layouts();
    for (g = 0; g < sizeof(grids) / sizeof(grids[0]); ++g) {
        int M = grids[g][0], L = grids[g][1];
        test_lossless(M, L, 1, 0);
        test_lossless(M, L, (size_t) (M * L) - 1, 1);
        test_lossless(M, L, 10007, 0);
        test_lossless(M, L, 100003, 1);
        test_quantized(M, L, 30011, 8);
        test_quantized(M, L, 7919, M % 2 ? 4 : 1);
        test_quantized(M, L, 4099, 16);
    }
    /* several pipeline blocks (2 MiB each) */
    test_lossless(2, 3, (size_t) 3 << 20, 0);
    test_quantized(3, 2, (size_t) 5 << 19, 8);
    mock_fault_summary("split-rail");
    return qt_check_summary();
}
