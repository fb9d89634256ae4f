/* train.c - catdog train: train a model on DIR/train, report on
 * DIR/validation after every epoch, checkpoint, resume. */
#include "cli.h"
#include "cnn_train.h"
#include "common.h"
#include "i18n.h"

#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] = N_(
    "usage: catdog train --data DIR --out FILE [--arch NAME|SPEC] [--epochs N]\n"
    "                    [--batch N] [--seed N] [--threads N] [--resume CHECKPOINT]\n"
    "                    [--init MODEL] [--input N] [--precision f32|bf16]\n"
    "\n"
    "Trains a model on DIR/train/{cats,dogs} and reports accuracy and log\n"
    "loss on DIR/validation/{cats,dogs} after every epoch.  Every photo is\n"
    "decoded once into memory; augmentation happens on the fly.  The same\n"
    "seed and thread count give bit-identical weights.\n"
    "\n"
    "  --data DIR          data set folder (train/ and validation/)\n"
    "  --out FILE          model written after every epoch (safetensors)\n"
    "  --arch NAME|SPEC    built-in architecture (catdog-v1, catdog-v2,\n"
    "                      article) or a JSON model description (default\n"
    "                      catdog-v1)\n"
    "  --epochs N          default 20\n"
    "  --batch N           images per step (default 32)\n"
    "  --seed N            default 1\n"
    "  --threads N         0: all cores (default)\n"
    "  --resume FILE       continue from a checkpoint (its options win)\n"
    "  --init MODEL        start from the weights of a model file (its\n"
    "                      architecture; a new optimizer and schedule): a\n"
    "                      second stage, e.g. fine-tuning with a lighter\n"
    "                      recipe\n"
    "  --input N           train at N x N pixels instead of the architecture's\n"
    "                      input (with --init: the same weights at another\n"
    "                      resolution; the model must end in global pooling)\n"
    "  --checkpoint FILE   where to checkpoint (default OUT.ckpt)\n"
    "  --optimizer adam|sgd   default adam\n"
    "  --lr X              peak learning rate (default 0.001 Adam, 0.05 SGD)\n"
    "  --weight-decay X    decoupled (AdamW) for adam, default 0.01; L2 for\n"
    "                      sgd, default 0.0005\n"
    "  --augment default|article|v2|none   augmentation (v2: crops, colour,\n"
    "                      blur, noise, erasing; see weights/README.md, Recipe)\n"
    "  --erase P           v2: probability of random erasing (default 0.25)\n"
    "  --crop-scale MIN    v2: smallest crop area fraction (default 0.35)\n"
    "  --crop-ratio MAX    v2: crop aspect ratios from 1/MAX to MAX (default 4/3)\n"
    "  --mixup A           mixup, weight ~ Beta(A, A) per batch (default off)\n"
    "  --cutmix A          cutmix, weight ~ Beta(A, A) per batch (default off)\n"
    "  --mix-prob P        share of batches mixed at all (default 1)\n"
    "  --label-smoothing E targets y (1 - E) + E/2 (default 0)\n"
    "  --ema DECAY         evaluate and save a moving average of the weights\n"
    "                      (e.g. 0.999; default off)\n"
    "  --warmup EPOCHS     linear warm-up before the cosine decay (default 1)\n"
    "  --keep-best         OUT holds the epoch of lowest validation log loss\n"
    "  --calib N           hold N training photos per class out of training;\n"
    "                      after every epoch the temperature is fitted on them\n"
    "                      and saved in OUT (default 0: temperature 1)\n"
    "  --dtype f16|bf16|f32   storage of --out (default f16)\n"
    "  --precision f32|bf16   arithmetic of the conv and dense layers (default\n"
    "                      f32; bf16: bf16 inputs and weights, f32 sums,\n"
    "                      master weights and optimizer, and f32 convs with\n"
    "                      fewer than 4 input or output channels; emulated\n"
    "                      where the CPU has no bf16 instructions)\n"
    "  --limit N           at most N images per class and split (tests)\n"
    "  --stop-after N      stop as on Ctrl-C after N steps (tests)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Ctrl-C stops after the current batch and writes the checkpoint; the\n"
    "exit status is then 130.\n");

enum {
    OPT_DATA = 1, OPT_OUT, OPT_ARCH, OPT_EPOCHS, OPT_BATCH, OPT_SEED,
    OPT_THREADS, OPT_RESUME, OPT_INIT, OPT_CHECKPOINT, OPT_OPTIMIZER, OPT_LR, OPT_WD,
    OPT_AUGMENT, OPT_DTYPE, OPT_LIMIT, OPT_STOP, OPT_ERASE, OPT_MIXUP,
    OPT_CUTMIX, OPT_SMOOTH, OPT_EMA, OPT_WARMUP, OPT_KEEP_BEST, OPT_PRECISION,
    OPT_CALIB, OPT_CROP_SCALE, OPT_CROP_RATIO, OPT_MIX_PROB, OPT_INPUT
};

/* Besides --help (common.h). */
static const cli_option options[] = {
    {"data", 0, true, OPT_DATA},
    {"out", 'o', true, OPT_OUT},
    {"arch", 0, true, OPT_ARCH},
    {"epochs", 0, true, OPT_EPOCHS},
    {"batch", 0, true, OPT_BATCH},
    {"seed", 0, true, OPT_SEED},
    {"threads", 't', true, OPT_THREADS},
    {"resume", 0, true, OPT_RESUME},
    {"init", 0, true, OPT_INIT},
    {"checkpoint", 0, true, OPT_CHECKPOINT},
    {"optimizer", 0, true, OPT_OPTIMIZER},
    {"lr", 0, true, OPT_LR},
    {"weight-decay", 0, true, OPT_WD},
    {"augment", 0, true, OPT_AUGMENT},
    {"dtype", 0, true, OPT_DTYPE},
    {"limit", 0, true, OPT_LIMIT},
    {"stop-after", 0, true, OPT_STOP},
    {"erase", 0, true, OPT_ERASE},
    {"mixup", 0, true, OPT_MIXUP},
    {"cutmix", 0, true, OPT_CUTMIX},
    {"label-smoothing", 0, true, OPT_SMOOTH},
    {"ema", 0, true, OPT_EMA},
    {"warmup", 0, true, OPT_WARMUP},
    {"keep-best", 0, false, OPT_KEEP_BEST},
    {"precision", 0, true, OPT_PRECISION},
    {"calib", 0, true, OPT_CALIB},
    {"crop-scale", 0, true, OPT_CROP_SCALE},
    {"crop-ratio", 0, true, OPT_CROP_RATIO},
    {"mix-prob", 0, true, OPT_MIX_PROB},
    {"input", 0, true, OPT_INPUT},
    {NULL, 0, false, 0},
};

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void format_duration(double s, char *buf, size_t size)
{
    long t = s > 0 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

/* user: an int, non-zero when the recipe is on (then the epoch line also
 * gives the calibration error and the best epoch). */
static void progress(const cnn_train_progress *p, void *user)
{
    const int recipe = *(const int *)user;
    char eta[32], elapsed[32];
    format_duration(p->eta_s, eta, sizeof eta);
    format_duration(p->elapsed_s, elapsed, sizeof elapsed);
    if (p->val_n > 0 && recipe && p->val_ece_raw >= 0.0)
        fprintf(stderr,
                /* TRANSLATORS: ECE is the expected calibration error, T the temperature */
                _("epoch %d/%d done: train loss %.4f, validation accuracy %.4f "
                  "logloss %.4f ECE %.4f (T %.3f; at T 1: ECE %.4f) (n %d), best epoch %d, "
                  "elapsed %s, eta %s\n"),
                p->epoch + 1, p->epochs, p->loss, p->val_accuracy, p->val_logloss,
                p->val_ece, p->temperature, p->val_ece_raw, p->val_n, p->best_epoch + 1,
                elapsed, eta);
    else if (p->val_n > 0 && recipe)
        fprintf(stderr,
                /* TRANSLATORS: ECE is the expected calibration error */
                _("epoch %d/%d done: train loss %.4f, validation accuracy %.4f "
                  "logloss %.4f ECE %.4f (n %d), best epoch %d, elapsed %s, eta %s\n"),
                p->epoch + 1, p->epochs, p->loss, p->val_accuracy,
                p->val_logloss, p->val_ece, p->val_n, p->best_epoch + 1, elapsed, eta);
    else if (p->val_n > 0)
        fprintf(stderr,
                _("epoch %d/%d done: train loss %.4f, validation accuracy %.4f "
                  "logloss %.4f (n %d), elapsed %s, eta %s\n"),
                p->epoch + 1, p->epochs, p->loss, p->val_accuracy,
                p->val_logloss, p->val_n, elapsed, eta);
    else
        fprintf(stderr,
                _("epoch %d/%d batch %d/%d  %.1f images/s  loss %.4f  lr %.2e  eta %s\n"),
                p->epoch + 1, p->epochs, p->batch, p->batches, p->images_per_s,
                p->loss, p->lr, eta);
    fflush(stderr);
}

/* Seconds between progress lines: 5, or $CATDOG_PROGRESS_S (0: after
 * every step, which tests/bench/compare uses to time single steps). */
static double progress_interval(void)
{
    const char *v = getenv("CATDOG_PROGRESS_S");
    if (!v || !*v) return 5.0;
    char *end = NULL;
    const double s = strtod(v, &end);
    return *end == '\0' && s >= 0.0 && s <= 3600.0 ? s : 5.0;
}

/* Replaces *m by its copy at n x n pixels (cnn_model_resize_input). */
static cnn_status resize_input(cnn_model **m, int n)
{
    cnn_model *r;
    const cnn_status s = cnn_model_resize_input(*m, n, n, &r);
    if (s) return s;
    cnn_model_free(*m);
    *m = r;
    return CNN_OK;
}

static bool parse_float(const char *name, const char *text, float lo,
                        float hi, float *out)
{
    char *end;
    /* The bounds are floats: compare the float the value becomes, so that
     * "1e-7" passes a bound of 1e-7f (which is a little above 1e-7). */
    const double d = strtod(text, &end);
    const float v = d >= -FLT_MAX && d <= FLT_MAX ? (float)d : NAN;
    if (end == text || *end || !(v >= lo && v <= hi)) {
        cli_usage_error("train", _("--%s wants a number in [%g, %g], not \"%s\""),
                        name, (double)lo, (double)hi, text);
        return false;
    }
    *out = v;
    return true;
}

typedef struct {
    const char *data, *out, *arch, *resume, *init, *checkpoint;
    cnn_train_options opt;
    bool lr_given, wd_given, epochs_given, erase_given, crop_scale_given, crop_ratio_given;
    float erase, crop_scale, crop_ratio;
    int limit, stop_after, epochs, input; /* input: 0 = the architecture's */
    cnn_dtype dtype;
} train_args;

static int train_option(void *ctx, int id, const char *v)
{
    train_args *a = ctx;
    int seed;
    switch (id) {
    case CLI_OPERAND: return cli_usage_error("train", _("unexpected argument \"%s\""), v);
    case OPT_DATA: a->data = v; break;
    case OPT_OUT: a->out = v; break;
    case OPT_ARCH: a->arch = v; break;
    case OPT_RESUME: a->resume = v; break;
    case OPT_INIT: a->init = v; break;
    case OPT_CHECKPOINT: a->checkpoint = v; break;
    case OPT_EPOCHS:
        if (!cli_parse_int("train", "epochs", v, 1, 100000, &a->epochs)) return CLI_USAGE;
        a->epochs_given = true;
        break;
    case OPT_BATCH: return cli_int_option("train", "batch", v, 1, 4096, &a->opt.batch);
    case OPT_SEED:
        if (!cli_parse_int("train", "seed", v, 0, 2147483647, &seed)) return CLI_USAGE;
        a->opt.seed = (uint64_t)seed;
        break;
    case OPT_THREADS: return cli_int_option("train", "threads", v, 0, 256, &a->opt.threads);
    case OPT_LIMIT: return cli_int_option("train", "limit", v, 1, 1 << 30, &a->limit);
    case OPT_STOP: return cli_int_option("train", "stop-after", v, 1, 1 << 30, &a->stop_after);
    case OPT_INPUT: return cli_int_option("train", "input", v, 16, CNN_MAX_DIM, &a->input);
    case OPT_OPTIMIZER:
        if (strcmp(v, "adam") == 0) a->opt.optimizer = CNN_OPT_ADAM;
        else if (strcmp(v, "sgd") == 0) a->opt.optimizer = CNN_OPT_SGD;
        else return cli_usage_error("train", _("--optimizer is adam or sgd, not \"%s\""), v);
        break;
    case OPT_LR:
        if (!parse_float("lr", v, 1e-7f, 10.0f, &a->opt.lr)) return CLI_USAGE;
        a->lr_given = true;
        break;
    case OPT_WD:
        if (!parse_float("weight-decay", v, 0.0f, 1.0f, &a->opt.weight_decay)) return CLI_USAGE;
        a->wd_given = true;
        break;
    case OPT_AUGMENT:
        a->opt.recipe.augment_v2 = 0;
        if (strcmp(v, "article") == 0) a->opt.augment = cnn_augment_article();
        else if (strcmp(v, "none") == 0) a->opt.augment = (cnn_augment){0, 0, 0, 0, 0};
        else if (strcmp(v, "v2") == 0) {
            a->opt.recipe.augment_v2 = 1;
            a->opt.recipe.v2 = cnn_augment_v2_defaults();
        } else if (strcmp(v, "default") != 0)
            return cli_usage_error("train",
                                   _("--augment is default, article, v2 or none, not \"%s\""), v);
        break;
    case OPT_ERASE:
        if (!parse_float("erase", v, 0.0f, 1.0f, &a->erase)) return CLI_USAGE;
        a->erase_given = true;
        break;
    case OPT_MIXUP:
        return parse_float("mixup", v, 0.0f, 100.0f, &a->opt.recipe.mixup_alpha) ? CLI_OK : CLI_USAGE;
    case OPT_CUTMIX:
        return parse_float("cutmix", v, 0.0f, 100.0f, &a->opt.recipe.cutmix_alpha) ? CLI_OK : CLI_USAGE;
    case OPT_SMOOTH:
        return parse_float("label-smoothing", v, 0.0f, 0.49f, &a->opt.recipe.label_smoothing)
                   ? CLI_OK : CLI_USAGE;
    case OPT_EMA:
        return parse_float("ema", v, 0.0f, 0.99999f, &a->opt.recipe.ema_decay) ? CLI_OK : CLI_USAGE;
    case OPT_WARMUP:
        return parse_float("warmup", v, 0.0f, 100000.0f, &a->opt.warmup_epochs) ? CLI_OK : CLI_USAGE;
    case OPT_KEEP_BEST: a->opt.recipe.keep_best = 1; break;
    case OPT_MIX_PROB:
        return parse_float("mix-prob", v, 0.01f, 1.0f, &a->opt.recipe.mix_prob) ? CLI_OK : CLI_USAGE;
    case OPT_CALIB: return cli_int_option("train", "calib", v, 1, 1 << 24, &a->opt.recipe.calib);
    case OPT_CROP_SCALE:
        if (!parse_float("crop-scale", v, 0.01f, 1.0f, &a->crop_scale)) return CLI_USAGE;
        a->crop_scale_given = true;
        break;
    case OPT_CROP_RATIO:
        if (!parse_float("crop-ratio", v, 1.0f, 10.0f, &a->crop_ratio)) return CLI_USAGE;
        a->crop_ratio_given = true;
        break;
    case OPT_PRECISION: return cli_precision_option("train", v, &a->opt.precision);
    case OPT_DTYPE:
        if (strcmp(v, "f16") == 0) a->dtype = CNN_DTYPE_F16;
        else if (strcmp(v, "bf16") == 0) a->dtype = CNN_DTYPE_BF16;
        else if (strcmp(v, "f32") == 0) a->dtype = CNN_DTYPE_F32;
        else return cli_usage_error("train", _("--dtype is f16, bf16 or f32, not \"%s\""), v);
        break;
    default: return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_train(int argc, char **argv)
{
    train_args a = {.opt = cnn_train_defaults(), .dtype = CNN_DTYPE_F16};
    cli_parser p;
    cli_parser_init(&p, "train", argc, argv, options, CLI_COMMON_HELP, usage_text);
    const int parsed = cli_parse(&p, train_option, &a);
    if (parsed != CLI_CONTINUE) return parsed;
    if (!a.data) return cli_usage_error("train", "%s", _("--data DIR is required"));
    if (!a.out) return cli_usage_error("train", "%s", _("--out FILE is required"));
    if (a.erase_given && !a.opt.recipe.augment_v2)
        return cli_usage_error("train", "%s", _("--erase needs --augment v2"));
    if (a.erase_given) a.opt.recipe.v2.erase_p = a.erase;
    if ((a.crop_scale_given || a.crop_ratio_given) && !a.opt.recipe.augment_v2)
        return cli_usage_error("train", "%s", _("--crop-scale and --crop-ratio need --augment v2"));
    if (a.crop_scale_given) a.opt.recipe.v2.scale_min = a.crop_scale;
    if (a.crop_ratio_given) a.opt.recipe.v2.ratio_max = a.crop_ratio;
    if (a.init && a.resume)
        return cli_usage_error("train", "%s", _("--init and --resume exclude each other"));
    if (a.input && a.resume)
        return cli_usage_error("train", "%s",
                               _("--input cannot change on --resume (the checkpoint "
                                 "holds the architecture)"));
    if (a.init && a.arch)
        return cli_usage_error("train", "%s",
                               _("--init takes the architecture from the model file; "
                                 "leave out --arch"));
    if (a.epochs_given) a.opt.epochs = a.epochs;
    if (!a.lr_given && a.opt.optimizer == CNN_OPT_SGD) a.opt.lr = 0.05f;
    if (!a.wd_given && a.opt.optimizer == CNN_OPT_SGD) a.opt.weight_decay = 5e-4f;

    char default_ckpt[4096];
    if (!a.checkpoint) {
        if ((size_t)snprintf(default_ckpt, sizeof default_ckpt, "%s.ckpt", a.out) >=
            sizeof default_ckpt)
            return cli_usage_error("train", "%s", _("--out name too long"));
        a.checkpoint = default_ckpt;
    }

    /* From here on Ctrl-C only asks the loop to stop: one that arrives
     * while the photos are decoded stops training before its first step,
     * with a checkpoint. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    cnn_model *m = NULL;
    cnn_trainer *t = NULL;
    cnn_status s;
    if (a.resume) {
        s = cnn_trainer_resume(a.resume, a.opt.threads, &m, &t);
        if (s) {
            cli_error("%s", cnn_last_error());
            return CLI_FAILED;
        }
        if (a.epochs_given && a.epochs != cnn_trainer_options(t)->epochs) {
            cli_error(_("%s was made with --epochs %d; the schedule depends on it, so "
                        "it cannot change on resume"),
                      a.resume, cnn_trainer_options(t)->epochs);
            cnn_trainer_free(t);
            cnn_model_free(m);
            return CLI_FAILED;
        }
    } else if (a.init) {
        /* The file's own description is the architecture a --resume of
         * this run rebuilds; its weights, batch-norm statistics and
         * temperature are where training starts. */
        s = cnn_model_load(a.init, &m);
        if (!s && a.input) s = resize_input(&m, a.input);
        if (!s) {
            /* cnn_model_load requires the description; kept as a check */
            a.opt.arch = m->metadata_json ? m->metadata_json : m->name;
            a.opt.init = a.init;
            s = cnn_trainer_create(m, &a.opt, &t);
        }
        if (s) {
            cli_error("%s", cnn_last_error());
            cnn_model_free(m);
            return CLI_FAILED;
        }
    } else {
        a.opt.arch = a.arch ? a.arch : "catdog-v1";
        s = cnn_model_from_spec(a.opt.arch, &m);
        if (!s && a.input) {
            /* The checkpoint must rebuild this size on --resume: its
             * architecture becomes the rewritten description. */
            s = resize_input(&m, a.input);
            if (!s) a.opt.arch = m->metadata_json;
        }
        if (!s) s = cnn_model_init(m, a.opt.seed);
        if (!s) s = cnn_trainer_create(m, &a.opt, &t);
        if (s) {
            cli_error("%s", cnn_last_error());
            cnn_model_free(m);
            return CLI_FAILED;
        }
    }
    const cnn_train_options *used = cnn_trainer_options(t);
    /* TRANSLATORS: "adam" or "sgd" is the optimizer's name (--optimizer) */
    fprintf(stderr, _("model %s: %zu parameters, %.1f MMAC per image, input %dx%d; "
                      "%s, lr %g, batch %d, %d epochs, seed %llu, %d threads\n"),
            m->name, m->n_params, (double)m->macs / 1e6, m->in_w, m->in_h,
            used->optimizer == CNN_OPT_ADAM ? "adam" : "sgd", (double)used->lr,
            used->batch, used->epochs, (unsigned long long)used->seed, used->threads);
    const cnn_isa isa = cnn_isa_default();
    if (used->precision == CNN_PRECISION_BF16 && !cnn_isa_has_bf16(isa))
        /* TRANSLATORS: %s names the kernel set ("avx512"); bf16 is the number format */
        fprintf(stderr, _("kernels %s, precision bf16 (emulated: no bf16 instructions)\n"),
                cnn_isa_name(isa));
    else
        /* TRANSLATORS: the first %s names the kernel set ("avx512bf16"), the second
           the number format ("f32" or "bf16") */
        fprintf(stderr, _("kernels %s, precision %s\n"), cnn_isa_name(isa),
                cnn_precision_name(used->precision));

    cnn_dataset *d = NULL;
    cnn_dataset_options dopt = {.store_size = 160, .limit = a.limit, .threads = used->threads,
                                .calib = used->recipe.calib};
    fprintf(stderr, _("decoding %s ...\n"), a.data);
    s = cnn_dataset_load(a.data, m, &dopt, &d);
    if (s) {
        cli_error("%s", cnn_last_error());
        cnn_trainer_free(t);
        cnn_model_free(m);
        return CLI_FAILED;
    }
    if (cnn_dataset_calib_count(d) > 0)
        fprintf(stderr, _("%d training, %d calibration (held out) and %d validation images\n"),
                cnn_dataset_count(d, 0), cnn_dataset_calib_count(d), cnn_dataset_count(d, 1));
    else
        fprintf(stderr, _("%d training and %d validation images\n"),
                cnn_dataset_count(d, 0), cnn_dataset_count(d, 1));

    int recipe_on = cnn_recipe_active(&used->recipe);
    cnn_train_run run = {
        .checkpoint = a.checkpoint,
        .out = a.out,
        .out_dtype = a.dtype,
        .progress = progress,
        .progress_user = &recipe_on,
        .progress_interval_s = progress_interval(),
        .stop = &stop_requested,
        .stop_after_steps = a.stop_after,
    };
    s = cnn_trainer_run(t, d, &run);
    int rc = CLI_OK;
    if (s == CNN_ERR_INTERRUPTED) {
        /* TRANSLATORS: the core's "interrupted" message, then the checkpoint */
        cli_error(_("%s; continue with --resume %s"), cnn_last_error(), a.checkpoint);
        rc = 130;
    } else if (s) {
        cli_error("%s", cnn_last_error());
        rc = CLI_FAILED;
    } else {
        fprintf(stderr, _("wrote %s\n"), a.out);
    }
    cnn_dataset_free(d);
    cnn_trainer_free(t);
    cnn_model_free(m);
    return rc;
}
