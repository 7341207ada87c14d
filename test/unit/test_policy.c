/*
 * Unit test of the joint-layer rule parser and the ratio schedule
 * (coll_qtopo_policy.c): accepted and rejected rule strings, matching by size, and
 * the share and spread of quantized calls.
 */

#include <stdint.h>
#include <string.h>

#include "coll_qtopo_policy.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

static void test_parse_example(void)
{
    qtopo_rules_t r;
    char err[256] = "";
    int rc = qtopo_rules_parse("<=256K:32,<=8M:8/256,*:4/128/1M", &r, err, sizeof(err));

    CHECK(0 == rc, "rc=%d err=%s", rc, err);
    CHECK(3 == r.n, "n=%d", r.n);
    CHECK(262144 == r.rule[0].max_bytes && 32 == r.rule[0].bits && 0 == r.rule[0].block,
          "rule 0: %zu %d %d", r.rule[0].max_bytes, r.rule[0].bits, r.rule[0].block);
    CHECK((size_t) 8 << 20 == r.rule[1].max_bytes && 8 == r.rule[1].bits
              && 256 == r.rule[1].block && 0 == r.rule[1].segment,
          "rule 1: %zu %d %d %zu", r.rule[1].max_bytes, r.rule[1].bits, r.rule[1].block,
          r.rule[1].segment);
    CHECK(SIZE_MAX == r.rule[2].max_bytes && 4 == r.rule[2].bits && 128 == r.rule[2].block
              && (size_t) 1 << 20 == r.rule[2].segment,
          "rule 2: %d %d %zu", r.rule[2].bits, r.rule[2].block, r.rule[2].segment);

    CHECK(32 == qtopo_rules_match(&r, 1000)->bits, "1000 B");
    CHECK(32 == qtopo_rules_match(&r, 262144)->bits, "256 KiB is in the first class");
    CHECK(8 == qtopo_rules_match(&r, 262145)->bits, "256 KiB + 1");
    CHECK(8 == qtopo_rules_match(&r, (size_t) 8 << 20)->bits, "8 MiB");
    CHECK(4 == qtopo_rules_match(&r, (size_t) 1 << 30)->bits, "1 GiB");
}

static void test_parse_forms(void)
{
    qtopo_rules_t r;
    char err[256];

    CHECK(0 == qtopo_rules_parse(" <= 1m : 8 / 64 , * : 16 ", &r, err, sizeof(err)),
          "spaces and lower-case suffix: %s", err);
    CHECK(2 == r.n && (size_t) 1 << 20 == r.rule[0].max_bytes && 64 == r.rule[0].block
              && 16 == r.rule[1].bits,
          "n=%d", r.n);
    CHECK(0 == qtopo_rules_parse("<=4096B:1", &r, err, sizeof(err)) && 4096 == r.rule[0].max_bytes,
          "B suffix");
    CHECK(0 == qtopo_rules_parse("", &r, err, sizeof(err)) && 0 == r.n, "empty string");
    CHECK(0 == qtopo_rules_parse(NULL, &r, err, sizeof(err)) && 0 == r.n, "NULL");
    CHECK(NULL == qtopo_rules_match(&r, 5), "no rules, no match");
    CHECK(0 == qtopo_rules_parse("<=1K:8", &r, err, sizeof(err))
              && NULL == qtopo_rules_match(&r, 1025), "no class holds 1025 B");
}

static void expect_reject(const char *text, const char *reason_part)
{
    qtopo_rules_t r;
    char err[256] = "";

    r.n = 99;
    CHECK(-1 == qtopo_rules_parse(text, &r, err, sizeof(err)), "\"%s\" accepted", text);
    CHECK(99 == r.n, "\"%s\": rules changed on error", text);
    CHECK(NULL != strstr(err, reason_part), "\"%s\": message \"%s\" lacks \"%s\"", text, err,
          reason_part);
    CHECK(NULL != strstr(err, "at character"), "\"%s\": message lacks a position", text);
}

static void test_parse_error_bounds(void)
{
    qtopo_rules_t r;
    char err[256];

    CHECK(0 == qtopo_rules_parse("<=1M:32, <=8M:e1e-3/128, *: r0.01", &r, err, sizeof(err)),
          "err=%s", err);
    CHECK(3 == r.n && QTOPO_EB_OFF == r.rule[0].eb_mode && 32 == r.rule[0].bits, "exact class");
    CHECK(QTOPO_EB_ABS == r.rule[1].eb_mode && 1e-3 == r.rule[1].error_bound
              && 128 == r.rule[1].block && 0 == r.rule[1].bits,
          "e1e-3/128: mode %d bound %g block %d", r.rule[1].eb_mode, r.rule[1].error_bound,
          r.rule[1].block);
    CHECK(QTOPO_EB_REL == r.rule[2].eb_mode && 0.01 == r.rule[2].error_bound
              && 0 == r.rule[2].block,
          "r0.01");
    CHECK(0 == qtopo_rules_parse("*:e5/64/2M", &r, err, sizeof(err))
              && 5.0 == r.rule[0].error_bound && (size_t) 2 << 20 == r.rule[0].segment,
          "e5/64/2M");
}

static void test_parse_errors(void)
{
    char many[512] = "";
    int i;

    expect_reject("<=256K", "expected ':'");
    expect_reject("<=1K:3", "3 bits");
    expect_reject("*:8/100", "block 100");
    expect_reject("*:8/8192", "block 8192");
    expect_reject("*:8/256/10", "at least 1K");
    expect_reject("x:8", "starts with");
    expect_reject("<=1K:8,,*:4", "starts with");
    expect_reject("<=1K:8,", "starts with");
    expect_reject("<=1K:8 *:4", "expected ','");
    expect_reject("<=99999999999999999999G:8", "too large");
    expect_reject("<=:8", "expected a size");
    expect_reject("*:", "expected a bit width");
    expect_reject("*:e", "expected an error bound");
    expect_reject("*:e0", "above 0");
    expect_reject("*:r-1e-3", "above 0");
    expect_reject("*:enan", "above 0");
    expect_reject("*:e1e999", "above 0");
    expect_reject("*:e1e-3x", "expected ','");
    expect_reject("*:x3", "expected a bit width");
    for (i = 0; i <= QTOPO_RULES_MAX; ++i) {
        strcat(many, i ? ",*:8" : "*:8");
    }
    expect_reject(many, "more than");
}

static void test_schedule(void)
{
    static const double ratios[] = {0.0, 0.1, 0.25, 0.3, 0.5, 0.77, 1.0};
    uint64_t k, n = 1000;
    size_t i;

    for (i = 0; i < sizeof(ratios) / sizeof(ratios[0]); ++i) {
        uint64_t quantized = 0, longest_gap = 0, gap = 0;
        for (k = 0; k < n; ++k) {
            int q = qtopo_schedule_quantize(k, ratios[i], 0);
            quantized += q;
            gap = q ? 0 : gap + 1;
            longest_gap = gap > longest_gap ? gap : longest_gap;
        }
        CHECK(quantized == (uint64_t) (n * ratios[i] + 1e-9), "ratio %.2f: %lu of %lu quantized",
              ratios[i], (unsigned long) quantized, (unsigned long) n);
        if (ratios[i] > 0.0) {
            /* evenly spread: never more than ceil(1/r) lossless calls in a row */
            CHECK(longest_gap < (uint64_t) (1.0 / ratios[i]) + 1, "ratio %.2f: gap of %lu",
                  ratios[i], (unsigned long) longest_gap);
        }
    }
    for (k = 0; k < 10; ++k) {
        CHECK(0 == qtopo_schedule_quantize(k, 1.0, 10), "warm-up call %lu quantized",
              (unsigned long) k);
    }
    CHECK(1 == qtopo_schedule_quantize(10, 1.0, 10), "first call after warm-up");
    CHECK(0 == qtopo_schedule_quantize(5, -1.0, 0), "negative ratio");
}

/* The exact-call table's lookup: a rank count takes the row of the smallest measured
 * count at or above it (2, 4, 8 here), beyond the largest the largest; the measured rows
 * themselves, and a layout it does not know is never run. */
static void test_exact_table(void)
{
    const size_t M = (size_t) 1 << 20;
    int layout, n;

    for (layout = 0; layout < QTOPO_NLAYOUTS; ++layout) {
        size_t at4 = qtopo_exact_min_bytes(layout, 4), at8 = qtopo_exact_min_bytes(layout, 8);
        CHECK(at4 == qtopo_exact_min_bytes(layout, 3), "layout %d: 3 ranks take the 4 row",
              layout);
        for (n = 5; n < 8; ++n) {
            CHECK(at8 == qtopo_exact_min_bytes(layout, n), "layout %d: %d ranks take the 8 row",
                  layout, n);
        }
        for (n = 9; n <= 4096; n *= 2) {
            CHECK(at8 == qtopo_exact_min_bytes(layout, n), "layout %d: %d ranks take the 8 row",
                  layout, n);
        }
    }
    CHECK(16 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_ONE_NODE, 2), "one node, 2 ranks");
    CHECK(16 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_ONE_NODE, 4), "one node, 4 ranks");
    CHECK(64 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_ONE_NODE, 8), "one node, 8 ranks");
    CHECK(16 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_SPLIT, 2), "split-rail: no 2-rank row");
    CHECK(4 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_SPLIT, 8), "split-rail, 8 ranks");
    CHECK(SIZE_MAX == qtopo_exact_min_bytes(QTOPO_LAYOUT_FLAT, 1), "flat, 1 rank: never");
    CHECK(4 * M == qtopo_exact_min_bytes(QTOPO_LAYOUT_FLAT, 3), "flat, 3 ranks");
    CHECK(SIZE_MAX == qtopo_exact_min_bytes(QTOPO_NLAYOUTS, 4), "unknown layout runs");
    CHECK(SIZE_MAX == qtopo_exact_min_bytes(-1, 4), "negative layout runs");
}

int main(void)
{
    test_parse_example();
    test_parse_forms();
    test_parse_error_bounds();
    test_parse_errors();
    test_schedule();
    test_exact_table();
    return qt_check_summary();
}
