/*
 * qtopo error-feedback store: a hash table of residual buffers keyed by
 * (communicator id, buffer address, count), threaded on a doubly linked
 * least-recently-used list, with a byte cap.  See coll_qtopo_ef.h.
 */

#include "coll_qtopo_ef.h"
#include "coll_qtopo_codec.h"

#include <stdlib.h>

#define EF_MIN_BUCKETS 64

typedef struct ef_entry {
    uint64_t comm_id;
    uintptr_t addr;
    size_t count;
    size_t len;      /* floats in residual[] */
    uint64_t layout; /* what the residual's elements mean (see coll_qtopo_ef.h) */
    struct ef_entry *chain; /* next in the same hash bucket */
    struct ef_entry *newer; /* LRU list neighbours */
    struct ef_entry *older;
    float residual[];
} ef_entry_t;

struct qtopo_ef_store {
    size_t max_bytes;
    size_t used_bytes;
    size_t entries;
    size_t nbuckets; /* a power of two */
    ef_entry_t **buckets;
    ef_entry_t *newest;
    ef_entry_t *oldest;
};

size_t qtopo_ef_entry_bytes(size_t count)
{
    if ((SIZE_MAX - sizeof(ef_entry_t)) / sizeof(float) < count) {
        return SIZE_MAX;
    }
    return sizeof(ef_entry_t) + count * sizeof(float);
}

static size_t bucket_of(size_t nbuckets, uint64_t comm_id, uintptr_t addr, size_t count)
{
    uint64_t h = qtopo_codec_mix64(comm_id);
    h = qtopo_codec_mix64(h ^ (uint64_t) addr);
    h = qtopo_codec_mix64(h ^ (uint64_t) count);
    return (size_t) h & (nbuckets - 1);
}

qtopo_ef_store_t *qtopo_ef_store_create(size_t max_bytes)
{
    qtopo_ef_store_t *store = calloc(1, sizeof(*store));
    if (NULL == store) {
        return NULL;
    }
    store->buckets = calloc(EF_MIN_BUCKETS, sizeof(*store->buckets));
    if (NULL == store->buckets) {
        free(store);
        return NULL;
    }
    store->nbuckets = EF_MIN_BUCKETS;
    store->max_bytes = max_bytes;
    return store;
}

static void lru_unlink(qtopo_ef_store_t *store, ef_entry_t *e)
{
    if (NULL != e->newer) {
        e->newer->older = e->older;
    } else {
        store->newest = e->older;
    }
    if (NULL != e->older) {
        e->older->newer = e->newer;
    } else {
        store->oldest = e->newer;
    }
    e->newer = e->older = NULL;
}

static void lru_push_newest(qtopo_ef_store_t *store, ef_entry_t *e)
{
    e->older = store->newest;
    e->newer = NULL;
    if (NULL != store->newest) {
        store->newest->newer = e;
    } else {
        store->oldest = e;
    }
    store->newest = e;
}

static void remove_entry(qtopo_ef_store_t *store, ef_entry_t *e)
{
    ef_entry_t **link = &store->buckets[bucket_of(store->nbuckets, e->comm_id, e->addr,
                                                  e->count)];
    while (*link != e) {
        link = &(*link)->chain;
    }
    *link = e->chain;
    lru_unlink(store, e);
    store->used_bytes -= qtopo_ef_entry_bytes(e->len);
    store->entries--;
    free(e);
}

void qtopo_ef_store_destroy(qtopo_ef_store_t *store)
{
    if (NULL == store) {
        return;
    }
    while (NULL != store->oldest) {
        remove_entry(store, store->oldest);
    }
    free(store->buckets);
    free(store);
}

static ef_entry_t *find(const qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr,
                        size_t count)
{
    ef_entry_t *e = store->buckets[bucket_of(store->nbuckets, comm_id, addr, count)];
    while (NULL != e && (e->comm_id != comm_id || e->addr != addr || e->count != count)) {
        e = e->chain;
    }
    return e;
}

/* Doubles the bucket array when the load factor passes 1; on allocation
 * failure the old array stays (longer chains, still correct). */
static void maybe_grow(qtopo_ef_store_t *store)
{
    size_t n = 2 * store->nbuckets;
    ef_entry_t **buckets;
    if (store->entries < store->nbuckets) {
        return;
    }
    buckets = calloc(n, sizeof(*buckets));
    if (NULL == buckets) {
        return;
    }
    for (ef_entry_t *e = store->newest; NULL != e; e = e->older) {
        size_t b = bucket_of(n, e->comm_id, e->addr, e->count);
        e->chain = buckets[b];
        buckets[b] = e;
    }
    free(store->buckets);
    store->buckets = buckets;
    store->nbuckets = n;
}

static ef_entry_t *insert(qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr,
                          size_t count, size_t len, uint64_t layout)
{
    size_t b, bytes = qtopo_ef_entry_bytes(len);
    ef_entry_t *e;

    while (store->max_bytes - store->used_bytes < bytes) {
        remove_entry(store, store->oldest);
    }
    maybe_grow(store);
    e = calloc(1, bytes); /* zero-filled residual */
    if (NULL == e) {
        return NULL;
    }
    e->comm_id = comm_id;
    e->addr = addr;
    e->count = count;
    e->len = len;
    e->layout = layout;
    b = bucket_of(store->nbuckets, comm_id, addr, count);
    e->chain = store->buckets[b];
    store->buckets[b] = e;
    lru_push_newest(store, e);
    store->used_bytes += bytes;
    store->entries++;
    return e;
}

float *qtopo_ef_lookup_layout(qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr,
                              size_t count, size_t len, uint64_t layout)
{
    ef_entry_t *e;

    if (NULL == store || 0 == len || store->max_bytes < qtopo_ef_entry_bytes(len)) {
        return NULL;
    }
    e = find(store, comm_id, addr, count);
    if (NULL != e && (e->len != len || e->layout != layout)) {
        remove_entry(store, e); /* made for another layout: meaningless now */
        e = NULL;
    }
    if (NULL != e) {
        lru_unlink(store, e);
        lru_push_newest(store, e);
    } else {
        e = insert(store, comm_id, addr, count, len, layout);
    }
    return NULL != e ? e->residual : NULL;
}

float *qtopo_ef_lookup(qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr, size_t count)
{
    return qtopo_ef_lookup_layout(store, comm_id, addr, count, count, 0);
}

void qtopo_ef_forget_comm(qtopo_ef_store_t *store, uint64_t comm_id)
{
    ef_entry_t *e = NULL != store ? store->newest : NULL;
    while (NULL != e) {
        ef_entry_t *older = e->older;
        if (e->comm_id == comm_id) {
            remove_entry(store, e);
        }
        e = older;
    }
}

size_t qtopo_ef_store_bytes(const qtopo_ef_store_t *store)
{
    return NULL != store ? store->used_bytes : 0;
}

size_t qtopo_ef_store_entries(const qtopo_ef_store_t *store)
{
    return NULL != store ? store->entries : 0;
}
