/*
 * Unit tests of the qtopo error-feedback store (coll_qtopo_ef.[ch]): zeroed
 * residuals for new keys, persistence, LRU eviction, the byte cap, forgetting
 * a communicator, table growth.  Ends with "N passed, M failed".
 */

#include "codec_test.h"

#include "coll_qtopo_ef.h"

#include <stdlib.h>

static int all_zero(const float *r, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (0.0f != r[i]) {
            return 0;
        }
    }
    return 1;
}

static int test_new_key_zeroed_and_kept(void)
{
    qtopo_ef_store_t *s = qtopo_ef_store_create(1 << 20);
    float *r, *again;
    CHECK(NULL != s);
    r = qtopo_ef_lookup(s, 1, 0x1000, 1000);
    CHECK(NULL != r && all_zero(r, 1000));
    r[0] = 1.5f;
    r[999] = -2.0f;
    again = qtopo_ef_lookup(s, 1, 0x1000, 1000);
    CHECK(again == r && 1.5f == again[0] && -2.0f == again[999]);
    /* each key component matters */
    CHECK(all_zero(qtopo_ef_lookup(s, 2, 0x1000, 1000), 1000));
    CHECK(all_zero(qtopo_ef_lookup(s, 1, 0x2000, 1000), 1000));
    CHECK(all_zero(qtopo_ef_lookup(s, 1, 0x1000, 999), 999));
    CHECK(4 == qtopo_ef_store_entries(s));
    CHECK(1.5f == qtopo_ef_lookup(s, 1, 0x1000, 1000)[0]);
    qtopo_ef_store_destroy(s);
    qtopo_ef_store_destroy(NULL);
    return 0;
}

/* A residual made for another length or layout of the same key is not handed out: its
 * elements are other elements of the buffer (split-rail vs flat, another node shape);
 * a shorter residual is charged for its own length. */
static int test_layout_change_resets(void)
{
    qtopo_ef_store_t *s = qtopo_ef_store_create(1 << 20);
    float *r;
    CHECK(NULL != s);
    r = qtopo_ef_lookup_layout(s, 1, 0x1000, 1000, 1000, 0);
    CHECK(NULL != r);
    r[0] = 3.0f;
    r = qtopo_ef_lookup_layout(s, 1, 0x1000, 1000, 500, (uint64_t) 2 << 32 | 1);
    CHECK(NULL != r && all_zero(r, 500));
    CHECK(1 == qtopo_ef_store_entries(s) && qtopo_ef_entry_bytes(500) == qtopo_ef_store_bytes(s));
    r[0] = 4.0f;
    CHECK(4.0f == qtopo_ef_lookup_layout(s, 1, 0x1000, 1000, 500, (uint64_t) 2 << 32 | 1)[0]);
    r = qtopo_ef_lookup_layout(s, 1, 0x1000, 1000, 500, (uint64_t) 2 << 32 | 0);
    CHECK(NULL != r && all_zero(r, 500));
    CHECK(all_zero(qtopo_ef_lookup(s, 1, 0x1000, 1000), 1000));
    qtopo_ef_store_destroy(s);
    return 0;
}

static int test_cap_and_refusals(void)
{
    size_t one = qtopo_ef_entry_bytes(100);
    qtopo_ef_store_t *s = qtopo_ef_store_create(3 * one);
    CHECK(NULL != s);
    CHECK(NULL == qtopo_ef_lookup(s, 1, 0x10, 0));
    CHECK(NULL != qtopo_ef_lookup(s, 1, 0x10, 100));
    /* larger than the whole cap: refused, and nothing is evicted for it */
    CHECK(NULL == qtopo_ef_lookup(s, 1, 0x20, 3 * 100 + 100));
    CHECK(1 == qtopo_ef_store_entries(s) && one == qtopo_ef_store_bytes(s));
    CHECK(NULL == qtopo_ef_lookup(s, 1, 0x20, SIZE_MAX / 2));
    CHECK(NULL == qtopo_ef_lookup(NULL, 1, 0x20, 10));
    qtopo_ef_store_destroy(s);
    return 0;
}

static int test_lru_eviction(void)
{
    size_t one = qtopo_ef_entry_bytes(64);
    qtopo_ef_store_t *s = qtopo_ef_store_create(3 * one + one / 2);
    float *a, *b, *c, *d;
    CHECK(NULL != s);
    a = qtopo_ef_lookup(s, 7, 0xa, 64);
    a[0] = 1.0f;
    b = qtopo_ef_lookup(s, 7, 0xb, 64);
    b[0] = 2.0f;
    c = qtopo_ef_lookup(s, 7, 0xc, 64);
    c[0] = 3.0f;
    CHECK(NULL != a && NULL != b && NULL != c && 3 == qtopo_ef_store_entries(s));
    CHECK(1.0f == qtopo_ef_lookup(s, 7, 0xa, 64)[0]); /* a is now the newest: b the oldest */
    d = qtopo_ef_lookup(s, 7, 0xd, 64);
    CHECK(NULL != d && 3 == qtopo_ef_store_entries(s));
    CHECK(qtopo_ef_store_bytes(s) <= 3 * one + one / 2);
    CHECK(1.0f == qtopo_ef_lookup(s, 7, 0xa, 64)[0]);
    CHECK(3.0f == qtopo_ef_lookup(s, 7, 0xc, 64)[0]);
    CHECK(0.0f == qtopo_ef_lookup(s, 7, 0xb, 64)[0]); /* evicted: comes back zeroed */
    /* newest to oldest now: b, c, a.  A double-size entry evicts as many old
     * ones as it needs: a, then c */
    qtopo_ef_lookup(s, 7, 0xb, 64)[0] = 2.0f;
    CHECK(NULL != qtopo_ef_lookup(s, 7, 0xe, 64 * 2));
    CHECK(2 == qtopo_ef_store_entries(s));
    CHECK(qtopo_ef_store_bytes(s) == one + qtopo_ef_entry_bytes(128));
    CHECK(2.0f == qtopo_ef_lookup(s, 7, 0xb, 64)[0]);
    CHECK(0.0f == qtopo_ef_lookup(s, 7, 0xc, 64)[0]);
    qtopo_ef_store_destroy(s);
    return 0;
}

static int test_forget_comm(void)
{
    qtopo_ef_store_t *s = qtopo_ef_store_create(1 << 20);
    CHECK(NULL != s);
    for (uintptr_t k = 0; k < 10; ++k) {
        CHECK(NULL != qtopo_ef_lookup(s, k % 2, 0x100 * (k + 1), 16));
        qtopo_ef_lookup(s, k % 2, 0x100 * (k + 1), 16)[3] = (float) k + 1.0f;
    }
    qtopo_ef_forget_comm(s, 1);
    CHECK(5 == qtopo_ef_store_entries(s));
    CHECK(5 * qtopo_ef_entry_bytes(16) == qtopo_ef_store_bytes(s));
    for (uintptr_t k = 0; k < 10; k += 2) {
        CHECK((float) k + 1.0f == qtopo_ef_lookup(s, 0, 0x100 * (k + 1), 16)[3]);
    }
    CHECK(0.0f == qtopo_ef_lookup(s, 1, 0x200, 16)[3]);
    qtopo_ef_forget_comm(s, 42);
    qtopo_ef_forget_comm(NULL, 0);
    CHECK(6 == qtopo_ef_store_entries(s));
    qtopo_ef_store_destroy(s);
    return 0;
}

/* thousands of keys: table growth keeps every entry reachable; the cap and
 * the LRU order hold under random access */
static int test_many_keys(void)
{
    enum { KEYS = 5000, LIVE = 1500 };
    size_t one = qtopo_ef_entry_bytes(8);
    qtopo_ef_store_t *s = qtopo_ef_store_create(LIVE * one);
    uint64_t rng = 12345;
    CHECK(NULL != s);
    for (uintptr_t k = 0; k < KEYS; ++k) {
        float *r = qtopo_ef_lookup(s, k / 100, k * 64, 8);
        CHECK(NULL != r && all_zero(r, 8));
        r[0] = (float) k;
    }
    CHECK(LIVE == qtopo_ef_store_entries(s) && qtopo_ef_store_bytes(s) <= LIVE * one);
    for (int i = 0; i < 3000; ++i) { /* the newest LIVE keys are all still there */
        uintptr_t k = KEYS - LIVE + (uintptr_t) (rng_next(&rng) % LIVE);
        CHECK((float) k == qtopo_ef_lookup(s, k / 100, k * 64, 8)[0]);
    }
    qtopo_ef_store_destroy(s);
    return 0;
}

int main(void)
{
    static const test_case_t tests[] = {
        { "new_key_zeroed_and_kept", test_new_key_zeroed_and_kept },
        { "cap_and_refusals", test_cap_and_refusals },
        { "layout_change_resets", test_layout_change_resets },
        { "lru_eviction", test_lru_eviction },
        { "forget_comm", test_forget_comm },
        { "many_keys", test_many_keys },
    };
    return run_tests(tests, (int) (sizeof(tests) / sizeof(tests[0])));
}
