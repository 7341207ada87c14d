/*
 * Helpers shared by the qtopo codec tests and benchmark: a tiny check macro
 * (prints file:line, makes the test function return 1), a test runner that
 * ends with "N passed, M failed", and reproducible random data.
 */

#ifndef QTOPO_CODEC_TEST_H
#define QTOPO_CODEC_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

/* CHECK with a printf-style explanation of the values involved. */
#define CHECKF(cond, ...)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            return 1;                                                                \
        }                                                                            \
    } while (0)

typedef struct test_case {
    const char *name;
    int (*fn)(void);
} test_case_t;

static inline int run_tests(const test_case_t *tests, int count)
{
    int failed = 0;
    for (int i = 0; i < count; ++i) {
        int rc = tests[i].fn();
        printf("%-40s %s\n", tests[i].name, 0 == rc ? "ok" : "FAILED");
        failed += 0 != rc;
    }
    printf("%d passed, %d failed\n", count - failed, failed);
    return 0 != failed;
}

/* xorshift64* generator; state must be non-zero */
static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static inline double rng_uniform(uint64_t *s) /* (0, 1) */
{
    return ((double) (rng_next(s) >> 11) + 0.5) * 0x1p-53;
}

static inline double rng_gauss(uint64_t *s)
{
    double r = sqrt(-2.0 * log(rng_uniform(s)));
    return r * cos(6.283185307179586 * rng_uniform(s));
}

static inline double rng_student3(uint64_t *s) /* Student-t, 3 degrees of freedom */
{
    double v = 0.0;
    for (int i = 0; i < 3; ++i) {
        double g = rng_gauss(s);
        v += g * g;
    }
    return rng_gauss(s) / sqrt(v / 3.0);
}

/* Data for bit-identity tests (test_golden, test/gpu): integer arithmetic only (no libm
 * rounding), so the same on every machine. */
/* A float from integers only: heavy-tailed magnitudes, both signs, exact zeros,
 * and per-block specials (NaN, Inf, -0.0, a constant block) in `kind` 1. */
static inline float datum(uint64_t *s, size_t i, int kind)
{
    uint64_t r = rng_next(s);
    int e = (int) (r % 23) - 11;            /* 2^-11 .. 2^11 */
    float m = (float) ((r >> 8) & 0xffffff) * 0x1p-24f + 0.5f;
    float v = (r >> 40) & 1 ? -m : m;
    if (1 == kind && 300 <= i && i < 340) {
        return -0.0f;
    }
    if (1 == kind && 600 <= i && i < 900) {
        return 3.25f;
    }
    if (1 == kind && 1500 == i) {
        return NAN;
    }
    if (1 == kind && 2600 == i) {
        return -INFINITY;
    }
    if (0 == (r >> 50) % 17) {
        return 0.0f;
    }
    return ldexpf(v, 0 == kind ? e / 4 : e);
}

static inline void fill_data(float *x, size_t n, int kind, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; ++i) {
        x[i] = datum(&s, i, kind);
    }
}

#endif /* QTOPO_CODEC_TEST_H */
