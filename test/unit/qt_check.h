/*
 * A minimal check harness for qtopo's unit tests: CHECK() records a failure with its
 * location and goes on; qt_check_summary() prints "N passed, M failed" and gives the
 * exit status.
 */

#ifndef QT_CHECK_H
#define QT_CHECK_H

#include <stdio.h>

extern int qt_checks_passed;
extern int qt_checks_failed;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            qt_checks_passed++;                                              \
        } else {                                                             \
            qt_checks_failed++;                                              \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

static inline int qt_check_summary(void)
{
    printf("%d passed, %d failed\n", qt_checks_passed, qt_checks_failed);
    return qt_checks_failed ? 1 : 0;
}

#endif
