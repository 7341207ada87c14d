/*
 * Unit test of the scratch-size functions (qtopo_ring_scratch_bytes,
 * qtopo_sra_scratch_bytes, qtopo_hier_scratch_bytes) from 2 to 4096 ranks, pure C
 * (the algorithms are not run; test_ring, test_sra and test_hier run them with budgets):
 *   - O(buffer), whatever the rank count: the quantized algorithm needs at most the
 *     larger of the buffer's size and 8 MiB, the exact ring at most a chunk, split-rail
 *     its node stage (two pipeline blocks: at most 8 MiB or half the buffer) plus that
 *     of its rail phase;
 *   - with coll_qtopo_scratch_max set: within it wherever the smallest layout (one
 *     element per segment, one receive slot) fits;
 *   - the segments never get coarser than coll_qtopo_segment_size asks.
 * Prints the table of scratch bytes for 16 and 256 MiB at 8, 64, 512 and 4096 ranks.
 */

#include <stdio.h>
#include <string.h>

#include "coll_qtopo_algo.h"
#include "coll_qtopo_partition.h"
#include "qt_check.h"

int qt_checks_passed, qt_checks_failed;

#define MIB ((size_t) 1 << 20)
#define SEG ((size_t) 262144)
#define FLOOR (8 * MIB) /* QTOPO_SRA_SCRATCH_FLOOR */

static size_t larger(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* bits 0: error-bounded */
static qtopo_sra_args_t sra_args(int bits, size_t scratch_max)
{
    qtopo_sra_args_t a;

    memset(&a, 0, sizeof(a));
    a.codec.bits = 0 == bits ? 8 : bits;
    a.codec.block = QTOPO_CODEC_DEFAULT_BLOCK;
    a.codec.rounding = QTOPO_ROUND_NEAREST;
    a.seg_bytes = SEG;
    a.error_bounded = 0 == bits;
    a.error_bound = 1e-3;
    a.scratch_max = scratch_max;
    return a;
}

static void check_sra(size_t count, int n, int bits, size_t cap)
{
    qtopo_sra_args_t a = sra_args(bits, cap), smallest = sra_args(bits, 1);
    size_t have = qtopo_sra_scratch_bytes(count, n, &a), bytes = count * sizeof(float);
    size_t least = qtopo_sra_scratch_bytes(count, n, &smallest);
    size_t maxchunk = qtopo_part_len(count, (size_t) n, 0);
    int nseg = qtopo_sra_nsegments(count, n, &a);

    CHECK(have <= larger(bytes, FLOOR), "sra n=%d count=%zu bits=%d cap=%zu: %zu bytes, more "
          "than max(buffer, 8 MiB)", n, count, bits, cap, have);
    CHECK(0 == cap || have <= cap || have == least, "sra n=%d count=%zu bits=%d: %zu bytes over "
          "the cap %zu", n, count, bits, have, cap);
    CHECK(nseg >= qtopo_nsegments(maxchunk * sizeof(float), SEG)
              && (size_t) nseg <= (maxchunk > 0 ? maxchunk : 1),
          "sra n=%d count=%zu bits=%d cap=%zu: %d segments of a chunk of %zu", n, count, bits,
          cap, nseg, maxchunk);
}

static void check_ring(size_t count, int n, size_t cap)
{
    size_t have = qtopo_ring_scratch_bytes(count, n, SEG, cap);
    size_t one = qtopo_ring_scratch_bytes(count, n, SEG, 1);
    size_t chunk = qtopo_part_len(count, (size_t) n, 0) * sizeof(float);

    /* a chunk, with at most one element more per segment */
    CHECK(have <= chunk + QTOPO_MAX_SEGMENTS * sizeof(float), "ring n=%d count=%zu: %zu bytes, "
          "chunk %zu", n, count, have, chunk);
    CHECK(0 == cap || have <= cap || have == one, "ring n=%d count=%zu: %zu bytes over the cap "
          "%zu", n, count, have, cap);
}

static void check_hier(size_t count, int n, int L, int quantize, size_t cap)
{
    qtopo_hier_args_t h = {SEG, quantize, sra_args(8, cap)};
    size_t have = qtopo_hier_scratch_bytes(count, L, n / L, &h);
    size_t block = count / (size_t) qtopo_hier_nblocks(count) * sizeof(float);
    /* the stage: two blocks (a block is at most 4 MiB, or a quarter of the buffer), one
     * float more per piece, the requests; the rail phase: a piece of a block */
    size_t bound = 2 * block + 2 * (size_t) L * sizeof(float) + 4096
                   + (quantize ? larger(block / 2, FLOOR) : block / 2 + 256);

    CHECK(have <= bound, "hier n=%d L=%d count=%zu q=%d: %zu bytes, bound %zu", n, L, count,
          quantize, have, bound);
}

static void test_bounds(void)
{
    static const int ranks[] = {2, 3, 4, 5, 7, 8, 16, 24, 64, 100, 128, 512, 1000, 2048, 4096};
    static const size_t counts[] = {1, 1000, 65536, 262147, (size_t) 4 << 20, (size_t) 64 << 20};
    static const int widths[] = {16, 8, 4, 1, 0};
    static const size_t caps[] = {0, 64 * MIB, 4 * MIB, 100000, 1};
    size_t ri, ci, wi, k;

    for (ri = 0; ri < sizeof(ranks) / sizeof(ranks[0]); ++ri) {
        int n = ranks[ri];
        for (ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ++ci) {
            for (k = 0; k < sizeof(caps) / sizeof(caps[0]); ++k) {
                for (wi = 0; wi < sizeof(widths) / sizeof(widths[0]); ++wi) {
                    check_sra(counts[ci], n, widths[wi], caps[k]);
                }
                check_ring(counts[ci], n, caps[k]);
                for (int L = 2; L <= 8 && L < n; L *= 2) {
                    check_hier(counts[ci], n - n % L, L, 1, caps[k]);
                    check_hier(counts[ci], n - n % L, L, 0, caps[k]);
                }
            }
        }
    }
}

/* The table for the notes: scratch MiB per algorithm at the default budget. */
static void print_table(void)
{
    static const int ranks[] = {8, 64, 512, 4096};
    static const size_t sizes[] = {16 * MIB, 256 * MIB};
    size_t si, ri;

    printf("scratch MiB (segment 256 KiB; hier: 4 ranks per node; no coll_qtopo_scratch_max)\n");
    printf("buffer     np   ring 32-bit   sra 8-bit   hier 8-bit   hier 32-bit\n");
    for (si = 0; si < 2; ++si) {
        for (ri = 0; ri < 4; ++ri) {
            size_t count = sizes[si] / sizeof(float);
            int n = ranks[ri];
            qtopo_sra_args_t a = sra_args(8, 0);
            qtopo_hier_args_t h = {SEG, 1, a}, e = {SEG, 0, a};
            printf("%4zu MiB %5d %11.1f %11.1f %12.1f %13.1f\n", sizes[si] / MIB, n,
                   (double) qtopo_ring_scratch_bytes(count, n, SEG, 0) / MIB,
                   (double) qtopo_sra_scratch_bytes(count, n, &a) / MIB,
                   (double) qtopo_hier_scratch_bytes(count, 4, n / 4, &h) / MIB,
                   (double) qtopo_hier_scratch_bytes(count, 4, n / 4, &e) / MIB);
        }
    }
}

int main(void)
{
    test_bounds();
    print_table();
    return qt_check_summary();
}
