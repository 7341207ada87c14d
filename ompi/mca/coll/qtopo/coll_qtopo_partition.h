/*
 * How a buffer of `count` elements is cut into one chunk per rank and each chunk into
 * pipeline segments. Every rank computes the same cuts from (count, size, nseg) alone,
 * so receivers always know the exact size of what arrives.
 *
 * Chunk c of n has count/n elements, plus one for the first count%n chunks; segments
 * split a chunk the same way. Empty chunks and segments are legal (count < n).
 */

#ifndef COLL_QTOPO_PARTITION_H
#define COLL_QTOPO_PARTITION_H

#include <stddef.h>

/* Length of part i when `len` elements are split into `parts` near-equal parts. */
static inline size_t qtopo_part_len(size_t len, size_t parts, size_t i)
{
    return len / parts + (i < len % parts ? 1 : 0);
}

/* Offset of part i under the same split. */
static inline size_t qtopo_part_off(size_t len, size_t parts, size_t i)
{
    size_t rem = len % parts;
    return i * (len / parts) + (i < rem ? i : rem);
}

/* Segment j of chunk c, when `count` elements are cut into n chunks of nseg segments. */
static inline size_t qtopo_seg_len(size_t count, int n, int nseg, int chunk, int j)
{
    return qtopo_part_len(qtopo_part_len(count, (size_t) n, (size_t) chunk), (size_t) nseg,
                          (size_t) j);
}

static inline size_t qtopo_seg_off(size_t count, int n, int nseg, int chunk, int j)
{
    size_t clen = qtopo_part_len(count, (size_t) n, (size_t) chunk);

    return qtopo_part_off(count, (size_t) n, (size_t) chunk)
           + qtopo_part_off(clen, (size_t) nseg, (size_t) j);
}

/* a mod n for a possibly negative a */
static inline int qtopo_mod(int a, int n)
{
    int m = a % n;
    return m < 0 ? m + n : m;
}

/* Number of pipeline segments per chunk: enough that a segment holds at most
 * seg_bytes, capped so the request arrays stay small. Depends only on arguments
 * that are identical on all ranks. */
#define QTOPO_MAX_SEGMENTS 64

static inline int qtopo_nsegments(size_t chunk_bytes, size_t seg_bytes)
{
    size_t nseg;

    if (0 == seg_bytes) {
        return 1;
    }
    nseg = (chunk_bytes + seg_bytes - 1) / seg_bytes;
    if (nseg < 1) {
        nseg = 1;
    }
    return nseg > QTOPO_MAX_SEGMENTS ? QTOPO_MAX_SEGMENTS : (int) nseg;
}

#endif /* COLL_QTOPO_PARTITION_H */
