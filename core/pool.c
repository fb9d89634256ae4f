/* pool.c - worker threads for forward passes (see pool.h).
 *
 * A run publishes the job, then bumps a generation counter; threads take
 * chunks by compare-and-swap on one word holding the generation and the
 * next chunk, so a thread that wakes up late, still holding an older
 * generation, can take nothing from a newer job.  The caller takes chunks
 * too, then waits until the items done add up to the job.
 *
 * Every wait spins for SPIN_SECONDS, then keeps looking but yields the
 * processor between looks until YIELD_SECONDS (other threads get to run; on an
 * idle machine the yield returns at once), and only then sleeps on a
 * condition variable: waking a sleeper takes tens of microseconds, longer
 * than many steps of a forward pass.  The sleeper announces itself
 * (sleepers, caller_sleeping) before its last look at the condition, and
 * the waker looks at the announcement after changing the condition: both
 * are sequentially consistent atomics, so at least one of the two sees
 * the other and no wake-up is lost. */
/* sched_getaffinity and CPU_COUNT are GNU extensions (Linux). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "pool.h"
#include "cnn_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_SECONDS 20e-6
#define YIELD_SECONDS 2e-3

struct cnn_pool {
    int n;
    pthread_t *threads; /* n - 1 workers */
    int started;        /* workers running */
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    atomic_uint gen;           /* the current job */
    _Atomic uint64_t claim;    /* gen << 32 | next chunk to take */
    atomic_size_t done;        /* items of the current job finished */
    atomic_int sleepers;       /* workers asleep on wake */
    atomic_int caller_sleeping;
    atomic_int stop;
    /* The current job.  Atomic because a late worker may read them while
     * the next job is being set up; it only acts on them after taking a
     * chunk of its generation, when they cannot change. */
    _Atomic(cnn_pool_fn) fn;
    _Atomic(void *) ctx;
    atomic_size_t items, chunk, n_chunks;
};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One look per call while spinning: pause, then yield, then give up. */
typedef struct {
    double start; /* cnn_clock_seconds() */
    int i;
} spinner;

static int keep_spinning(spinner *s)
{
    if ((++s->i & 63) != 0) {
        cpu_relax();
        return 1;
    }
    const double t = cnn_clock_seconds() - s->start;
    if (t < SPIN_SECONDS) return 1;
    if (t > YIELD_SECONDS) return 0;
    sched_yield();
    s->i = 63; /* look at the clock after every yield */
    return 1;
}

/* Waits while *v == unchanged, short of sleeping; whether it changed. */
static int spin_gen(atomic_uint *v, unsigned unchanged)
{
    spinner s = {cnn_clock_seconds(), 0};
    while (atomic_load(v) == unchanged)
        if (!keep_spinning(&s)) return 0;
    return 1;
}

/* Waits while *v != want, short of sleeping; whether it got there. */
static int spin_until(atomic_size_t *v, size_t want)
{
    spinner s = {cnn_clock_seconds(), 0};
    while (atomic_load(v) != want)
        if (!keep_spinning(&s)) return 0;
    return 1;
}

/* Takes and runs chunks of job g until none is left. */
static void work(cnn_pool *p, unsigned g)
{
    uint64_t cur = atomic_load(&p->claim);
    for (;;) {
        const uint32_t k = (uint32_t)cur;
        if ((unsigned)(cur >> 32) != g || k >= atomic_load(&p->n_chunks)) return;
        if (!atomic_compare_exchange_weak(&p->claim, &cur, cur + 1)) continue;
        /* Chunk k of job g is ours: the job cannot change before it is done. */
        const size_t items = atomic_load(&p->items), chunk = atomic_load(&p->chunk);
        const size_t i0 = (size_t)k * chunk, i1 = items - i0 < chunk ? items : i0 + chunk;
        atomic_load(&p->fn)(atomic_load(&p->ctx), i0, i1);
        if (atomic_fetch_add(&p->done, i1 - i0) + (i1 - i0) == items &&
            atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        cur = atomic_load(&p->claim);
    }
}

static void *worker(void *arg)
{
    cnn_pool *p = arg;
    unsigned seen = 0;
    for (;;) {
        if (!spin_gen(&p->gen, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = atomic_load(&p->gen);
        if (atomic_load(&p->stop)) return NULL;
        work(p, seen);
    }
}

/* Wakes every worker after gen has moved. */
static void wake_all(cnn_pool *p)
{
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(cnn_pool *p)
{
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    p->started = 0;
}

cnn_status cnn_pool_create(int n, cnn_pool **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_pool_create: out is NULL");
    *out = NULL;
    if (n < 1 || n > 1024) return cnn_fail(CNN_ERR_ARG, "thread count %d is not in 1..1024", n);
    cnn_pool *p = cnn_alloc(1, sizeof *p);
    if (!p) return CNN_ERR_NOMEM;
    p->n = n;
    if (n > 1 && !(p->threads = cnn_alloc((size_t)n - 1, sizeof *p->threads))) {
        free(p);
        return CNN_ERR_NOMEM;
    }
    atomic_init(&p->gen, 0);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->items, 0);
    atomic_init(&p->chunk, 0);
    atomic_init(&p->n_chunks, 0);
    cnn_status st;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        st = cnn_fail(CNN_ERR_LIMIT, "cannot set up a mutex for %d threads", n);
        goto fail_mutex;
    }
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        st = cnn_fail(CNN_ERR_LIMIT, "cannot set up a condition variable for %d threads", n);
        goto fail_wake;
    }
    if (pthread_cond_init(&p->done_cv, NULL) != 0) {
        st = cnn_fail(CNN_ERR_LIMIT, "cannot set up a condition variable for %d threads", n);
        goto fail_done;
    }
    for (int t = 1; t < n; t++) {
        if (pthread_create(&p->threads[t - 1], NULL, worker, p) != 0) {
            st = cnn_fail(CNN_ERR_LIMIT, "cannot start thread %d of %d", t + 1, n);
            goto fail_threads;
        }
        p->started++;
    }
    *out = p;
    return CNN_OK;

fail_threads:
    stop_workers(p);
    pthread_cond_destroy(&p->done_cv);
fail_done:
    pthread_cond_destroy(&p->wake);
fail_wake:
    pthread_mutex_destroy(&p->mu);
fail_mutex:
    free(p->threads);
    free(p);
    return st;
}

void cnn_pool_free(cnn_pool *p)
{
    if (!p) return;
    stop_workers(p);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int cnn_pool_size(const cnn_pool *p) { return p ? p->n : 1; }

void cnn_pool_for(cnn_pool *p, size_t items, size_t chunk, cnn_pool_fn fn, void *ctx)
{
    if (items == 0) return;
    if (chunk == 0) chunk = 1;
    const size_t n_chunks = (items - 1) / chunk + 1;
    if (!p || p->n == 1 || n_chunks == 1 || n_chunks > UINT32_MAX) {
        fn(ctx, 0, items);
        return;
    }
    /* The claim word moves to the new generation before anything of the
     * job changes.  A worker still in work() for the previous job may
     * have read the old claim word and is about to compare its chunk
     * number with n_chunks: its compare-and-swap now fails whatever
     * n_chunks it saw.  (With the claim word moved last, such a worker
     * could read the new, larger n_chunks, win the swap on the old word,
     * and run a chunk of the new job, possibly with the old context,
     * which the rightful taker then ran again: done overshot the item
     * count and the caller waited forever.)  Workers only take chunks
     * of the new generation after reading it from gen, stored last. */
    const unsigned g = atomic_load(&p->gen) + 1u;
    atomic_store(&p->claim, (uint64_t)g << 32);
    atomic_store(&p->fn, fn);
    atomic_store(&p->ctx, ctx);
    atomic_store(&p->items, items);
    atomic_store(&p->chunk, chunk);
    atomic_store(&p->n_chunks, n_chunks);
    atomic_store(&p->done, 0);
    atomic_store(&p->gen, g);
    wake_all(p);
    work(p, g);
    if (!spin_until(&p->done, items)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->done) != items) pthread_cond_wait(&p->done_cv, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
}

typedef struct {
    cnn_pool_part_fn fn;
    void *ctx;
    int parts;
} part_job;

static void run_parts(void *ctx, size_t i0, size_t i1)
{
    const part_job *j = ctx;
    for (size_t i = i0; i < i1; i++) j->fn(j->ctx, (int)i, j->parts);
}

void cnn_pool_run(cnn_pool *p, cnn_pool_part_fn fn, void *ctx)
{
    part_job j = {fn, ctx, cnn_pool_size(p)};
    if (j.parts == 1) {
        fn(ctx, 0, 1);
        return;
    }
    /* One chunk a part: a thread that the OS is not running leaves its
     * part to the others instead of holding up the whole run. */
    cnn_pool_for(p, (size_t)j.parts, 1, run_parts, &j);
}

void cnn_pool_split(size_t total, int n, int i, size_t *begin, size_t *end)
{
    /* total * i / n without overflowing when total is large. */
    const size_t q = total / (size_t)n, r = total % (size_t)n;
    *begin = q * (size_t)i + r * (size_t)i / (size_t)n;
    *end = q * (size_t)(i + 1) + r * (size_t)(i + 1) / (size_t)n;
}

int cnn_cpu_count(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    /* The processors this process may run on (a container or taskset
     * may allow fewer than the machine has). */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1)
        return CPU_COUNT(&set) > 1024 ? 1024 : CPU_COUNT(&set);
#endif
#ifdef _SC_NPROCESSORS_ONLN
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n >= 1) return n > 1024 ? 1024 : (int)n;
#endif
    return 1;
}
