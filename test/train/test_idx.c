/*
 * Unit test of the IDX reader of examples/train (qt_idx.c): writes small gzip'd IDX files
 * into a temporary directory - good ones, truncated ones (gzip stream cut short, payload
 * shorter than the header says), corrupted ones (flipped byte in the deflate data, bad
 * magic, trailing bytes, zero dimension) - and checks the result code and message of each.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "qt_check.h"
#include "qt_idx.h"

int qt_checks_passed, qt_checks_failed;
static char dir[64];

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* Writes an IDX file of ubyte data: header for dims[0..nd), then `have` payload bytes
 * (pattern i*7+3), then `extra` trailing bytes; gzip'd unless plain. */
static void write_idx(const char *name, int nd, const uint32_t *dims, size_t have, size_t extra,
                      int plain)
{
    char p[128];
    uint8_t hdr[4 + 4 * QT_IDX_MAX_DIMS] = { 0, 0, 8, (uint8_t) nd };
    size_t hlen = 4 + 4 * (size_t) nd;
    uint8_t *body = malloc(have + extra + 1);
    for (int i = 0; i < nd; ++i) {
        hdr[4 + 4 * i] = (uint8_t) (dims[i] >> 24);
        hdr[5 + 4 * i] = (uint8_t) (dims[i] >> 16);
        hdr[6 + 4 * i] = (uint8_t) (dims[i] >> 8);
        hdr[7 + 4 * i] = (uint8_t) dims[i];
    }
    for (size_t i = 0; i < have + extra; ++i) {
        body[i] = (uint8_t) (i * 7 + 3);
    }
    path_of(p, sizeof(p), name);
    if (plain) {
        FILE *f = fopen(p, "wb");
        fwrite(hdr, 1, hlen, f);
        fwrite(body, 1, have + extra, f);
        fclose(f);
    } else {
        gzFile g = gzopen(p, "wb6");
        gzwrite(g, hdr, (unsigned) hlen);
        gzwrite(g, body, (unsigned) (have + extra));
        gzclose(g);
    }
    free(body);
}

static long file_size(const char *name)
{
    char p[128];
    FILE *f;
    long n;
    path_of(p, sizeof(p), name);
    f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fclose(f);
    return n;
}

/* XORs byte `at` of the file with 0xff. */
static void flip_byte(const char *name, long at)
{
    char p[128];
    FILE *f;
    int c;
    path_of(p, sizeof(p), name);
    f = fopen(p, "r+b");
    fseek(f, at, SEEK_SET);
    c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0xff, f);
    fclose(f);
}

static void cut_file(const char *name, long size)
{
    char p[128];
    path_of(p, sizeof(p), name);
    CHECK(0 == truncate(p, size), "truncate %s", p);
}

/* Loads name and checks the code and that the message names the file and says `word`. */
static void expect(const char *name, int nd, int want, const char *word)
{
    char p[128], err[512] = "";
    qt_idx_t idx;
    int rc;
    path_of(p, sizeof(p), name);
    rc = qt_idx_load(p, nd, &idx, err, sizeof(err));
    CHECK(want == rc, "%s: rc %d, expected %d (%s)", name, rc, want, err);
    CHECK(NULL == idx.data && 0 == idx.size, "%s: nothing may be left loaded", name);
    CHECK(NULL != strstr(err, p) && NULL != strstr(err, word),
             "%s: message '%s' should name the file and say '%s'", name, err, word);
}

static void test_good(void)
{
    const uint32_t dims[3] = { 5, 28, 28 }, ldims[1] = { 5 };
    char p[128], err[512] = "";
    qt_idx_t idx;
    int rc, same = 1;
    write_idx("good.gz", 3, dims, 5 * 28 * 28, 0, 0);
    path_of(p, sizeof(p), "good.gz");
    rc = qt_idx_load(p, 3, &idx, err, sizeof(err));
    CHECK(QT_IDX_OK == rc, "good file: %s", err);
    if (QT_IDX_OK != rc) {
        return;
    }
    CHECK(3 == idx.ndims && 5 == idx.dims[0] && 28 == idx.dims[1] && 28 == idx.dims[2]
                 && 5 * 28 * 28 == idx.size,
             "dims %u %u %u size %zu", idx.dims[0], idx.dims[1], idx.dims[2], idx.size);
    for (size_t i = 0; i < idx.size; ++i) {
        same &= (uint8_t) (i * 7 + 3) == idx.data[i];
    }
    CHECK(same, "payload read back wrong");
    qt_idx_free(&idx);
    /* a plain (not gzip'd) IDX file is read as well */
    write_idx("plain", 1, ldims, 5, 0, 1);
    path_of(p, sizeof(p), "plain");
    rc = qt_idx_load(p, 1, &idx, err, sizeof(err));
    CHECK(QT_IDX_OK == rc && 5 == idx.size && 3 == idx.data[0], "plain file: %s", err);
    qt_idx_free(&idx);
}

static void test_truncated(void)
{
    const uint32_t dims[3] = { 40, 28, 28 };
    long size;
    /* valid gzip stream, but the IDX payload is shorter than the header says */
    write_idx("short_payload.gz", 3, dims, 40 * 28 * 28 - 100, 0, 0);
    expect("short_payload.gz", 3, QT_IDX_ERR_TRUNC, "truncated");
    /* the gzip file itself cut: in the middle, and just before the 8-byte trailer */
    write_idx("cut_middle.gz", 3, dims, 40 * 28 * 28, 0, 0);
    size = file_size("cut_middle.gz");
    cut_file("cut_middle.gz", size / 2);
    expect("cut_middle.gz", 3, QT_IDX_ERR_TRUNC, "truncated");
    write_idx("cut_trailer.gz", 3, dims, 40 * 28 * 28, 0, 0);
    cut_file("cut_trailer.gz", file_size("cut_trailer.gz") - 4);
    expect("cut_trailer.gz", 3, QT_IDX_ERR_TRUNC, "truncated");
    /* cut inside the IDX header */
    write_idx("cut_header", 3, dims, 0, 0, 1);
    cut_file("cut_header", 9);
    expect("cut_header", 3, QT_IDX_ERR_TRUNC, "truncated");
    /* empty file */
    cut_file("cut_header", 0);
    expect("cut_header", 3, QT_IDX_ERR_TRUNC, "truncated");
}

static void test_corrupted(void)
{
    const uint32_t dims[3] = { 40, 28, 28 }, zero[3] = { 40, 0, 28 };
    long size;
    /* a flipped byte in the compressed data (bad deflate data or a CRC mismatch) */
    write_idx("flip.gz", 3, dims, 40 * 28 * 28, 0, 0);
    size = file_size("flip.gz");
    flip_byte("flip.gz", size / 2);
    expect("flip.gz", 3, QT_IDX_ERR_CORRUPT, "corrupt");
    /* the CRC in the trailer itself */
    write_idx("crc.gz", 3, dims, 40 * 28 * 28, 0, 0);
    flip_byte("crc.gz", file_size("crc.gz") - 6);
    expect("crc.gz", 3, QT_IDX_ERR_CORRUPT, "corrupt");
    /* trailing bytes after the payload */
    write_idx("trailing.gz", 3, dims, 40 * 28 * 28, 3, 0);
    expect("trailing.gz", 3, QT_IDX_ERR_CORRUPT, "trailing");
    /* wrong magic: a labels file (1 dimension) read as images, a float type byte */
    write_idx("labels.gz", 1, dims, 40, 0, 0);
    expect("labels.gz", 3, QT_IDX_ERR_FORMAT, "IDX");
    write_idx("float", 3, dims, 0, 0, 1);
    flip_byte("float", 2);
    expect("float", 3, QT_IDX_ERR_FORMAT, "IDX");
    /* a zero dimension */
    write_idx("zero.gz", 3, zero, 0, 0, 0);
    expect("zero.gz", 3, QT_IDX_ERR_FORMAT, "dimension");
    /* missing file */
    expect("missing.gz", 3, QT_IDX_ERR_OPEN, "cannot open");
}

/* Image/label pairs: matching counts and label range. */
static void test_dataset(void)
{
    const uint32_t img[3] = { 6, 4, 4 }, lab[1] = { 6 }, lab5[1] = { 5 };
    char err[512] = "";
    qt_dataset_t ds;
    int rc;
    write_idx("train-images-idx3-ubyte.gz", 3, img, 6 * 16, 0, 0);
    write_idx("train-labels-idx1-ubyte.gz", 1, lab, 6, 0, 0);
    /* labels are i*7+3: 3, 10, 17, ... so with 256 classes all are valid */
    rc = qt_dataset_load(dir, "train", 256, &ds, err, sizeof(err));
    CHECK(QT_IDX_OK == rc && 6 == ds.n && 4 == ds.rows && 4 == ds.cols && 10 == ds.labels[1],
             "dataset: %s", err);
    if (QT_IDX_OK == rc) {
        qt_dataset_free(&ds);
    }
    rc = qt_dataset_load(dir, "train", 10, &ds, err, sizeof(err));
    CHECK(QT_IDX_ERR_FORMAT == rc && NULL != strstr(err, "label"), "label range: %s", err);
    write_idx("train-labels-idx1-ubyte.gz", 1, lab5, 5, 0, 0);
    rc = qt_dataset_load(dir, "train", 256, &ds, err, sizeof(err));
    CHECK(QT_IDX_ERR_FORMAT == rc && NULL != strstr(err, "5 labels for 6 images"),
             "count mismatch: %s", err);
    rc = qt_dataset_load(dir, "t10k", 10, &ds, err, sizeof(err));
    CHECK(QT_IDX_ERR_OPEN == rc && NULL != strstr(err, "t10k-images"), "missing: %s", err);
}

int main(void)
{
    char cmd[128];
    snprintf(dir, sizeof(dir), "/tmp/qtopo-idx-XXXXXX");
    if (NULL == mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good();
    test_truncated();
    test_corrupted();
    test_dataset();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (0 != system(cmd)) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return qt_check_summary();
}
