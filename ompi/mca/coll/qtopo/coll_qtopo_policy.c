/*
 * Joint-layer rule parsing, the ratio schedule and the exact-call table (see
 * coll_qtopo_policy.h).
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_codec.h"
#include "coll_qtopo_policy.h"

int qtopo_bits_valid(int bits)
{
    return 32 == bits || 16 == bits || 8 == bits || 4 == bits || 2 == bits || 1 == bits;
}

int qtopo_block_valid(int block)
{
    return block >= QTOPO_CODEC_BLOCK_MIN && block <= QTOPO_CODEC_BLOCK_MAX && 0 == block % 8;
}

typedef struct rule_parser {
    const char *text;
    const char *p;
    char *err;
    size_t errlen;
} rule_parser_t;

static int parse_error(rule_parser_t *rp, const char *fmt, ...)
{
    va_list ap;
    int off;

    if (NULL == rp->err || 0 == rp->errlen) {
        return -1;
    }
    off = snprintf(rp->err, rp->errlen, "at character %d of \"%s\": ", (int) (rp->p - rp->text) + 1,
                   rp->text);
    if (0 <= off && (size_t) off < rp->errlen) {
        va_start(ap, fmt);
        vsnprintf(rp->err + off, rp->errlen - (size_t) off, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void skip_space(rule_parser_t *rp)
{
    while (isspace((unsigned char) *rp->p)) {
        rp->p++;
    }
}

static int accept(rule_parser_t *rp, const char *token)
{
    size_t len = strlen(token);

    skip_space(rp);
    if (0 == strncmp(rp->p, token, len)) {
        rp->p += len;
        return 1;
    }
    return 0;
}

/* A decimal number with an optional K/M/G (x1024) suffix and optional "B". */
static int parse_size(rule_parser_t *rp, size_t *value_p)
{
    unsigned long long v;
    char *end;
    int shift = 0;

    skip_space(rp);
    if (!isdigit((unsigned char) *rp->p)) {
        return parse_error(rp, "expected a size in bytes (e.g. 256K)");
    }
    errno = 0;
    v = strtoull(rp->p, &end, 10);
    rp->p = end;
    switch (toupper((unsigned char) *rp->p)) {
    case 'K': shift = 10; rp->p++; break;
    case 'M': shift = 20; rp->p++; break;
    case 'G': shift = 30; rp->p++; break;
    default: break;
    }
    if ('B' == toupper((unsigned char) *rp->p)) {
        rp->p++;
    }
    if (0 != errno || v > (SIZE_MAX >> shift)) {
        return parse_error(rp, "size too large");
    }
    *value_p = (size_t) v << shift;
    return 0;
}

static int parse_int(rule_parser_t *rp, int *value_p, const char *what)
{
    long v;
    char *end;

    skip_space(rp);
    if (!isdigit((unsigned char) *rp->p)) {
        return parse_error(rp, "expected %s", what);
    }
    v = strtol(rp->p, &end, 10);
    rp->p = end;
    if ((1 << 20) < v) {
        return parse_error(rp, "%s too large", what);
    }
    *value_p = (int) v;
    return 0;
}

/* "e" or "r" and a bound > 0: the error-bounded mode. */
static int parse_bound(rule_parser_t *rp, qtopo_rule_t *r)
{
    char *end;

    r->eb_mode = 'e' == *rp->p ? QTOPO_EB_ABS : QTOPO_EB_REL;
    rp->p++;
    errno = 0;
    r->error_bound = strtod(rp->p, &end);
    if (end == rp->p) {
        return parse_error(rp, "expected an error bound (e.g. e1e-3 or r1e-2)");
    }
    if (0 != errno || !isfinite(r->error_bound) || !(0.0 < r->error_bound)) {
        return parse_error(rp, "the error bound must be a finite number above 0");
    }
    rp->p = end;
    return 0;
}

static int parse_width(rule_parser_t *rp, qtopo_rule_t *r)
{
    skip_space(rp);
    if ('e' == *rp->p || 'r' == *rp->p) {
        return parse_bound(rp, r);
    }
    if (0 != parse_int(rp, &r->bits, "a bit width (32, 16, 8, 4, 2 or 1) or e/r and a bound")) {
        return -1;
    }
    if (!qtopo_bits_valid(r->bits)) {
        return parse_error(rp, "%d bits is not one of 32, 16, 8, 4, 2, 1", r->bits);
    }
    return 0;
}

static int parse_setting(rule_parser_t *rp, qtopo_rule_t *r)
{
    if (0 != parse_width(rp, r)) {
        return -1;
    }
    if (!accept(rp, "/")) {
        return 0;
    }
    if (0 != parse_int(rp, &r->block, "a block size")) {
        return -1;
    }
    if (!qtopo_block_valid(r->block)) {
        return parse_error(rp, "block %d is not a multiple of 8 in [%d, %d]", r->block,
                           QTOPO_CODEC_BLOCK_MIN, QTOPO_CODEC_BLOCK_MAX);
    }
    if (!accept(rp, "/")) {
        return 0;
    }
    if (0 != parse_size(rp, &r->segment)) {
        return -1;
    }
    if (1024 > r->segment) {
        return parse_error(rp, "segment size must be at least 1K");
    }
    return 0;
}

static int parse_rule(rule_parser_t *rp, qtopo_rule_t *r)
{
    memset(r, 0, sizeof(*r));
    if (accept(rp, "*")) {
        r->max_bytes = SIZE_MAX;
    } else if (accept(rp, "<=")) {
        if (0 != parse_size(rp, &r->max_bytes)) {
            return -1;
        }
    } else {
        return parse_error(rp, "a rule starts with \"<=SIZE\" or \"*\"");
    }
    if (!accept(rp, ":")) {
        return parse_error(rp, "expected ':' after the size class");
    }
    return parse_setting(rp, r);
}

int qtopo_rules_parse(const char *text, qtopo_rules_t *rules, char *err, size_t errlen)
{
    rule_parser_t rp = {text, text, err, errlen};
    qtopo_rules_t parsed;

    parsed.n = 0;
    if (NULL == text) {
        *rules = parsed;
        return 0;
    }
    skip_space(&rp);
    if ('\0' == *rp.p) {
        *rules = parsed;
        return 0;
    }
    for (;;) {
        if (QTOPO_RULES_MAX == parsed.n) {
            return parse_error(&rp, "more than %d rules", QTOPO_RULES_MAX);
        }
        if (0 != parse_rule(&rp, &parsed.rule[parsed.n])) {
            return -1;
        }
        parsed.n++;
        skip_space(&rp);
        if ('\0' == *rp.p) {
            break;
        }
        if (!accept(&rp, ",")) {
            return parse_error(&rp, "expected ',' between rules");
        }
    }
    *rules = parsed;
    return 0;
}

const qtopo_rule_t *qtopo_rules_match(const qtopo_rules_t *rules, size_t bytes)
{
    int i;

    for (i = 0; i < rules->n; ++i) {
        if (bytes <= rules->rule[i].max_bytes) {
            return &rules->rule[i];
        }
    }
    return NULL;
}

int qtopo_schedule_quantize(uint64_t call, double ratio, uint64_t warmup)
{
    double k;

    if (call < warmup || !(0.0 < ratio)) {
        return 0;
    }
    if (1.0 <= ratio) {
        return 1;
    }
    k = (double) (call - warmup);
    return floor((k + 1.0) * ratio) > floor(k * ratio);
}

/*
 * Where qtopo's exact algorithms beat Open MPI 4.1's tuned allreduce (its default
 * choice), measured with examples/notax_bench.sh: qtopo_bench, lossless, coll_qtopo_exact
 * always and the default algorithm choice (flat ring; split-rail from
 * coll_qtopo_hier_min_bytes), qtopo and tuned alternating in the same run, best of 5
 * rounds per size. A row's size is the first measured size from which qtopo won by 5% or
 * more, and was never below 0.95x at a larger size, in every run.
 *
 * tuned time / qtopo time, 2026-12-02: a run with coll_qtopo_exact always (load average
 * 11-13 on the 2-core machine, other jobs running), then, where qtopo ran, the run with
 * auto (load 5-6); a cell with two numbers has both:
 *
 *   layout                        256K       1M         4M         16M        64M     -> from
 *   one node, 2 ranks             1.27 0.91  1.24 0.77  1.28 1.04  1.14 1.26  2.00 1.86  16 MiB
 *   one node, 4 ranks             0.53       0.34       0.99       1.11 1.20  1.63 1.64  16 MiB
 *   one node, 8 ranks             0.53       0.88       0.49       0.96       1.45 1.50  64 MiB
 *   test bed, 2 nodes x 1 (flat)  0.92       0.97       1.38 1.18  1.19 0.84  1.03 0.98  never
 *   test bed, 4 nodes x 1 (flat)  0.85       1.03       1.43 1.52  1.54 1.43  1.70 1.35  4 MiB
 *   test bed, 2 nodes x 2 (split) 0.50       0.66       0.89       1.27 1.41  1.17 0.96  16 MiB
 *   test bed, 4 nodes x 2 (split) 0.69       0.79       1.14 1.22  1.57 1.44  1.26 1.44  4 MiB
 *
 * (test bed: 2 rails of 500 Mbit/s, qtopo on its UCX rails, tuned on ob1/TCP over both.
 * The rails kept UCX's rendezvous, as they still do by default (adaptive weights); with
 * fixed weights they send eagerly, and a run with eager rails (paired medians of 9
 * rounds) had the flat 2-node layout win from 4 MiB (1.43x, 1.63x, 1.51x at 4/16/64 MiB):
 * for eager rails the table is conservative. A later auto run with paired medians of 11
 * rounds, README "No tax on exact calls", had every handed-on entry at 0.97-1.02x but
 * two, 0.89 and 1.16, both at 1 MiB on the test bed, where tuned's own run-to-run noise
 * is that large.)
 * Inside one node tuned wins at 4 and 8 ranks up to 4-16 MiB: both go through the
 * shared-memory BTL, but qtopo's ring pays its pipeline (segments of 256 KiB, each a
 * message, a wait and a separate reduction pass over a staging copy) on every one of
 * its 2(n-1) steps, where tuned's recursive-doubling and Rabenseifner algorithms take
 * log2(n) steps on whole halves; with the ranks oversubscribed on 2 cores each step also
 * waits for a descheduled peer. qtopo steps aside there.
 *
 * A rank count that was not measured takes the row of the next larger measured count
 * (the larger threshold), beyond the largest the largest: more than 8 ranks were not
 * measured on this 2-core machine.
 */
typedef struct exact_row {
    int layout;       /* QTOPO_LAYOUT_* */
    int nranks;       /* measured at this many ranks */
    size_t min_bytes; /* SIZE_MAX: tuned won at every size */
} exact_row_t;

#define QTOPO_MIB ((size_t) 1 << 20)

static const exact_row_t exact_table[] = {
    { QTOPO_LAYOUT_ONE_NODE, 2, 16 * QTOPO_MIB },
    { QTOPO_LAYOUT_ONE_NODE, 4, 16 * QTOPO_MIB },
    { QTOPO_LAYOUT_ONE_NODE, 8, 64 * QTOPO_MIB },
    { QTOPO_LAYOUT_SPLIT, 4, 16 * QTOPO_MIB },
    { QTOPO_LAYOUT_SPLIT, 8, 4 * QTOPO_MIB },
    { QTOPO_LAYOUT_FLAT, 2, SIZE_MAX },
    { QTOPO_LAYOUT_FLAT, 4, 4 * QTOPO_MIB },
};

size_t qtopo_exact_min_bytes(int layout, int nranks)
{
    const exact_row_t *pick = NULL, *r;
    size_t i;

    /* rows of a layout are in ascending rank counts: the first one >= nranks, else the
     * layout's last */
    for (i = 0; i < sizeof(exact_table) / sizeof(exact_table[0]); ++i) {
        r = &exact_table[i];
        if (layout != r->layout) {
            continue;
        }
        pick = r;
        if (r->nranks >= nranks) {
            break;
        }
    }
    return NULL != pick ? pick->min_bytes : SIZE_MAX;
}
