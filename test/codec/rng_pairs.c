/*
 * Statistical check of the codec's counter-based RNG (qtopo_codec_rng_bits, the bits
 * stochastic rounding uses), for the choice documented in coll_qtopo_codec.h: for a few
 * subkeys and 8-bit windows of the 32 output bits, a chi-square test of pairs of outputs
 * at lags 1, 2, 3, 8 and 32 over 2^k consecutive counters (65536 cells, 65535 degrees of
 * freedom); prints z = (chi2 - 65535) / sqrt(2 * 65535) per lag, which is about N(0, 1)
 * for independent uniform outputs.  Not part of make check (`make rng` in test/codec,
 * about a minute at the default 2^28).
 *
 *   rng_pairs [log2 of the number of counters, default 28]
 */

#include "coll_qtopo_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NLAGS 5

static const unsigned lags[NLAGS] = { 1, 2, 3, 8, 32 };

static double z_of(const uint32_t *cells, double n)
{
    double expect = n / 65536.0, chi2 = 0.0;
    for (int k = 0; k < 65536; ++k) {
        double d = (double) cells[k] - expect;
        chi2 += d * d / expect;
    }
    return (chi2 - 65535.0) / sqrt(2.0 * 65535.0);
}

/* one subkey, one window of 8 bits starting at bit `shift` */
static void run(uint64_t subkey, int shift, uint32_t n, uint32_t *cells)
{
    uint8_t ring[64] = { 0 }; /* the last 64 outputs, by counter mod 64 */
    memset(cells, 0, NLAGS * 65536 * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; ++i) {
        uint8_t v = (uint8_t) (qtopo_codec_rng_bits(subkey, i) >> shift);
        for (int l = 0; l < NLAGS; ++l) {
            if (i >= lags[l]) {
                cells[l * 65536 + ((uint32_t) ring[(i - lags[l]) % 64] << 8 | v)] += 1;
            }
        }
        ring[i % 64] = v;
    }
    printf("subkey %016llx bits %2d..%2d:", (unsigned long long) subkey, shift, shift + 7);
    for (int l = 0; l < NLAGS; ++l) {
        printf("  lag %2u z %5.1f", lags[l], z_of(cells + l * 65536, (double) (n - lags[l])));
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    int log2n = 1 < argc ? atoi(argv[1]) : 28;
    uint32_t *cells = malloc(NLAGS * 65536 * sizeof(uint32_t));
    if (NULL == cells || 10 > log2n || 32 < log2n) {
        fprintf(stderr, "usage: rng_pairs [log2 count, 10..32]\n");
        free(cells);
        return 1;
    }
    printf("pairs of 8-bit outputs of qtopo_codec_rng_bits over 2^%d counters\n", log2n);
    for (uint64_t seed = 1; seed <= 3; ++seed) {
        uint64_t subkey = qtopo_codec_rng_subkey(qtopo_codec_mix64(seed), 0);
        for (int shift = 24; shift >= 8; shift -= 8) {
            run(subkey, shift, (uint32_t) ((1ull << log2n) - 1), cells);
        }
    }
    free(cells);
    return 0;
}
