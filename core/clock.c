/* clock.c - the one monotonic clock (cnn.h): the thread pool's spin
 * limits, the per-step timings, the trainer's progress, the CLI's
 * benchmarks and the tests' time limits all read it. */
#include "cnn.h"

#include <time.h>

double cnn_clock_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
