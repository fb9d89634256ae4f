/* pool.h - the core's threads, for inference, training and the data
 * loader.  Internal to the core.
 *
 * A pool is the calling thread plus n - 1 workers that live as long as
 * the pool.  Work comes in one of two forms:
 * - cnn_pool_for: a range of items (rows of a convolution, blocks of a
 *   dense layer) that every thread takes from in chunks as it gets to
 *   them.  Each item is computed the same way whichever thread takes it,
 *   so the results depend neither on the thread count nor on the timing.
 * - cnn_pool_run: n fixed parts (the static partition the trainer's
 *   reductions need), part i of n always the same share, summed by the
 *   caller in part order: the results depend on n, never on the timing.
 * In both, a thread the OS is not running at the moment (the machine may
 * be shared) holds up only the chunk or part it has taken: the others
 * take what is left.
 *
 * Waiting threads spin for a few microseconds, then keep looking but
 * yield the processor between looks, and after a while sleep: a pool
 * never holds a core another process could use. */
#ifndef CNN_POOL_H
#define CNN_POOL_H

#include "cnn.h"

typedef struct cnn_pool cnn_pool;

/* Computes items [i0, i1). */
typedef void (*cnn_pool_fn)(void *ctx, size_t i0, size_t i1);

/* A pool of n threads in all (1 <= n <= 1024); n = 1 starts none. */
cnn_status cnn_pool_create(int n, cnn_pool **out);
void cnn_pool_free(cnn_pool *p);
int cnn_pool_size(const cnn_pool *p);

/* Calls fn on consecutive chunks of `chunk` items (the last one shorter)
 * until [0, items) is done, spread over the pool's threads, the calling
 * one included; returns when every call has returned.  One run at a time
 * per pool. */
void cnn_pool_for(cnn_pool *p, size_t items, size_t chunk, cnn_pool_fn fn, void *ctx);

/* Part `part` of `parts`. */
typedef void (*cnn_pool_part_fn)(void *ctx, int part, int parts);

/* Static partition: calls fn(ctx, i, n) once for each i in [0, n),
 * n = cnn_pool_size(p) (1 for a NULL pool: the calling thread only),
 * the calls spread over the pool's threads; returns when all have
 * returned.  A part must not wait for another (one thread may run
 * several parts in turn), and may use per-part scratch indexed by i.
 * One run at a time per pool. */
void cnn_pool_run(cnn_pool *p, cnn_pool_part_fn fn, void *ctx);

/* [*begin, *end): part i of n of [0, total), the same for every caller. */
void cnn_pool_split(size_t total, int n, int i, size_t *begin, size_t *end);

#endif /* CNN_POOL_H */
