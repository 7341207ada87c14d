/*
 * The cut of a message over weighted rails (see coll_qtopo_railsplit.h).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coll_qtopo_railsplit.h"

void qtopo_rail_split(size_t n, const unsigned *w, int R, size_t *sizes)
{
    unsigned long long wrest = 0;
    size_t rest = n;
    int r;

    for (r = 0; r < R; ++r) {
        wrest += w[r];
    }
    for (r = 0; r < R; ++r) {
        if (0 == w[r]) {
            sizes[r] = 0;
        } else if (wrest == w[r]) {
            sizes[r] = rest; /* the last rail with a weight */
        } else {
            sizes[r] = (size_t) ((unsigned __int128) rest * w[r] / wrest);
        }
        rest -= sizes[r];
        wrest -= w[r];
    }
}

void qtopo_rail_offsets(const size_t *sizes, int R, size_t *offs)
{
    size_t off = 0;
    int r;

    for (r = 0; r < R; ++r) {
        offs[r] = off;
        off += sizes[r];
    }
}

size_t qtopo_rail_compact(char *buf, const size_t *offs, const size_t *got, int R)
{
    size_t at = 0;
    int r;

    /* at <= offs[r] and at + got[r] <= offs[r + 1]: each move goes down and never
     * reaches a piece not yet moved */
    for (r = 0; r < R; ++r) {
        if (at != offs[r] && 0 < got[r]) {
            memmove(buf + at, buf + offs[r], got[r]);
        }
        at += got[r];
    }
    return at;
}

int qtopo_rail_parse_weights(const char *text, unsigned *w, int max)
{
    const char *p = text;
    unsigned long long sum = 0;
    int n = 0;

    while (NULL != p && '\0' != *p) {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(p, &end, 10);
        if (end == p || 0 != errno || '-' == *p || 1000000UL < v || n == max
            || (',' != *end && '\0' != *end)) {
            return -1;
        }
        w[n++] = (unsigned) v;
        sum += v;
        p = ',' == *end ? end + 1 : end;
        if (',' == *end && '\0' == *p) {
            return -1;
        }
    }
    return 0 == n || 0 == sum ? -1 : n;
}

bool qtopo_rail_adapt_weights(unsigned *w, const uint64_t *rate, int R)
{
    unsigned __int128 wsum = 0, rsum = 0;
    int r;

    for (r = 0; r < R; ++r) {
        if (0 != w[r] && QTOPO_RAIL_NO_RATE == rate[r]) {
            return false;
        }
        wsum += 0 != w[r] ? w[r] : 0;
        rsum += 0 != w[r] ? rate[r] : 0;
    }
    if (0 == wsum) {
        return false;
    }
    for (r = 0; r < R; ++r) {
        unsigned share;

        if (0 == w[r]) {
            continue;
        }
        /* nothing measured anywhere: the old share stands */
        share = (unsigned) (0 != rsum ? (unsigned __int128) rate[r] * QTOPO_RAIL_WEIGHT_SCALE / rsum
                                      : (unsigned __int128) w[r] * QTOPO_RAIL_WEIGHT_SCALE / wsum);
        w[r] = share > QTOPO_RAIL_MIN_SHARE ? share : QTOPO_RAIL_MIN_SHARE;
    }
    return true;
}
