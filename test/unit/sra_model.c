/*
 * The specification model of the quantized allreduce (see sra_model.h).
 */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_partition.h"
#include "sra_model.h"

/* Encodes x[0..len) (element off of the buffer) as rank `rank` would; decodes it into
 * y and writes the per-element codec bound into bound (both may be NULL). Returns the
 * encoded size. */
static size_t model_code(const sra_model_in_t *t, sra_model_out_t *m, int rank, const float *x,
                         size_t off, size_t len, float *y, double *bound)
{
    const qtopo_codec_params_t *cp = &t->args.codec;
    qtopo_codec_key_t key = {t->args.seed, t->args.call,
                             (uint32_t) (NULL != t->key_ranks ? t->key_ranks[rank] : rank),
                             t->args.elem_base + off};
    size_t cap = qtopo_codec_max_size(len, cp), size = 0, i;
    unsigned char *msg = malloc(cap + 1);
    qtopo_codec_block_info_t info; /* read once per block */

    m->codec_errors += 0 != qtopo_codec_encode(x, len, cp, &key, msg, cap, &size);
    if (NULL != y) {
        m->codec_errors += 0 != qtopo_codec_decode(msg, size, len, cp, y);
    }
    for (i = 0; NULL != bound && i < len; ++i) {
        if (0 == i % (size_t) cp->block) {
            qtopo_codec_block_info(msg, size, len, cp, i / (size_t) cp->block, &info);
        }
        bound[i] = qtopo_codec_error_bound(cp, &info, x[i]);
    }
    free(msg);
    return size;
}

static void model_segment(const sra_model_in_t *t, int owner, size_t off, size_t len,
                          sra_model_out_t *m)
{
    float *acc = malloc(len * sizeof(float) + 1), *dec = malloc(len * sizeof(float) + 1);
    double *b = malloc(len * sizeof(double) + 1), *b1 = calloc(len + 1, sizeof(double));
    size_t i;
    int k, p;

    memcpy(acc, t->in[owner] + off, len * sizeof(float));
    for (k = 1; k < t->n; ++k) {
        p = qtopo_mod(owner - k, t->n);
        m->wire += model_code(t, m, p, t->in[p] + off, off, len, dec, b);
        for (i = 0; i < len; ++i) {
            acc[i] += dec[i];
            b1[i] += b[i];
        }
    }
    m->wire += (size_t) (t->n - 1) * model_code(t, m, owner, acc, off, len, m->y + off, b);
    for (i = 0; i < len; ++i) {
        double mag = 0.0;
        for (p = 0; p < t->n; ++p) {
            mag += fabs(t->in[p][off + i]);
        }
        /* accumulation: n-1 float additions of values within b1 of the inputs */
        m->bound[off + i] = b1[i] + b[i] + (t->n - 1) * (FLT_EPSILON / 2) * (mag + b1[i]) * 1.0001;
    }
    free(acc);
    free(dec);
    free(b);
    free(b1);
}

void sra_model_run(const sra_model_in_t *t, sra_model_out_t *m)
{
    int nseg, c, j;

    m->wire = 0;
    m->codec_errors = 0;
    if (1 == t->n) {
        memcpy(m->y, t->in[0], t->count * sizeof(float));
        memset(m->bound, 0, t->count * sizeof(double));
        return;
    }
    nseg = qtopo_sra_nsegments(t->count, t->n, &t->args);
    for (c = 0; c < t->n; ++c) {
        size_t clen = qtopo_part_len(t->count, (size_t) t->n, (size_t) c);
        size_t coff = qtopo_part_off(t->count, (size_t) t->n, (size_t) c);
        for (j = 0; j < nseg; ++j) {
            model_segment(t, c, coff + qtopo_part_off(clen, (size_t) nseg, (size_t) j),
                          qtopo_part_len(clen, (size_t) nseg, (size_t) j), m);
        }
    }
}


/* The model of one rail group on one pipeline block: piece l of block b, over the
 * node sums. */
static void hier_model_piece(const sra_model_in_t *t, int local, int b, int l,
                             sra_model_out_t *m)
{
    int nodes = t->n / local, nblk = qtopo_hier_nblocks(t->count), node, r;
    size_t off = qtopo_seg_off(t->count, nblk, local, b, l);
    size_t len = qtopo_seg_len(t->count, nblk, local, b, l), i;
    float **sums = calloc((size_t) nodes, sizeof(float *));
    int *keys = malloc(sizeof(int) * (size_t) nodes);
    sra_model_in_t mi = {nodes, len, sums, t->args, keys};
    sra_model_out_t mo = {m->y + off, m->bound + off, 0, 0};

    mi.args.elem_base = t->args.elem_base + off;
    mi.args.scratch_max = qtopo_hier_rail_budget(t->count, local, t->args.scratch_max);
    for (node = 0; node < nodes; ++node) {
        sums[node] = calloc(len + 1, sizeof(float));
        keys[node] = NULL != t->key_ranks ? t->key_ranks[node * local + l] : node * local + l;
        for (r = node * local; r < (node + 1) * local; ++r) {
            for (i = 0; i < len; ++i) {
                sums[node][i] += t->in[r][off + i];
            }
        }
    }
    sra_model_run(&mi, &mo);
    m->wire += mo.wire;
    m->codec_errors += mo.codec_errors;
    for (node = 0; node < nodes; ++node) {
        free(sums[node]);
    }
    free(sums);
    free(keys);
}

void hier_model_run(const sra_model_in_t *t, int local, sra_model_out_t *m)
{
    m->wire = 0;
    m->codec_errors = 0;
    for (int b = 0; b < qtopo_hier_nblocks(t->count); ++b) {
        for (int l = 0; l < local; ++l) {
            hier_model_piece(t, local, b, l, m);
        }
    }
}
