/* test_pool.c - the forward pass's thread pool under a storm of small
 * jobs of changing shapes: every item of every job runs exactly once, with
 * the job's own function and context, and no run waits forever.
 *
 * Jobs alternate between two functions whose contexts carry different
 * tags and between few and many chunks, so that a worker that wakes late
 * for one job and takes a chunk of the next one with a mix of the two
 * jobs' settings shows up as a wrong tag, an item run twice or a run that
 * never ends (an alarm ends the test then).
 *
 * Then the static partition (cnn_pool_run): each of the n parts runs
 * exactly once with its own index and n, the caller's context; and
 * cnn_pool_split cuts a range into n consecutive parts that cover it,
 * without overflowing for huge ranges. */
#include "check.h"
#include "pool.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { MAX_ITEMS = 97, JOBS = 200000 };

typedef struct {
    int tag;
    size_t items;
    atomic_int count[MAX_ITEMS];
    atomic_int bad; /* calls that were not this job's */
} job;

static void run(job *j, int tag, size_t i0, size_t i1)
{
    if (j->tag != tag || i1 > j->items || i0 >= i1) {
        atomic_fetch_add(&j->bad, 1);
        return;
    }
    for (size_t i = i0; i < i1; i++) atomic_fetch_add(&j->count[i], 1);
}

static void fn_a(void *ctx, size_t i0, size_t i1) { run(ctx, 'A', i0, i1); }
static void fn_b(void *ctx, size_t i0, size_t i1) { run(ctx, 'B', i0, i1); }

static void storm(int threads)
{
    cnn_pool *p = NULL;
    CHECK_OK(cnn_pool_create(threads, &p));
    if (!p) return;
    static job jobs[2];
    long wrong = 0;
    for (int n = 0; n < JOBS; n++) {
        job *j = &jobs[n & 1];
        j->tag = n & 1 ? 'B' : 'A';
        /* Sizes cycle so that consecutive jobs differ in chunk count. */
        j->items = 2 + (size_t)(n * 37 % (MAX_ITEMS - 1));
        for (size_t i = 0; i < MAX_ITEMS; i++) atomic_store(&j->count[i], 0);
        atomic_store(&j->bad, 0);
        const size_t chunk = 1 + (size_t)(n % 3);
        cnn_pool_for(p, j->items, chunk, n & 1 ? fn_b : fn_a, j);
        int ok = atomic_load(&j->bad) == 0;
        for (size_t i = 0; i < j->items; i++) ok = ok && atomic_load(&j->count[i]) == 1;
        if (!ok) wrong++;
    }
    CHECKF(wrong == 0, "%d threads: %ld of %d jobs ran an item twice, not at all, or with "
           "another job's function or context", threads, wrong, JOBS);
    cnn_pool_free(p);
}

typedef struct {
    atomic_int count[8];
    atomic_int bad;
    int want_parts;
} parts_job;

static void part_fn(void *ctx, int part, int parts)
{
    parts_job *j = ctx;
    if (parts != j->want_parts || part < 0 || part >= parts) {
        atomic_fetch_add(&j->bad, 1);
        return;
    }
    atomic_fetch_add(&j->count[part], 1);
}

static void static_parts(void)
{
    for (int threads = 0; threads <= 5; threads++) {
        cnn_pool *p = NULL;
        if (threads > 0) CHECK_OK(cnn_pool_create(threads, &p));
        const int n = threads > 0 ? threads : 1; /* 0: a NULL pool */
        CHECK(cnn_pool_size(p) == n);
        long wrong = 0;
        for (int rep = 0; rep < 20000; rep++) {
            static parts_job j;
            for (int i = 0; i < 8; i++) atomic_store(&j.count[i], 0);
            atomic_store(&j.bad, 0);
            j.want_parts = n;
            cnn_pool_run(p, part_fn, &j);
            int ok = atomic_load(&j.bad) == 0;
            for (int i = 0; i < 8; i++) ok = ok && atomic_load(&j.count[i]) == (i < n);
            if (!ok) wrong++;
        }
        CHECKF(wrong == 0, "cnn_pool_run, %d threads: %ld runs with a part missing, run "
               "twice or called with the wrong count", threads, wrong);
        cnn_pool_free(p);
    }
    const size_t totals[] = {0, 1, 7, 100, 1001, SIZE_MAX - 3, SIZE_MAX};
    for (size_t t = 0; t < sizeof totals / sizeof *totals; t++)
        for (int n = 1; n <= 7; n++) {
            size_t end = 0, b, e;
            int ok = 1;
            for (int i = 0; i < n; i++) {
                cnn_pool_split(totals[t], n, i, &b, &e);
                ok = ok && b == end && e >= b;
                /* Parts differ in size by at most one. */
                ok = ok && e - b >= totals[t] / (size_t)n && e - b - totals[t] / (size_t)n <= 1;
                end = e;
            }
            CHECKF(ok && end == totals[t], "cnn_pool_split(%zu, %d) does not cut it into "
                   "consecutive even parts", totals[t], n);
        }
}

int main(void)
{
    /* A lost hand-off hangs cnn_pool_for; the alarm turns that into a
     * failure well before meson's timeout. */
    alarm(60);
    for (int threads = 2; threads <= 4; threads++) storm(threads);
    static_parts();
    return check_done("test_pool");
}
