/* fuzz.h - what the fuzz harnesses share.  Each harness defines the
 * libFuzzer entry point; tools/fuzz links it with libFuzzer, and the
 * normal build links it with replay.c to run saved inputs as tests. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise of the API (not a refused input) ends the run as a
 * crash, so libFuzzer keeps the input and the replay test fails. */
#define FUZZ_ASSERT(cond, ...)                                             \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__,     \
                    __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* No byte a terminal would act on (C0 controls, DEL, UTF-8 C1 controls):
 * messages quote names read from the input. */
static inline int fuzz_printable(const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)) return 0;
    return 1;
}

#endif /* FUZZ_H */
