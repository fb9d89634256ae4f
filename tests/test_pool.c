/* test_pool.c - the forward pass's thread pool under a storm of small
 * jobs of changing shapes: every item of every job runs exactly once, with
 * the job's own function and context, and no run waits forever.
 *
 * Jobs alternate between two functions whose contexts carry different
 * tags and between few and many chunks, so that a worker that wakes late
 * for one job and takes a chunk of the next one with a mix of the two
 * jobs' settings shows up as a wrong tag, an item run twice or a run that
 * never ends (an alarm ends the test then). */
#include "check.h"
#include "pool.h"

#include <signal.h>
#include <stdatomic.h>
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

int main(void)
{
    /* A lost hand-off hangs cnn_pool_for; the alarm turns that into a
     * failure well before meson's timeout. */
    alarm(60);
    for (int threads = 2; threads <= 4; threads++) storm(threads);
    return check_done("test_pool");
}
