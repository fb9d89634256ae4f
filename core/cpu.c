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
#include <unistd.h>
#ifdef CNN_HAVE_X86_KERNELS
#include <cpuid.h>
#endif

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
    *flops_per_second = loop_peak(k->fma_loop);
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

/* ------------------------------------------------------------------ */
/* Cache sizes                                                        */
/* ------------------------------------------------------------------ */

/* Plausible sizes only: a hypervisor may report zeros or nonsense. */
static size_t plausible(size_t bytes, size_t lo, size_t hi)
{
    return bytes >= lo && bytes <= hi ? bytes : 0;
}

enum { KB = 1024 };
#define L1_LO ((size_t)4 * KB)
#define L1_HI ((size_t)1024 * KB)
#define L2_LO ((size_t)64 * KB)
#define L2_HI ((size_t)256 * 1024 * KB)
#define L3_LO ((size_t)256 * KB)
#define L3_HI ((size_t)4096 * 1024 * KB)

static void keep_level(cnn_cache_info *c, int level, size_t bytes)
{
    if (level == 1 && !c->l1d) c->l1d = plausible(bytes, L1_LO, L1_HI);
    else if (level == 2 && !c->l2) c->l2 = plausible(bytes, L2_LO, L2_HI);
    else if (level == 3 && !c->l3) c->l3 = plausible(bytes, L3_LO, L3_HI);
}

#ifdef CNN_HAVE_X86_KERNELS
/* The deterministic cache parameters of CPUID leaf `leaf` (4 on Intel,
 * 0x8000001D on AMD: the same layout): one sub-leaf per cache until the
 * type field is 0.  Data and unified caches only. */
static bool cpuid_caches(unsigned leaf, cnn_cache_info *c)
{
    bool any = false;
    for (unsigned sub = 0; sub < 16; sub++) {
        unsigned a, b, cx, d;
        if (!__get_cpuid_count(leaf, sub, &a, &b, &cx, &d)) return any;
        const unsigned type = a & 0x1f, level = (a >> 5) & 0x7;
        if (type == 0) break;
        if (type != 1 && type != 3) continue; /* 2: instruction cache */
        const size_t ways = ((b >> 22) & 0x3ff) + 1, parts = ((b >> 12) & 0x3ff) + 1;
        const size_t line = (b & 0xfff) + 1, sets = (size_t)cx + 1;
        keep_level(c, (int)level, ways * parts * line * sets);
        any = true;
    }
    return any;
}

static bool caches_from_cpuid(cnn_cache_info *c)
{
    unsigned a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d)) return false;
    /* "AuthenticAMD" / "HygonGenuine" report through 0x8000001D (with the
     * topology extensions), others (Intel, and hypervisors copying it)
     * through leaf 4. */
    const bool amd = (b == 0x68747541u && d == 0x69746e65u && cx == 0x444d4163u) ||
                     (b == 0x6f677948u && d == 0x6e65476eu && cx == 0x656e6975u);
    if (!amd && a >= 4 && cpuid_caches(4, c)) return true;
    unsigned ext = __get_cpuid_max(0x80000000u, NULL);
    if (ext >= 0x8000001Du && __get_cpuid(0x80000001u, &a, &b, &cx, &d) && (cx & (1u << 22)))
        return cpuid_caches(0x8000001Du, c);
    return false;
}
#endif

/* "48K", "1024K", "2M", "32768" (bytes): 0 when not a size. */
static size_t parse_size(const char *s, const char **end)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (e == s) {
        *end = s;
        return 0;
    }
    unsigned long long mul = 1;
    if (*e == 'K' || *e == 'k') mul = 1024, e++;
    else if (*e == 'M' || *e == 'm') mul = 1024 * 1024, e++;
    *end = e;
    return v > (unsigned long long)SIZE_MAX / mul ? 0 : (size_t)(v * mul);
}

#ifdef __linux__
/* /sys/devices/system/cpu/cpu0/cache/indexN/{level,type,size}. */
static bool caches_from_sysfs(cnn_cache_info *c)
{
    bool any = false;
    for (int i = 0; i < 16; i++) {
        char path[96], type[32] = "", size[32] = "";
        int level = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f) break;
        if (fscanf(f, "%d", &level) != 1) level = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if ((f = fopen(path, "r"))) {
            if (!fgets(type, sizeof type, f)) type[0] = '\0';
            fclose(f);
        }
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if ((f = fopen(path, "r"))) {
            if (!fgets(size, sizeof size, f)) size[0] = '\0';
            fclose(f);
        }
        if (strncmp(type, "Data", 4) != 0 && strncmp(type, "Unified", 7) != 0) continue;
        const char *end;
        const size_t bytes = parse_size(size, &end);
        if (bytes) {
            keep_level(c, level, bytes);
            any = true;
        }
    }
    return any;
}
#endif

static bool caches_from_sysconf(cnn_cache_info *c)
{
    bool any = false;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && \
    defined(_SC_LEVEL3_CACHE_SIZE)
    const int names[3] = {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE};
    for (int i = 0; i < 3; i++) {
        const long v = sysconf(names[i]);
        if (v > 0) {
            keep_level(c, i + 1, (size_t)v);
            any = true;
        }
    }
#else
    (void)c;
#endif
    return any;
}

/* $CATDOG_CACHE: "l1d=32K,l2=2M,l3=32M", any subset, any order. */
static bool caches_from_env(cnn_cache_info *c)
{
    const char *s = getenv("CATDOG_CACHE");
    bool any = false;
    while (s && *s) {
        int level = strncmp(s, "l1d=", 4) == 0 ? 1 : strncmp(s, "l2=", 3) == 0 ? 2
                  : strncmp(s, "l3=", 3) == 0 ? 3 : 0;
        if (!level) break;
        const char *end;
        const size_t bytes = parse_size(strchr(s, '=') + 1, &end);
        const size_t ok = level == 1 ? plausible(bytes, L1_LO, L1_HI)
                        : level == 2 ? plausible(bytes, L2_LO, L2_HI)
                                     : plausible(bytes, L3_LO, L3_HI);
        if (!ok || (*end && *end != ',')) break;
        if (level == 1) c->l1d = ok;
        else if (level == 2) c->l2 = ok;
        else c->l3 = ok;
        any = true;
        s = *end ? end + 1 : end;
    }
    return any;
}

cnn_status cnn_cpu_caches(cnn_cache_info *out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_cpu_caches: NULL argument");
    cnn_cache_info c = {0};
    const char *from = NULL;
#ifdef CNN_HAVE_X86_KERNELS
    if (caches_from_cpuid(&c) && c.l1d && c.l2) from = "cpuid";
#endif
#ifdef __linux__
    if ((!c.l1d || !c.l2) && caches_from_sysfs(&c) && c.l1d && c.l2) from = "sysfs";
#endif
    if ((!c.l1d || !c.l2) && caches_from_sysconf(&c) && c.l1d && c.l2) from = "sysconf";
    if (!c.l1d || !c.l2) {
        if (!c.l1d) c.l1d = (size_t)32 * KB;
        if (!c.l2) c.l2 = (size_t)512 * KB;
        snprintf(c.source, sizeof c.source, "%s%s", from ? from : "assumed",
                 from ? ", partly assumed" : "");
    } else {
        snprintf(c.source, sizeof c.source, "%s", from);
    }
    if (caches_from_env(&c)) snprintf(c.source, sizeof c.source, "CATDOG_CACHE");
    *out = c;
    return CNN_OK;
}
