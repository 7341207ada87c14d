/*
 * Reader for gzip'd IDX files (the MNIST / Fashion-MNIST format) and for the image/label
 * pair that makes a data set.  Every failure - missing file, bad gzip stream, wrong magic,
 * truncated payload, trailing bytes, out-of-range label - comes back as an error code and
 * a one-line message naming the file; nothing is half-loaded.
 */

#ifndef QT_IDX_H
#define QT_IDX_H

#include <stddef.h>
#include <stdint.h>

#define QT_IDX_MAX_DIMS  4
#define QT_IDX_MAX_BYTES ((size_t) 1 << 31) /* refuse anything larger than 2 GiB */

enum {
    QT_IDX_OK = 0,
    QT_IDX_ERR_OPEN = -1,    /* missing or unreadable file */
    QT_IDX_ERR_FORMAT = -2,  /* not an unsigned-byte IDX file of the expected shape */
    QT_IDX_ERR_TRUNC = -3,   /* the payload ends early */
    QT_IDX_ERR_CORRUPT = -4, /* gzip stream damaged (bad data or CRC), or trailing bytes */
    QT_IDX_ERR_NOMEM = -5
};

typedef struct qt_idx {
    int ndims;
    uint32_t dims[QT_IDX_MAX_DIMS];
    size_t size;   /* product of dims */
    uint8_t *data; /* size bytes, malloc'd */
} qt_idx_t;

/* A labelled image set: n images of rows x cols bytes, labels in [0, classes). */
typedef struct qt_dataset {
    size_t n, rows, cols;
    uint8_t *images; /* n * rows * cols */
    uint8_t *labels; /* n */
} qt_dataset_t;

/* Loads an unsigned-byte IDX file with ndims dimensions (gzip'd or plain).  On error
 * err holds a message and *out is left empty. */
int qt_idx_load(const char *path, int ndims, qt_idx_t *out, char *err, size_t errlen);
void qt_idx_free(qt_idx_t *idx);

/* Loads DIR/PREFIX-images-idx3-ubyte.gz and DIR/PREFIX-labels-idx1-ubyte.gz and checks
 * that they match (same count, labels < classes). */
int qt_dataset_load(const char *dir, const char *prefix, int classes, qt_dataset_t *out,
                    char *err, size_t errlen);
void qt_dataset_free(qt_dataset_t *ds);

#endif
