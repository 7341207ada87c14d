/*
 * Which calls qtopo quantizes, and how: the joint-layer rules (buffer-size classes
 * mapped to bits/block/segment, coll_qtopo_rules) and the deterministic ratio
 * schedule (coll_qtopo_ratio, coll_qtopo_warmup). Pure C, no Open MPI types.
 *
 * Rule string grammar (whitespace ignored, sizes in bytes with optional K/M/G binary
 * suffix, first matching rule wins):
 *
 *   rules   := rule ("," rule)*
 *   rule    := ("<=" size | "*") ":" width ["/" block ["/" segment]]
 *   width   := bits | ("e" | "r") bound
 *
 * e.g. "<=256K:32,<=8M:8/256,*:4/128/1M": calls up to 256 KiB stay exact, up to 8 MiB
 * go as 8-bit codes in blocks of 256, larger ones as 4-bit codes in blocks of 128 with
 * 1 MiB pipeline segments. Omitted block/segment mean "the global parameter".
 * "e1e-3" is the error-bounded mode with absolute bound 1e-3, "r1e-2" with relative
 * bound 1e-2 (coll_qtopo_error_bound / _mode); bound is a C floating-point number > 0.
 */

#ifndef COLL_QTOPO_POLICY_H
#define COLL_QTOPO_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define QTOPO_RULES_MAX 16

/* Error-bounded modes (coll_qtopo_error_bound_mode) */
enum { QTOPO_EB_OFF = 0, QTOPO_EB_ABS = 1, QTOPO_EB_REL = 2 };

typedef struct qtopo_rule {
    size_t max_bytes; /* SIZE_MAX for "*" */
    int bits;         /* 32, 16, 8, 4, 2, 1; 0 with eb_mode != QTOPO_EB_OFF */
    int eb_mode;      /* QTOPO_EB_*: error-bounded with bound error_bound */
    double error_bound;
    int block;        /* 0: the global coll_qtopo_block_size */
    size_t segment;   /* 0: the global coll_qtopo_segment_size */
} qtopo_rule_t;

typedef struct qtopo_rules {
    int n;
    qtopo_rule_t rule[QTOPO_RULES_MAX];
} qtopo_rules_t;

/* 1 if bits is a width qtopo implements (32 = exact fp32). */
int qtopo_bits_valid(int bits);
/* 1 if block is a valid codec block size. */
int qtopo_block_valid(int block);

/*
 * Parses a rule string; an empty or NULL string gives no rules. On error returns -1,
 * leaves *rules unchanged and writes a one-line reason naming the offending position
 * into err (errlen bytes).
 */
int qtopo_rules_parse(const char *text, qtopo_rules_t *rules, char *err, size_t errlen);

/* The first rule whose size class holds `bytes`, or NULL. */
const qtopo_rule_t *qtopo_rules_match(const qtopo_rules_t *rules, size_t bytes);

/*
 * Ratio schedule: whether eligible call number `call` (0-based, counted per
 * communicator) is quantized. The first `warmup` calls are not; after them call k is
 * iff floor((k+1) r) > floor(k r), which quantizes a share r of the calls, evenly
 * spread, identically on every rank.
 */
int qtopo_schedule_quantize(uint64_t call, double ratio, uint64_t warmup);

/*
 * Exact calls (coll_qtopo_exact auto): qtopo runs an exact call only where its own
 * algorithm was measured faster than Open MPI's tuned component on that layout, rank
 * count and size; elsewhere the call is handed on (the table and its measurements are
 * in coll_qtopo_policy.c). Layouts, from the node map agreed on the first call:
 */
enum {
    QTOPO_LAYOUT_ONE_NODE = 0, /* every rank on one node */
    QTOPO_LAYOUT_SPLIT = 1,    /* several nodes, the same ranks per node (>= 2): split-rail */
    QTOPO_LAYOUT_FLAT = 2,     /* several nodes, one rank per node or uneven: flat ring */
    QTOPO_NLAYOUTS
};

/* The smallest exact call, in bytes, that qtopo runs itself on `layout` with `nranks`
 * ranks (SIZE_MAX: none); counts between the measured ones take the larger count's
 * threshold. */
size_t qtopo_exact_min_bytes(int layout, int nranks);

#endif /* COLL_QTOPO_POLICY_H */
