/*
 * Unit test of the cut of a message over weighted rails (coll_qtopo_railsplit.c):
 * pieces add up, follow the weights, are monotone in the size (so a receiver that
 * posts a capacity can take any smaller message), and compacting pieces received at
 * the capacity's offsets rebuilds the message exactly; the weight parser; the
 * adaptive weights.
 */

#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_railsplit.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

static const unsigned weight_sets[][QTOPO_RAILS_MAX] = {
    {1, 1}, {4, 1}, {1, 4}, {0, 1}, {1, 0}, {3, 5, 7}, {1, 1, 1, 1}, {2, 0, 1, 0, 9},
};
static const int weight_counts[] = {2, 2, 2, 2, 2, 3, 4, 5};
#define NSETS ((int) (sizeof(weight_counts) / sizeof(weight_counts[0])))

static void test_sum_and_share(void)
{
    size_t sizes[QTOPO_RAILS_MAX], n = (size_t) 16 << 20;
    int s, r;

    for (s = 0; s < NSETS; ++s) {
        const unsigned *w = weight_sets[s];
        unsigned wsum = 0;
        size_t total = 0;

        for (r = 0; r < weight_counts[s]; ++r) {
            wsum += w[r];
        }
        qtopo_rail_split(n, w, weight_counts[s], sizes);
        for (r = 0; r < weight_counts[s]; ++r) {
            double want = (double) n * w[r] / wsum;

            total += sizes[r];
            CHECK(sizes[r] <= want + weight_counts[s] && sizes[r] + weight_counts[s] >= want,
                  "set %d rail %d: %zu bytes, weight share %.1f", s, r, sizes[r], want);
            CHECK(0 != w[r] || 0 == sizes[r], "set %d rail %d: weight 0 got %zu", s, r,
                  sizes[r]);
        }
        CHECK(n == total, "set %d: pieces add up to %zu", s, total);
    }
}

/* every piece of n <= the same piece of n + 1, for all small n and weight sets */
static void test_monotone(void)
{
    size_t a[QTOPO_RAILS_MAX], b[QTOPO_RAILS_MAX], n;
    int s, r, bad = 0;

    for (s = 0; s < NSETS; ++s) {
        for (n = 0; n < 5000; ++n) {
            qtopo_rail_split(n, weight_sets[s], weight_counts[s], a);
            qtopo_rail_split(n + 1, weight_sets[s], weight_counts[s], b);
            for (r = 0; r < weight_counts[s]; ++r) {
                bad += a[r] > b[r];
            }
        }
    }
    CHECK(0 == bad, "%d pieces shrank when the message grew", bad);
}

/* a message of n bytes sent in pieces into slots laid out for cap bytes */
static void test_compact(void)
{
    size_t cap = 1000, n, ssz[QTOPO_RAILS_MAX], soff[QTOPO_RAILS_MAX];
    size_t csz[QTOPO_RAILS_MAX], coff[QTOPO_RAILS_MAX];
    char msg[1000], buf[1000];
    int s, r, bad = 0;

    for (n = 0; n < cap; ++n) {
        msg[n] = (char) (n * 7 + 3);
    }
    for (s = 0; s < NSETS; ++s) {
        int R = weight_counts[s];

        qtopo_rail_split(cap, weight_sets[s], R, csz);
        qtopo_rail_offsets(csz, R, coff);
        for (n = 0; n <= cap; n += 1 + n / 16) {
            memset(buf, 0, sizeof(buf));
            qtopo_rail_split(n, weight_sets[s], R, ssz);
            qtopo_rail_offsets(ssz, R, soff);
            for (r = 0; r < R; ++r) {
                bad += ssz[r] > csz[r];
                memcpy(buf + coff[r], msg + soff[r], ssz[r] < csz[r] ? ssz[r] : csz[r]);
            }
            bad += n != qtopo_rail_compact(buf, coff, ssz, R);
            bad += 0 != memcmp(buf, msg, n);
        }
    }
    CHECK(0 == bad, "%d messages not rebuilt", bad);
}

static void test_parse(void)
{
    unsigned w[QTOPO_RAILS_MAX];

    CHECK(2 == qtopo_rail_parse_weights("4,1", w, QTOPO_RAILS_MAX) && 4 == w[0] && 1 == w[1],
          "4,1");
    CHECK(3 == qtopo_rail_parse_weights("0,0,5", w, QTOPO_RAILS_MAX) && 5 == w[2], "0,0,5");
    CHECK(-1 == qtopo_rail_parse_weights("0,0", w, QTOPO_RAILS_MAX), "all zero");
    CHECK(-1 == qtopo_rail_parse_weights("", w, QTOPO_RAILS_MAX), "empty");
    CHECK(-1 == qtopo_rail_parse_weights("4,", w, QTOPO_RAILS_MAX), "trailing comma");
    CHECK(-1 == qtopo_rail_parse_weights("4,x", w, QTOPO_RAILS_MAX), "letters");
    CHECK(-1 == qtopo_rail_parse_weights("-1,2", w, QTOPO_RAILS_MAX), "negative");
    CHECK(-1 == qtopo_rail_parse_weights("1,2,3", w, 2), "too many");
}

/* A rail of bandwidth bw carries w/sum of a message; a simple model of what the
 * transport measures: the rate of each rail is its bandwidth (pieces are timed alone). */
static void test_adapt(void)
{
    unsigned w[QTOPO_RAILS_MAX] = {1, 1}, w0[QTOPO_RAILS_MAX] = {0, 7, 7};
    uint64_t rate[QTOPO_RAILS_MAX] = {400, 100}, none[QTOPO_RAILS_MAX];
    int i;

    /* 400 + 100 Mbit/s from equal weights: within 1% of 4:1 after ten rounds */
    for (i = 0; i < 10; ++i) {
        CHECK(qtopo_rail_adapt_weights(w, rate, 2), "adapt round %d", i);
    }
    CHECK(w[0] + w[1] <= QTOPO_RAIL_WEIGHT_SCALE && w[0] + w[1] + 2 >= QTOPO_RAIL_WEIGHT_SCALE,
          "scale kept: %u + %u", w[0], w[1]);
    CHECK(790 <= w[0] && w[0] <= 810 && 190 <= w[1] && w[1] <= 210, "4:1 reached: %u, %u",
          w[0], w[1]);
    /* a dead rail (rate 0) keeps the floor share, so it is still measured */
    rate[1] = 0;
    for (i = 0; i < 20; ++i) {
        (void) qtopo_rail_adapt_weights(w, rate, 2);
    }
    CHECK(QTOPO_RAIL_MIN_SHARE == w[1], "floor: %u", w[1]);
    /* and wins its share back when it recovers */
    rate[1] = 400;
    for (i = 0; i < 10; ++i) {
        (void) qtopo_rail_adapt_weights(w, rate, 2);
    }
    CHECK(490 <= w[1] && w[1] <= 510, "recovered: %u, %u", w[0], w[1]);
    /* a rail with a weight and no rate: nothing changes */
    for (i = 0; i < QTOPO_RAILS_MAX; ++i) {
        none[i] = 5;
    }
    none[1] = QTOPO_RAIL_NO_RATE;
    w[0] = 3;
    w[1] = 4;
    CHECK(!qtopo_rail_adapt_weights(w, none, 2) && 3 == w[0] && 4 == w[1], "no rate: %u, %u",
          w[0], w[1]);
    /* weight 0 (left out by the user) stays 0 and needs no rate */
    none[0] = QTOPO_RAIL_NO_RATE;
    none[1] = 1;
    none[2] = 3;
    CHECK(qtopo_rail_adapt_weights(w0, none, 3) && 0 == w0[0] && 0 < w0[1] && w0[1] < w0[2],
          "weight 0 kept: %u, %u, %u", w0[0], w0[1], w0[2]);
}

int main(void)
{
    test_sum_and_share();
    test_monotone();
    test_compact();
    test_parse();
    test_adapt();
    return qt_check_summary();
}
