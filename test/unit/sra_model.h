/*
 * A model of qtopo's quantized scatter-reduce-allgather built from the codec alone,
 * for the tests: what every rank's result must be, bit for bit, and the documented
 * error bound of each element.
 *
 *   y[i] = decode(encode(own[i] + sum_k decode(encode(x_{owner-k}[i]))))
 *
 * with k = 1..n-1 in that order, each encode over the blocks of one pipeline segment
 * (coll_qtopo_partition.h) and keyed as coll_qtopo_sra.c documents (rank = the
 * encoding rank, element offset from the start of the buffer). The bound of an
 * element is the sum of the contributions' codec bounds, the final encoding's bound
 * and the float rounding of the n-term sum.
 */

#ifndef QTOPO_SRA_MODEL_H
#define QTOPO_SRA_MODEL_H

#include "coll_qtopo_algo.h"

typedef struct sra_model_in {
    int n;
    size_t count;
    float **in;            /* in[r]: rank r's contribution */
    qtopo_sra_args_t args; /* key_rank and residual are ignored */
    const int *key_ranks;  /* key_ranks[r]: the key rank of group member r (NULL: r) */
} sra_model_in_t;

typedef struct sra_model_out {
    float *y;         /* count values: the result every rank must have */
    double *bound;    /* count values: the documented bound of each element */
    size_t wire;      /* bytes all ranks send together */
    int codec_errors; /* codec calls that failed (0 expected) */
} sra_model_out_t;

void sra_model_run(const sra_model_in_t *t, sra_model_out_t *m);

/*
 * The quantized hierarchical allreduce (coll_qtopo_hier.c) on t->n = nodes x local
 * ranks laid out node-major (rank = node * local + local rank): piece l of each pipeline
 * block of the result is the model above run on the node sums of that piece, over the
 * ranks l, local + l, ...
 * Exact only when the node sums are exact in fp32 (e.g. small integers), which the
 * caller guarantees. m->wire counts the rail phases' bytes. Rank node * local + l keys
 * with t->key_ranks[node * local + l] when given, else with its number.
 */
void hier_model_run(const sra_model_in_t *t, int local, sra_model_out_t *m);

#endif
