/*
 * qtopo error-feedback store: the quantization residual of each
 * (communicator, buffer address, count) a caller reduces with error
 * feedback, so that the next call with the same key can add it back
 * (see qtopo_codec_encode_ef).  Total memory is capped; the least recently
 * used residuals are evicted to make room.
 *
 * Meaningful only when the caller reuses a buffer for the same tensor from
 * call to call (a training loop that reduces each gradient in place, DDP-style
 * stable buckets).  If different tensors pass through one buffer with the
 * same count (e.g. a fusion buffer), the residual of one is added to another:
 * that is why error feedback is off by default.
 *
 * Not thread-safe: the caller serialises all calls on one store.  Pure C,
 * no Open MPI headers.
 */

#ifndef MCA_COLL_QTOPO_EF_H
#define MCA_COLL_QTOPO_EF_H

#include <stddef.h>
#include <stdint.h>

typedef struct qtopo_ef_store qtopo_ef_store_t;

/* A store that holds at most max_bytes (residuals plus per-entry
 * bookkeeping, see qtopo_ef_store_bytes); NULL if out of memory. */
qtopo_ef_store_t *qtopo_ef_store_create(size_t max_bytes);
/* Frees the store and every residual; NULL is accepted. */
void qtopo_ef_store_destroy(qtopo_ef_store_t *store);

/*
 * The residual (count floats) for this key, marked most recently used.  A
 * new key gets a zero-filled residual, evicting least recently used entries
 * if needed.  NULL if count is 0, if one residual of this size cannot fit
 * under the cap, or if memory is short: the caller then encodes without
 * error feedback.  The pointer stays valid until the next lookup, forget or
 * destroy on this store.
 */
float *qtopo_ef_lookup(qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr, size_t count);
/*
 * The same for a caller whose residual covers `len` floats of the buffer arranged in
 * a way it names by `layout` (split-rail keeps only the 1/L of the buffer its rank
 * quantizes, arranged by the node layout). An entry of the key made with another len
 * or layout is dropped and a zero one made: its values belong to other elements.
 */
float *qtopo_ef_lookup_layout(qtopo_ef_store_t *store, uint64_t comm_id, uintptr_t addr,
                              size_t count, size_t len, uint64_t layout);
/* Drops every residual of a communicator (call it when the communicator is
 * freed: its id may be reused). */
void qtopo_ef_forget_comm(qtopo_ef_store_t *store, uint64_t comm_id);

/* Bytes charged against the cap: each entry costs qtopo_ef_entry_bytes(len). */
size_t qtopo_ef_store_bytes(const qtopo_ef_store_t *store);
size_t qtopo_ef_store_entries(const qtopo_ef_store_t *store);
size_t qtopo_ef_entry_bytes(size_t count);

#endif /* MCA_COLL_QTOPO_EF_H */
