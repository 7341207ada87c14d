/*
 * Node map of a communicator from per-rank node labels (see coll_qtopo_nodes.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_nodes.h"

/* node_of[r] = index of r's node, nodes numbered in order of their lowest rank */
static int number_nodes(const int *labels, int size, int *node_of)
{
    int r, q, nnodes = 0;

    for (r = 0; r < size; ++r) {
        for (q = 0; q < r && labels[q] != labels[r]; ++q) {
        }
        node_of[r] = q < r ? node_of[q] : nnodes++;
    }
    return nnodes;
}

static int fill_groups(const int *node_of, qtopo_nodes_t *t)
{
    int *seen = calloc((size_t) t->nnodes, sizeof(int)); /* ranks counted so far per node */
    int r, n;

    if (NULL == seen) {
        return -1;
    }
    t->min_local = t->size;
    t->max_local = 0;
    t->local_size = 0;
    t->rail_size = 0;
    for (r = 0; r < t->size; ++r) {
        int local = seen[node_of[r]]++;
        if (node_of[r] == t->node) {
            if (r == t->rank) {
                t->local_rank = local;
            }
            t->node_ranks[t->local_size++] = r;
        }
    }
    for (r = 0; r < t->size; ++r) {
        seen[node_of[r]] = 0;
    }
    for (r = 0; r < t->size; ++r) {
        if (seen[node_of[r]]++ == t->local_rank) {
            if (r == t->rank) {
                t->rail_index = t->rail_size;
            }
            t->rail_ranks[t->rail_size++] = r;
        }
    }
    for (n = 0; n < t->nnodes; ++n) {
        t->min_local = seen[n] < t->min_local ? seen[n] : t->min_local;
        t->max_local = seen[n] > t->max_local ? seen[n] : t->max_local;
    }
    free(seen);
    return 0;
}

/* order: the ranks of node 0, then of node 1, ..., each node's ascending (a counting
 * sort by node); the same on every rank, since the labels are */
static int fill_order(const int *node_of, qtopo_nodes_t *t)
{
    int *next = calloc((size_t) t->nnodes + 1, sizeof(int)); /* first free slot per node */
    int r, n;

    if (NULL == next) {
        return -1;
    }
    for (r = 0; r < t->size; ++r) {
        next[node_of[r] + 1]++;
    }
    for (n = 0; n < t->nnodes; ++n) {
        next[n + 1] += next[n];
    }
    for (r = 0; r < t->size; ++r) {
        if (r == t->rank) {
            t->order_index = next[node_of[r]];
        }
        t->order[next[node_of[r]]++] = r;
    }
    free(next);
    return 0;
}

int qtopo_nodes_build(const int *labels, int size, int rank, qtopo_nodes_t *t)
{
    int *node_of = calloc((size_t) size, sizeof(int));

    memset(t, 0, sizeof(*t));
    t->size = size;
    t->rank = rank;
    t->node_ranks = malloc((size_t) size * sizeof(int));
    t->rail_ranks = malloc((size_t) size * sizeof(int));
    t->order = malloc((size_t) size * sizeof(int));
    if (NULL == node_of || NULL == t->node_ranks || NULL == t->rail_ranks || NULL == t->order) {
        goto err_free;
    }
    t->nnodes = number_nodes(labels, size, node_of);
    t->node = node_of[rank];
    if (0 != fill_groups(node_of, t) || 0 != fill_order(node_of, t)) {
        goto err_free;
    }
    free(node_of);
    return 0;

err_free:
    qtopo_nodes_free(t);
    free(node_of);
    return -1;
}

void qtopo_nodes_free(qtopo_nodes_t *t)
{
    free(t->node_ranks);
    free(t->rail_ranks);
    free(t->order);
    t->node_ranks = NULL;
    t->rail_ranks = NULL;
    t->order = NULL;
}

int qtopo_nodes_uniform(const qtopo_nodes_t *t)
{
    return t->min_local == t->max_local;
}

static size_t append_ranks(char *buf, size_t len, size_t off, const int *ranks, int n)
{
    int i, w;

    for (i = 0; i < n && off < len; ++i) {
        w = snprintf(buf + off, len - off, "%s%d", i ? "," : "", ranks[i]);
        off += w > 0 ? (size_t) w : 0;
    }
    return off;
}

static int order_is_identity(const qtopo_nodes_t *t)
{
    int r;

    for (r = 0; r < t->size && t->order[r] == r; ++r) {
    }
    return r == t->size;
}

void qtopo_nodes_format(const qtopo_nodes_t *t, char *buf, size_t len)
{
    size_t off;
    int w;

    if (0 == len) {
        return;
    }
    if (qtopo_nodes_uniform(t)) {
        w = snprintf(buf, len, "%d nodes x %d ranks; node %d = ranks ", t->nnodes, t->max_local,
                     t->node);
    } else {
        w = snprintf(buf, len, "%d nodes of %d..%d ranks (uneven); node %d = ranks ", t->nnodes,
                     t->min_local, t->max_local, t->node);
    }
    off = w > 0 ? (size_t) w : 0;
    off = append_ranks(buf, len, off, t->node_ranks, t->local_size);
    if (off < len) {
        w = snprintf(buf + off, len - off, "; rail %d = ranks ", t->local_rank);
        off += w > 0 ? (size_t) w : 0;
    }
    off = append_ranks(buf, len, off, t->rail_ranks, t->rail_size);
    if (off < len) {
        w = snprintf(buf + off, len - off, " (local rank %d of %d)", t->local_rank,
                     t->local_size);
        off += w > 0 ? (size_t) w : 0;
    }
    if (off < len && !order_is_identity(t)) {
        w = snprintf(buf + off, len - off, "; flat order ");
        off += w > 0 ? (size_t) w : 0;
        append_ranks(buf, len, off, t->order, t->size);
    }
}
