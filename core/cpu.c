/* cpu.c - which kernel set this machine runs.
 *
 * The AVX2 and AVX-512 sets live in files built with those ISA flags;
 * this file has none, and nothing from those files runs before the checks
 * below (__builtin_cpu_supports also checks that the OS saves the wider
 * registers).  The bf16 sets need more than __builtin_cpu_supports knows
 * on every compiler: their CPUID bits (AVX512_BF16: leaf 7 subleaf 1
 * EAX[5]; AMX-BF16 and AMX-TILE: leaf 7 EDX[22] and [24]), the OS saving
 * the AVX-512 state (XCR0 bits 1, 2, 5-7) and for AMX the tile state
 * (XCR0 bits 17, 18), which Linux hands a process only when it asks
 * (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).  If any of it is
 * missing the set is not supported: the default falls back to
 * avx512bf16, then to the f32 sets. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1 /* syscall() */
#endif
#include "cnn_internal.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(CNN_HAVE_AVX512BF16_KERNELS) || defined(CNN_HAVE_AMX_KERNELS)
#include <cpuid.h>
#endif
#if defined(CNN_HAVE_AMX_KERNELS) && defined(__linux__)
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(CNN_HAVE_AVX512BF16_KERNELS) || defined(CNN_HAVE_AMX_KERNELS)
/* XCR0, or 0 when the OS does not enable XSAVE (then xgetbv would fault). */
static uint64_t xcr0(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static bool cpuid_avx512bf16(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 1, a, b, c, d);
    return (a & (1u << 5)) && (xcr0() & 0xe6) == 0xe6;
}
#endif

#if defined(CNN_HAVE_AMX_KERNELS)
static bool cpuid_amx(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    const uint64_t tiles = (1ull << 17) | (1ull << 18);
    return (d & (1u << 22)) && (d & (1u << 24)) && (xcr0() & tiles) == tiles;
}

#ifdef __linux__
enum { ARCH_GET_XCOMP_PERM_ = 0x1022, ARCH_REQ_XCOMP_PERM_ = 0x1023, XFEATURE_XTILEDATA_ = 18 };
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_granted;

static void amx_request(void)
{
    unsigned long mask = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) != 0) return;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM_, &mask) != 0) return;
    amx_granted = (mask >> XFEATURE_XTILEDATA_) & 1u;
}
#endif

bool cnn_amx_permission(void)
{
#ifdef __linux__
    if (!cpuid_amx()) return false;
    pthread_once(&amx_once, amx_request);
    return amx_granted;
#else
    return false; /* other systems: not asked for, so not used */
#endif
}
#endif

const char *cnn_isa_name(cnn_isa isa)
{
    switch (isa) {
    case CNN_ISA_PORTABLE: return "portable";
    case CNN_ISA_AVX2: return "avx2";
    case CNN_ISA_AVX512: return "avx512";
    case CNN_ISA_AVX512BF16: return "avx512bf16";
    case CNN_ISA_AMX: return "amx";
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
    case CNN_ISA_AVX512BF16:
#ifdef CNN_HAVE_AVX512BF16_KERNELS
        return cnn_isa_supported(CNN_ISA_AVX512) && cpuid_avx512bf16();
#else
        return false;
#endif
    case CNN_ISA_AMX:
#ifdef CNN_HAVE_AMX_KERNELS
        return cnn_isa_supported(CNN_ISA_AVX512BF16) && cnn_amx_permission();
#else
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
#ifdef CNN_HAVE_AVX512BF16_KERNELS
    case CNN_ISA_AVX512BF16: return &cnn_kernels_avx512bf16;
#endif
#ifdef CNN_HAVE_AMX_KERNELS
    case CNN_ISA_AMX: return &cnn_kernels_amx;
#endif
    default: return &cnn_kernels_portable;
    }
}

bool cnn_isa_has_bf16(cnn_isa isa) { return isa == CNN_ISA_AVX512BF16 || isa == CNN_ISA_AMX; }

const char *cnn_precision_name(cnn_precision p)
{
    switch (p) {
    case CNN_PRECISION_F32: return "f32";
    case CNN_PRECISION_BF16: return "bf16";
    case CNN_PRECISION_COUNT: break;
    }
    return "unknown";
}

cnn_status cnn_precision_parse(const char *name, cnn_precision *out)
{
    if (!name || !out) return cnn_fail(CNN_ERR_ARG, "cnn_precision_parse: NULL argument");
    for (int i = 0; i < CNN_PRECISION_COUNT; i++)
        if (strcmp(name, cnn_precision_name((cnn_precision)i)) == 0) {
            *out = (cnn_precision)i;
            return CNN_OK;
        }
    return cnn_fail(CNN_ERR_ARG, "precision '%.40s' does not exist (f32 or bf16)", name);
}

/* The best of 20 runs of `loop` (each about 5 ms), in operations per
 * second: the peak of an unloaded core even when other work shares the
 * machine. */
static double loop_peak(float (*loop)(long, double *))
{
    double best = 0, flops;
    volatile float sink = 0;
    long iters = 1 << 10;
    for (;;) {
        double t = cnn_clock_seconds();
        sink = sink + loop(iters, &flops);
        t = cnn_clock_seconds() - t;
        if (t > 2e-3 || iters > (1L << 30)) {
            iters = (long)((double)iters * 5e-3 / (t > 1e-9 ? t : 1e-9)) + 1;
            break;
        }
        iters *= 4;
    }
    for (int r = 0; r < 20; r++) {
        double t = cnn_clock_seconds();
        sink = sink + loop(iters, &flops);
        t = cnn_clock_seconds() - t;
        if (flops / t > best) best = flops / t;
    }
    (void)sink;
    return best;
}

cnn_status cnn_isa_bf16_peak(cnn_isa isa, double *flops_per_second)
{
    if (!flops_per_second) return cnn_fail(CNN_ERR_ARG, "cnn_isa_bf16_peak: NULL argument");
    *flops_per_second = 0;
    const cnn_kernels *k = cnn_kernels_for(isa);
    if (!k) return cnn_fail(CNN_ERR_UNSUPPORTED, "this CPU (or build) cannot run the %s kernels",
                            cnn_isa_name(isa));
    if (!k->bf16_loop)
        return cnn_fail(CNN_ERR_UNSUPPORTED, "the %s kernels have no bf16 instructions",
                        cnn_isa_name(isa));
    *flops_per_second = loop_peak(k->bf16_loop);
    return CNN_OK;
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
