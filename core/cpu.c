/* cpu.c - which kernel set this machine runs.
 *
 * The AVX2 and AVX-512 sets live in files built with those ISA flags;
 * this file has none, and nothing from those files runs before the checks
 * below (__builtin_cpu_supports also checks that the OS saves the wider
 * registers). */
#include "cnn_internal.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_isa_name(cnn_isa isa)
{
    switch (isa) {
    case CNN_ISA_PORTABLE: return "portable";
    case CNN_ISA_AVX2: return "avx2";
    case CNN_ISA_AVX512: return "avx512";
    case CNN_ISA_COUNT: break;
    }
    return "unknown";
}

bool cnn_isa_supported(cnn_isa isa)
{
    switch (isa) {
    case CNN_ISA_PORTABLE: return true;
#ifdef CNN_HAVE_X86_KERNELS
    case CNN_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    case CNN_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    case CNN_ISA_AVX2:
    case CNN_ISA_AVX512:
        return false;
#endif
    case CNN_ISA_COUNT: break;
    }
    return false;
}

cnn_isa cnn_isa_default(void)
{
    const char *force = getenv("CATDOG_FORCE_PORTABLE");
    if (force && *force && strcmp(force, "0") != 0) return CNN_ISA_PORTABLE;
    /* CATDOG_ISA=NAME: that set where this CPU runs it (tests reach every
     * path this way); otherwise the best one. */
    const char *want = getenv("CATDOG_ISA");
    for (int i = 0; want && i < CNN_ISA_COUNT; i++)
        if (strcmp(want, cnn_isa_name((cnn_isa)i)) == 0 && cnn_isa_supported((cnn_isa)i))
            return (cnn_isa)i;
    for (int i = CNN_ISA_COUNT - 1; i > CNN_ISA_PORTABLE; i--)
        if (cnn_isa_supported((cnn_isa)i)) return (cnn_isa)i;
    return CNN_ISA_PORTABLE;
}

const cnn_kernels *cnn_kernels_for(cnn_isa isa)
{
    if (!cnn_isa_supported(isa)) return NULL;
    switch (isa) {
#ifdef CNN_HAVE_X86_KERNELS
    case CNN_ISA_AVX2: return &cnn_kernels_avx2;
    case CNN_ISA_AVX512: return &cnn_kernels_avx512;
#endif
    default: return &cnn_kernels_portable;
    }
}

cnn_status cnn_isa_fma_peak(cnn_isa isa, double *flops_per_second)
{
    if (!flops_per_second) return cnn_fail(CNN_ERR_ARG, "cnn_isa_fma_peak: NULL argument");
    *flops_per_second = 0;
    const cnn_kernels *k = cnn_kernels_for(isa);
    if (!k) return cnn_fail(CNN_ERR_UNSUPPORTED, "this CPU (or build) cannot run the %s kernels",
                            cnn_isa_name(isa));
    /* Best of many short runs: the peak of an unloaded core even when
     * other work shares the machine. */
    double best = 0, flops;
    volatile float sink = 0;
    long iters = 1 << 16;
    /* Size one run to about 5 ms. */
    for (;;) {
        double t = cnn_clock_seconds();
        sink = sink + k->fma_loop(iters, &flops);
        t = cnn_clock_seconds() - t;
        if (t > 2e-3 || iters > (1L << 30)) {
            iters = (long)((double)iters * 5e-3 / (t > 1e-9 ? t : 1e-9)) + 1;
            break;
        }
        iters *= 4;
    }
    for (int r = 0; r < 20; r++) {
        double t = cnn_clock_seconds();
        sink = sink + k->fma_loop(iters, &flops);
        t = cnn_clock_seconds() - t;
        if (flops / t > best) best = flops / t;
    }
    (void)sink;
    *flops_per_second = best;
    return CNN_OK;
}

void cnn_cpu_name(char *buf, size_t size)
{
    if (size == 0) return;
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* x86: "model name : ..."; some ARM kernels: "Hardware : ...". */
        if (strncmp(line, "model name", 10) != 0 && strncmp(line, "Hardware", 8) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) continue;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t n = strcspn(v, "\n");
        if (n == 0) continue;
        snprintf(buf, size, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}
