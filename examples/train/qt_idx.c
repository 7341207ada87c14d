/*
 * Reader for gzip'd IDX files and Fashion-MNIST style image/label pairs (see qt_idx.h).
 * zlib's gz* interface reads gzip'd and plain files alike; the CRC of a gzip stream is
 * checked when its end is reached, which is why the reader always reads one byte past
 * the payload.
 */

#include "qt_idx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define READ_CHUNK     (1u << 30)

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (NULL != err && 0 != errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Reads exactly len bytes; returns QT_IDX_OK or an error with a message. */
static int read_exact(gzFile f, const char *path, void *buf, size_t len, const char *what,
                      char *err, size_t errlen)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        unsigned chunk = len - got < READ_CHUNK ? (unsigned) (len - got) : READ_CHUNK;
        int n = gzread(f, p + got, chunk);
        int zerr;
        const char *msg = gzerror(f, &zerr);
        if (Z_DATA_ERROR == zerr || Z_STREAM_ERROR == zerr || Z_MEM_ERROR == zerr) {
            return fail(QT_IDX_ERR_CORRUPT, err, errlen, "%s: corrupted gzip data in the %s (%s)",
                        path, what, msg);
        }
        if (0 >= n) {
            return fail(QT_IDX_ERR_TRUNC, err, errlen,
                        "%s: truncated: the %s ends after %zu of %zu bytes", path, what, got,
                        len);
        }
        got += (size_t) n;
    }
    return QT_IDX_OK;
}

/* After the payload: the stream must end here, with a good gzip trailer. */
static int check_end(gzFile f, const char *path, char *err, size_t errlen)
{
    uint8_t extra;
    int zerr, n = gzread(f, &extra, 1);
    const char *msg = gzerror(f, &zerr);
    if (0 < n) {
        return fail(QT_IDX_ERR_CORRUPT, err, errlen, "%s: trailing bytes after the data", path);
    }
    if (Z_OK != zerr && Z_STREAM_END != zerr) {
        return fail(Z_BUF_ERROR == zerr ? QT_IDX_ERR_TRUNC : QT_IDX_ERR_CORRUPT, err, errlen,
                    "%s: %s at the end of the gzip stream (%s)", path,
                    Z_BUF_ERROR == zerr ? "truncated" : "corrupted", msg);
    }
    return QT_IDX_OK;
}

/* Parses the magic and the dimensions; fills idx->dims, ndims and size. */
static int read_header(gzFile f, const char *path, int ndims, qt_idx_t *idx, char *err,
                       size_t errlen)
{
    uint8_t magic[4], be[4 * QT_IDX_MAX_DIMS];
    int rc = read_exact(f, path, magic, sizeof(magic), "header", err, errlen);
    if (QT_IDX_OK != rc) {
        return rc;
    }
    if (0 != magic[0] || 0 != magic[1] || IDX_TYPE_UBYTE != magic[2] || ndims != magic[3]) {
        return fail(QT_IDX_ERR_FORMAT, err, errlen,
                    "%s: not an unsigned-byte IDX file with %d dimensions "
                    "(magic %02x %02x %02x %02x)",
                    path, ndims, magic[0], magic[1], magic[2], magic[3]);
    }
    rc = read_exact(f, path, be, 4 * (size_t) ndims, "header", err, errlen);
    if (QT_IDX_OK != rc) {
        return rc;
    }
    idx->ndims = ndims;
    idx->size = 1;
    for (int i = 0; i < ndims; ++i) {
        idx->dims[i] = (uint32_t) be[4 * i] << 24 | (uint32_t) be[4 * i + 1] << 16
                       | (uint32_t) be[4 * i + 2] << 8 | be[4 * i + 3];
        if (0 == idx->dims[i] || QT_IDX_MAX_BYTES / idx->size < idx->dims[i]) {
            return fail(QT_IDX_ERR_FORMAT, err, errlen, "%s: bad dimension %d: %u", path, i,
                        idx->dims[i]);
        }
        idx->size *= idx->dims[i];
    }
    return QT_IDX_OK;
}

void qt_idx_free(qt_idx_t *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof(*idx));
}

int qt_idx_load(const char *path, int ndims, qt_idx_t *out, char *err, size_t errlen)
{
    qt_idx_t idx = { 0 };
    gzFile f;
    int rc;
    memset(out, 0, sizeof(*out));
    if (1 > ndims || QT_IDX_MAX_DIMS < ndims) {
        return fail(QT_IDX_ERR_FORMAT, err, errlen, "%s: %d dimensions unsupported", path, ndims);
    }
    errno = 0;
    f = gzopen(path, "rb");
    if (NULL == f) {
        return fail(QT_IDX_ERR_OPEN, err, errlen, "%s: cannot open: %s", path,
                    0 != errno ? strerror(errno) : "out of memory");
    }
    rc = read_header(f, path, ndims, &idx, err, errlen);
    if (QT_IDX_OK == rc) {
        idx.data = malloc(idx.size);
        rc = NULL == idx.data ? fail(QT_IDX_ERR_NOMEM, err, errlen, "%s: out of memory", path)
                              : read_exact(f, path, idx.data, idx.size, "payload", err, errlen);
    }
    if (QT_IDX_OK == rc) {
        rc = check_end(f, path, err, errlen);
    }
    gzclose(f);
    if (QT_IDX_OK != rc) {
        qt_idx_free(&idx);
        return rc;
    }
    *out = idx;
    return QT_IDX_OK;
}

void qt_dataset_free(qt_dataset_t *ds)
{
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof(*ds));
}

static int check_pair(const qt_idx_t *img, const qt_idx_t *lab, const char *lpath, int classes,
                      char *err, size_t errlen)
{
    if (img->dims[0] != lab->dims[0]) {
        return fail(QT_IDX_ERR_FORMAT, err, errlen, "%s: %u labels for %u images", lpath,
                    lab->dims[0], img->dims[0]);
    }
    for (size_t i = 0; i < lab->size; ++i) {
        if (classes <= lab->data[i]) {
            return fail(QT_IDX_ERR_FORMAT, err, errlen, "%s: label %u of item %zu is not below %d",
                        lpath, lab->data[i], i, classes);
        }
    }
    return QT_IDX_OK;
}

int qt_dataset_load(const char *dir, const char *prefix, int classes, qt_dataset_t *out,
                    char *err, size_t errlen)
{
    char ipath[4096], lpath[4096];
    qt_idx_t img, lab;
    int rc;
    memset(out, 0, sizeof(*out));
    snprintf(ipath, sizeof(ipath), "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof(lpath), "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    rc = qt_idx_load(ipath, 3, &img, err, errlen);
    if (QT_IDX_OK != rc) {
        return rc;
    }
    rc = qt_idx_load(lpath, 1, &lab, err, errlen);
    if (QT_IDX_OK != rc) {
        qt_idx_free(&img);
        return rc;
    }
    rc = check_pair(&img, &lab, lpath, classes, err, errlen);
    if (QT_IDX_OK != rc) {
        qt_idx_free(&lab);
        qt_idx_free(&img);
        return rc;
    }
    out->n = img.dims[0];
    out->rows = img.dims[1];
    out->cols = img.dims[2];
    out->images = img.data;
    out->labels = lab.data;
    return QT_IDX_OK;
}
