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

#endif /* COLL_QTOPO_POLICY_H */
