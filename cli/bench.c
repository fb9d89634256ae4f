/* bench.c - catdog bench: how fast the network runs here, per layer and
 * end to end, against this CPU's measured multiply-add peak. */
#include "cli.h"
#include "common.h"
#include "i18n.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage_text[] = N_(
    "usage: catdog bench [--model FILE | --arch NAME|SPEC] [--threads N[,N...]]\n"
    "                    [--batch N] [--runs N] [--isa NAME] [--dense FORMAT]\n"
    "                    [--image JPEG] [--train] [--precision f32|bf16]\n"
    "                    [--filters LAYER]\n"
    "\n"
    "Measures inference speed: this CPU's multiply-add peak (a loop of\n"
    "independent FMAs on each kernel set's widest vectors, one thread),\n"
    "then for each thread count the time of every step of the network at\n"
    "batch 1 (median and minimum over the runs) with each conv's GFLOP/s as\n"
    "a fraction of that peak, the batch-1 latency (median and minimum over\n"
    "the runs, after warm-up), images/s at a larger batch, and memory.\n"
    "The input is the photo given with --image (the dense layers skip the\n"
    "weights of zero inputs, so the time depends a little on the image),\n"
    "else random pixels.  With --image, also the end-to-end time of that\n"
    "photo: in this process step by step (decode at reduced scale, resize,\n"
    "forward), and as a whole 'catdog classify' process.\n"
    "\n"
    "  -m, --model FILE    model file (default: $CATDOG_MODEL or the\n"
    "                      installed model)\n"
    "  -a, --arch NAME     a built-in architecture or JSON spec instead,\n"
    "                      with random weights (seed 1)\n"
    "  -t, --threads LIST  thread counts, comma-separated (default: 1 and\n"
    "                      all cores)\n"
    "  -b, --batch N       batch size for the throughput run (default 32;\n"
    "                      1 skips it)\n"
    "  -r, --runs N        timed batch-1 runs per thread count (default 200)\n"
    "      --isa NAME      kernels: amx, avx512bf16, avx512, avx2 or portable\n"
    "                      (default: the best this CPU runs;\n"
    "                      CATDOG_FORCE_PORTABLE=1 makes it portable)\n"
    "      --precision P   conv and dense layers in f32 (default) or bf16\n"
    "                      (emulated with f32 kernels where the kernels\n"
    "                      have no bf16 instructions)\n"
    "      --dense FORMAT  dense weights in the net: auto (bf16/f16 only\n"
    "                      where exact, the default), f32, bf16 or f16\n"
    "                      (rounded: changes the results slightly)\n"
    "  -i, --image JPEG    also time this photo end to end\n"
    "      --train         measure training instead: --runs steps (default\n"
    "                      10) at --batch on random inputs, per thread\n"
    "                      count, with each layer's forward and backward\n"
    "                      time (conv backward split into the input and\n"
    "                      the weight gradient) and images/s\n"
    "      --filters LAYER measure instead the pictures of every channel of\n"
    "                      the conv layer LAYER, as 'catdog filters' draws\n"
    "                      them (bf16 where the CPU has it, unless\n"
    "                      --precision), per thread count\n"
    "  -h, --help          show this help\n");

enum {
    OPT_ARCH = 1, OPT_THREADS, OPT_BATCH, OPT_RUNS, OPT_ISA, OPT_DENSE, OPT_IMAGE, OPT_TRAIN,
    OPT_PRECISION, OPT_FILTERS
};

/* Besides --model and --help (common.h); --threads takes a list here. */
static const cli_option options[] = {
    {"arch", 'a', true, OPT_ARCH},
    {"threads", 't', true, OPT_THREADS},
    {"batch", 'b', true, OPT_BATCH},
    {"runs", 'r', true, OPT_RUNS},
    {"isa", 0, true, OPT_ISA},
    {"dense", 0, true, OPT_DENSE},
    {"image", 'i', true, OPT_IMAGE},
    {"train", 0, false, OPT_TRAIN},
    {"precision", 0, true, OPT_PRECISION},
    {"filters", 0, true, OPT_FILTERS},
    {NULL, 0, false, 0},
};

enum { MAX_THREAD_COUNTS = 8, WARMUP_RUNS = 20 };

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static const char *wfmt_name(cnn_wfmt f)
{
    return f == CNN_WFMT_BF16 ? "bf16" : f == CNN_WFMT_F16 ? "f16" : "f32";
}

static bool parse_threads(const char *text, int *counts, int *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1024 || *n == MAX_THREAD_COUNTS ||
            (*end && *end != ','))
            return false;
        counts[(*n)++] = v == 0 ? cnn_cpu_count() : (int)v;
        p = *end ? end + 1 : end;
    }
    return *n > 0;
}

static void fill_input(float *x, size_t n)
{
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)(s >> 40) / (float)(1u << 24);
    }
}

/* The batch-1 section for one thread count. */
static int bench_latency(const cnn_model *m, const cnn_net_options *no, int threads, int runs,
                         double peak, const float *input)
{
    cnn_net *net = NULL;
    if (cnn_net_create_opts(m, 1, no, &net) != CNN_OK || cnn_net_set_threads(net, threads) != CNN_OK) {
        cli_error(_("cannot plan the network: %s"), cnn_last_error());
        cnn_net_free(net);
        return CLI_FAILED;
    }
    const int ns = cnn_net_step_count(net);
    double *steps = malloc(sizeof(double) * (size_t)ns * (size_t)runs);
    double *total = malloc(sizeof(double) * (size_t)runs);
    double *col = malloc(sizeof(double) * (size_t)runs);
    if (!steps || !total || !col) {
        cli_error("%s", _("out of memory"));
        free(steps), free(total), free(col);
        cnn_net_free(net);
        return CLI_FAILED;
    }
    float logit;
    for (int r = 0; r < WARMUP_RUNS; r++) cnn_net_forward(net, input, 1, &logit);
    /* Plain runs for the latency, then timed-step runs for the table:
     * the step timer's clock reads are not part of the latency. */
    for (int r = 0; r < runs; r++) {
        double t = cnn_clock_seconds();
        cnn_net_forward(net, input, 1, &logit);
        total[r] = cnn_clock_seconds() - t;
    }
    for (int r = 0; r < runs; r++) cnn_net_forward_timed(net, input, 1, &logit, steps + (size_t)r * ns);

    printf("\nbatch 1, %d thread%s, kernels %s (per step: median and minimum over the runs;\n"
           "GFLOP/s and %% of the FMA peak from the minimum):\n",
           threads, threads == 1 ? "" : "s", cnn_isa_name(cnn_net_isa(net)));
    printf("  %-22s %-9s %-13s %8s %8s %8s %8s %7s\n", "step", "kind", "output", "MFLOP",
           "med ms", "min ms", "GFLOP/s", "% peak");
    double sum_conv_flops = 0, sum_conv_time = 0;
    for (int i = 0; i < ns; i++) {
        cnn_step_info info;
        cnn_net_step_info(net, i, &info);
        for (int r = 0; r < runs; r++) col[r] = steps[(size_t)r * ns + i];
        const double med = median(col, runs), t = col[0];
        char shape[48];
        snprintf(shape, sizeof shape, "%dx%dx%d", info.oh, info.ow, info.oc);
        printf("  %-22s %-9s %-13s", info.name, info.kind, shape);
        if (info.flops > 0)
            printf(" %8.1f %8.3f %8.3f %8.1f", info.flops * 1e-6, med * 1e3, t * 1e3,
                   info.flops / t * 1e-9);
        else
            printf(" %8s %8.3f %8.3f %8s", "", med * 1e3, t * 1e3, "");
        if (strcmp(info.kind, "conv") == 0) {
            printf(" %6.0f%%", 100.0 * info.flops / t / (peak * threads));
            sum_conv_flops += info.flops;
            sum_conv_time += t;
        } else if (strcmp(info.kind, "dense") == 0) {
            /* Bytes actually read: rows of zero inputs are skipped. */
            printf("   %s weights %.1f MB, %.0f%% of rows read, %.1f GB/s", wfmt_name(info.wfmt),
                   (double)info.weight_bytes * 1e-6, 100.0 * info.nonzero,
                   (double)info.weight_bytes * info.nonzero / t * 1e-9);
        }
        putchar('\n');
    }
    if (sum_conv_time > 0)
        printf("  all conv layers: %.1f GFLOP/s, %.0f%% of the FMA peak of %d thread%s\n",
               sum_conv_flops / sum_conv_time * 1e-9,
               100.0 * sum_conv_flops / sum_conv_time / (peak * threads), threads,
               threads == 1 ? "" : "s");
    const double med = median(total, runs), lo = total[0]; /* sorted now */
    printf("batch 1 latency, %d thread%s: median %.3f ms, min %.3f ms over %d runs\n", threads,
           threads == 1 ? "" : "s", med * 1e3, lo * 1e3, runs);
    free(steps), free(total), free(col);
    cnn_net_free(net);
    return CLI_OK;
}

static int bench_batch(const cnn_model *m, const cnn_net_options *no, int threads, int batch,
                       const float *one, size_t *net_bytes)
{
    cnn_net *net = NULL;
    const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(sizeof(float) * in_elems * (size_t)batch);
    float *logits = malloc(sizeof(float) * (size_t)batch);
    if (!input || !logits || cnn_net_create_opts(m, batch, no, &net) != CNN_OK ||
        cnn_net_set_threads(net, threads) != CNN_OK) {
        cli_error(_("cannot plan the network for batch %d: %s"), batch,
                  input && logits ? cnn_last_error() : _("out of memory"));
        free(input), free(logits);
        cnn_net_free(net);
        return CLI_FAILED;
    }
    for (int b = 0; b < batch; b++) memcpy(input + b * in_elems, one, sizeof(float) * in_elems);
    enum { RUNS = 5 };
    double t[RUNS];
    cnn_net_forward(net, input, batch, logits);
    for (int r = 0; r < RUNS; r++) {
        double t0 = cnn_clock_seconds();
        cnn_net_forward(net, input, batch, logits);
        t[r] = cnn_clock_seconds() - t0;
    }
    const double med = median(t, RUNS);
    printf("batch %d, %d thread%s: %.1f images/s (%.1f ms per batch, median of %d)\n", batch,
           threads, threads == 1 ? "" : "s", batch / med, med * 1e3, RUNS);
    *net_bytes = cnn_net_bytes(net);
    free(input), free(logits);
    cnn_net_free(net);
    return CLI_OK;
}

/* Wall time of one `catdog classify` process, stdout discarded. */
static double time_classify(const char *exe, const char *model, int threads, const char *image)
{
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    char *argv[] = {(char *)exe, (char *)"classify", (char *)"--model", (char *)model,
                    (char *)"--threads", tbuf, (char *)image, NULL};
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return -1;
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    extern char **environ;
    pid_t pid;
    const double t0 = cnn_clock_seconds();
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    const double t = cnn_clock_seconds() - t0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? t : -1;
}

static int bench_image(const cnn_model *m, const cnn_net_options *no, const char *model_path,
                       double load_seconds, const int *threads, int n_threads, const char *image)
{
    printf("\nend to end, %s:\n", image);
    cnn_net *net = NULL;
    float *input = cli_alloc_input(m);
    double t0 = cnn_clock_seconds();
    if (!input || cnn_net_create_opts(m, 1, no, &net) != CNN_OK) {
        if (input) cli_error(_("cannot plan the network: %s"), cnn_last_error());
        free(input);
        return CLI_FAILED;
    }
    const double t_plan = cnn_clock_seconds() - t0;
    enum { RUNS = 10 };
    double dec[RUNS], pre[RUNS];
    int width = 0, height = 0, full_w = 0, full_h = 0;
    for (int r = 0; r < RUNS; r++) {
        cnn_image img = {0}, full = {0};
        cnn_image_options opt = {0};
        opt.min_width = m->in_w;
        opt.min_height = m->in_h;
        t0 = cnn_clock_seconds();
        cnn_status s = cnn_image_load(image, &opt, &img);
        dec[r] = cnn_clock_seconds() - t0;
        if (s == CNN_OK && r == 0) {
            width = img.width, height = img.height;
            cnn_image_options one = {0};
            if (cnn_image_load(image, &one, &full) == CNN_OK) full_w = full.width, full_h = full.height;
            cnn_image_free(&full);
        }
        t0 = cnn_clock_seconds();
        if (s == CNN_OK)
            s = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels, input);
        pre[r] = cnn_clock_seconds() - t0;
        cnn_image_free(&img);
        if (s != CNN_OK) {
            cli_file_error(image, cnn_last_error());
            free(input);
            cnn_net_free(net);
            return CLI_FAILED;
        }
    }
    printf("  image %dx%d, decoded at %dx%d\n", full_w, full_h, width, height);
    printf("  in this process: model load %.1f ms, plan %.1f ms; per photo: decode %.2f ms, "
           "resize %.2f ms (medians of %d)\n",
           load_seconds * 1e3, t_plan * 1e3, median(dec, RUNS) * 1e3, median(pre, RUNS) * 1e3, RUNS);
    for (int ti = 0; ti < n_threads; ti++) {
        float logit;
        double fw[RUNS];
        cnn_net_set_threads(net, threads[ti]);
        cnn_net_forward(net, input, 1, &logit);
        for (int r = 0; r < RUNS; r++) {
            t0 = cnn_clock_seconds();
            cnn_net_forward(net, input, 1, &logit);
            fw[r] = cnn_clock_seconds() - t0;
        }
        printf("    forward, %d thread%s: %.2f ms; decode + resize + forward %.2f ms\n", threads[ti],
               threads[ti] == 1 ? "" : "s", median(fw, RUNS) * 1e3,
               (median(dec, RUNS) + median(pre, RUNS) + median(fw, RUNS)) * 1e3);
    }
    free(input);
    cnn_net_free(net);

    /* The whole command, as a user runs it: start, load the model, plan,
     * decode, resize, forward, print. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (!model_path || n <= 0) {
        printf("  catdog classify process: not timed (%s)\n",
               model_path ? "cannot find this program's path" : "no model file");
        return CLI_OK;
    }
    exe[n] = '\0';
    for (int ti = 0; ti < n_threads; ti++) {
        double t[RUNS];
        int ok = 1;
        time_classify(exe, model_path, threads[ti], image); /* page cache */
        for (int r = 0; r < RUNS && ok; r++) ok = (t[r] = time_classify(exe, model_path, threads[ti], image)) > 0;
        if (!ok) {
            cli_error(_("catdog classify --model %s %s failed"), model_path, image);
            return CLI_FAILED;
        }
        double lo = t[0];
        for (int r = 1; r < RUNS; r++) lo = t[r] < lo ? t[r] : lo;
        printf("  catdog classify --threads %d (whole process): median %.1f ms, min %.1f ms over %d "
               "runs\n",
               threads[ti], median(t, RUNS) * 1e3, lo * 1e3, RUNS);
    }
    return CLI_OK;
}

typedef struct {
    const char *arch, *image, *filters;
    int threads[MAX_THREAD_COUNTS], n_threads, batch, runs;
    bool train, runs_given, precision_given;
    cnn_net_options no;
} bench_args;

static int bench_option(void *ctx, int id, const char *val)
{
    bench_args *a = ctx;
    switch (id) {
    case CLI_OPERAND: return cli_usage_error("bench", _("unexpected argument '%s'"), val);
    case OPT_ARCH: a->arch = val; break;
    case OPT_THREADS:
        if (!parse_threads(val, a->threads, &a->n_threads))
            return cli_usage_error("bench",
                                   _("--threads takes up to %d counts from 0 to 1024, "
                                     "comma-separated, not '%s'"),
                                   MAX_THREAD_COUNTS, val);
        break;
    case OPT_BATCH: return cli_int_option("bench", "--batch", val, 1, 4096, &a->batch);
    case OPT_RUNS:
        a->runs_given = true;
        return cli_int_option("bench", "--runs", val, 1, 1000000, &a->runs);
    case OPT_TRAIN: a->train = true; break;
    case OPT_ISA: {
        int found = -1;
        for (int i = 0; i < CNN_ISA_COUNT; i++)
            if (strcmp(val, cnn_isa_name((cnn_isa)i)) == 0) found = i;
        if (found < 0)
            return cli_usage_error(
                "bench", _("--isa must be amx, avx512bf16, avx512, avx2 or portable, not '%s'"), val);
        if (!cnn_isa_supported((cnn_isa)found)) {
            cli_error(_("bench: this CPU (or build) cannot run the %s kernels"), val);
            return CLI_FAILED;
        }
        a->no.isa = found;
        break;
    }
    case OPT_DENSE:
        if (strcmp(val, "auto") == 0) a->no.dense = CNN_DENSE_AUTO;
        else if (strcmp(val, "f32") == 0) a->no.dense = CNN_DENSE_F32;
        else if (strcmp(val, "bf16") == 0) a->no.dense = CNN_DENSE_BF16;
        else if (strcmp(val, "f16") == 0) a->no.dense = CNN_DENSE_F16;
        else return cli_usage_error("bench",
                                    _("--dense must be auto, f32, bf16 or f16, not '%s'"), val);
        break;
    case OPT_IMAGE: a->image = val; break;
    case OPT_PRECISION:
        a->precision_given = true;
        return cli_precision_option("bench", val, &a->no.precision);
    case OPT_FILTERS: return cli_name_option("bench", val, _("--filters needs a layer name"), &a->filters);
    default: break;
    }
    return CLI_OK;
}

int cmd_bench(int argc, char **argv)
{
    bench_args a = {.n_threads = 0, .batch = 32, .runs = 200};
    cnn_net_options_init(&a.no);
    cli_parser p;
    cli_parser_init(&p, "bench", argc, argv, options, CLI_COMMON_MODEL | CLI_COMMON_HELP,
                    usage_text);
    const int parsed = cli_parse(&p, bench_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (p.model && a.arch)
        return cli_usage_error("bench", "%s", _("give --model or --arch, not both"));
    if (a.n_threads == 0) {
        a.threads[a.n_threads++] = 1;
        if (cnn_cpu_count() > 1) a.threads[a.n_threads++] = cnn_cpu_count();
    }
    const char *model_path = p.model, *arch = a.arch, *image = a.image;
    const int *threads = a.threads, n_threads = a.n_threads, batch = a.batch, runs = a.runs;
    const cnn_net_options no = a.no;

    cnn_model *m = NULL;
    double t0 = cnn_clock_seconds();
    if (arch) {
        if (cnn_model_from_spec(arch, &m) != CNN_OK || cnn_model_init(m, 1) != CNN_OK) {
            cli_error("--arch %s: %s", arch, cnn_last_error());
            cnn_model_free(m);
            return CLI_FAILED;
        }
    } else {
        if (!model_path) model_path = cli_default_model();
        if (cnn_model_load(model_path, &m) != CNN_OK) {
            cli_file_error(model_path, cnn_last_error());
            return CLI_FAILED;
        }
    }
    const double load_seconds = cnn_clock_seconds() - t0;

    /* The report stays untranslated: tests/bench/compare reads its lines
     * and docs/performance.md quotes them. */
    char cpu[256];
    cnn_cpu_name(cpu, sizeof cpu);
    const cnn_isa isa = no.isa >= 0 ? (cnn_isa)no.isa : cnn_isa_default();
    printf("model %s (%s): %.1f M multiply-adds per image, input %dx%dx%d\n", m->name,
           arch ? "random weights" : model_path, (double)m->macs * 1e-6, m->in_h, m->in_w, m->in_c);
    printf("machine: %s, %d core%s; kernels %s", cpu, cnn_cpu_count(), cnn_cpu_count() == 1 ? "" : "s",
           cnn_isa_name(isa));
    if (getenv("CATDOG_FORCE_PORTABLE") && no.isa < 0 && isa == CNN_ISA_PORTABLE)
        fputs(" (forced by CATDOG_FORCE_PORTABLE)", stdout);
    printf(", precision %s", cnn_precision_name(no.precision));
    if (no.precision == CNN_PRECISION_BF16 && !cnn_isa_has_bf16(isa))
        fputs(" (emulated: no bf16 instructions in these kernels)", stdout);
    cnn_cache_info caches;
    if (cnn_cpu_caches(&caches) == CNN_OK)
        printf("; caches L1d %zu KB, L2 %zu KB, L3 %zu KB (%s)", caches.l1d >> 10, caches.l2 >> 10,
               caches.l3 >> 10, caches.source);
    putchar('\n');
    printf("FMA peak, one thread (measured):");
    double peak = 0;
    for (int i = CNN_ISA_COUNT - 1; i >= 0; i--) {
        double g;
        /* The bf16 sets' FMAs are the avx512 set's: measured once. */
        if (cnn_isa_has_bf16((cnn_isa)i) || cnn_isa_fma_peak((cnn_isa)i, &g) != CNN_OK) continue;
        if (i == (int)isa || (cnn_isa_has_bf16(isa) && i == CNN_ISA_AVX512)) peak = g;
        printf(" %s %.1f GFLOP/s%s", cnn_isa_name((cnn_isa)i), g * 1e-9, i > 0 ? "," : "");
    }
    putchar('\n');
    /* One line per kernel set with bf16 instructions (none: no bf16 unit). */
    for (int i = CNN_ISA_COUNT - 1; i >= 0; i--) {
        double g;
        if (cnn_isa_bf16_peak((cnn_isa)i, &g) != CNN_OK) continue;
        printf("bf16 peak, one thread (measured): %s %.1f GFLOP/s\n", cnn_isa_name((cnn_isa)i),
               g * 1e-9);
    }

    if (a.filters) {
        int status = a.train || image
                         ? cli_usage_error("bench", "%s", _("--filters goes with neither --image nor --train"))
                         : cli_bench_filters(m, arch ? NULL : model_path, a.filters, threads,
                                             n_threads, a.precision_given ? (int)no.precision : -1);
        cnn_model_free(m);
        return status;
    }
    if (a.train) {
        if (image) {
            cnn_model_free(m);
            return cli_usage_error("bench", "%s", _("give --image or --train, not both"));
        }
        int status = CLI_OK;
        for (int ti = 0; ti < n_threads && status == CLI_OK; ti++)
            status = cli_bench_train(m, (int)isa, (int)no.precision, threads[ti], batch,
                                     a.runs_given ? runs : 10, peak);
        cnn_model_free(m);
        return status;
    }

    /* The photo when there is one: the dense layers skip the rows of
     * zero inputs, and how many there are depends on the image. */
    const size_t in_elems = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(sizeof(float) * in_elems);
    if (!input) {
        cli_error("%s", _("out of memory"));
        cnn_model_free(m);
        return CLI_FAILED;
    }
    int status = CLI_OK;
    if (image) {
        float logit;
        cnn_net *net = NULL;
        if (cnn_net_create_opts(m, 1, &no, &net) != CNN_OK) {
            cli_error(_("cannot plan the network: %s"), cnn_last_error());
            status = CLI_FAILED;
        } else {
            status = cli_run_image(m, net, image, input, &logit);
        }
        cnn_net_free(net);
        printf("input: %s\n", image);
    } else {
        fill_input(input, in_elems);
        printf("input: random pixels\n");
    }
    for (int ti = 0; ti < n_threads && status == CLI_OK; ti++)
        status = bench_latency(m, &no, threads[ti], runs, peak, input);

    size_t net_bytes = 0;
    if (status == CLI_OK && batch > 1) {
        putchar('\n');
        for (int ti = 0; ti < n_threads && status == CLI_OK; ti++)
            status = bench_batch(m, &no, threads[ti], batch, input, &net_bytes);
    }
    if (status == CLI_OK && m->in_h >= 15 && m->in_w >= 15) {
        putchar('\n');
        for (int ti = 0; ti < n_threads && status == CLI_OK; ti++)
            status = cli_bench_occlusion(m, &no, threads[ti], input);
    }
    if (status == CLI_OK) {
        putchar('\n');
        status = cli_bench_gradient(m, threads, n_threads, batch, input);
    }
    free(input);
    if (status == CLI_OK && image)
        status = bench_image(m, &no, arch ? NULL : model_path, load_seconds, threads, n_threads, image);
    if (status == CLI_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("\nmemory: model %.1f MB (f32 parameters)", (double)m->n_params * 4e-6);
        if (net_bytes)
            printf(", net for batch %d %.1f MB (packed weights, activations, scratch)", batch,
                   (double)net_bytes * 1e-6);
        printf("; peak resident size of this process %.1f MB\n", (double)ru.ru_maxrss * 1e-3);
    }
    cnn_model_free(m);
    return status;
}
