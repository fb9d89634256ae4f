/* train_checkpoint.c - the trainer's checkpoints: everything a resumed
 * run needs to continue with the same bytes as an uninterrupted one (the
 * options, the architecture, the position, the parameters and the
 * optimizer moments), hashed against damage and written atomically. */
#include "train_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* File: "CATDOGCK", u32 LE version, u32 LE JSON length, the JSON (options,
 * architecture, position), then params, moment 1, moment 2 as f32 in the
 * byte order the JSON names, then a u64 LE FNV-1a hash of all before. */
static const char CKPT_MAGIC[8] = {'C', 'A', 'T', 'D', 'O', 'G', 'C', 'K'};
enum { CKPT_VERSION = 1 };

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static int host_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* The recipe's fields, in the order of cnn_recipe and cnn_augment_v2. */
#define RECIPE_FIELDS(X)                                                      \
    X(mixup_alpha) X(cutmix_alpha) X(label_smoothing) X(ema_decay)
#define V2_FIELDS(X)                                                          \
    X(scale_min) X(scale_max) X(ratio_max) X(brightness) X(contrast)          \
    X(saturation) X(hue) X(blur_p) X(blur_sigma) X(noise_p) X(noise_std)      \
    X(erase_p) X(erase_area)

static cJSON *recipe_json(const cnn_recipe *r)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
#define PUT(f) cJSON_AddNumberToObject(j, #f, r->f);
    RECIPE_FIELDS(PUT)
#undef PUT
    cJSON_AddBoolToObject(j, "keep_best", r->keep_best != 0);
    if (r->calib > 0) cJSON_AddNumberToObject(j, "calib", r->calib);
    if (r->mix_prob > 0.0f) cJSON_AddNumberToObject(j, "mix_prob", r->mix_prob);
    if (r->augment_v2) {
        cJSON *a = cJSON_AddObjectToObject(j, "augment_v2");
        if (a) {
#define PUT(f) cJSON_AddNumberToObject(a, #f, r->v2.f);
            V2_FIELDS(PUT)
#undef PUT
            cJSON_AddBoolToObject(a, "hflip", r->v2.hflip != 0);
        }
    }
    return j;
}

cJSON *cnn_trainer_options_json(const cnn_trainer *t)
{
    const cnn_train_options *o = &t->opt;
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "arch", t->arch);
    /* Only for a run that started from a model file (--init), so that
     * files made without it keep their bytes. */
    if (t->init) cJSON_AddStringToObject(j, "init", t->init);
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "threads", t->threads);
    cJSON_AddStringToObject(j, "optimizer", o->optimizer == CNN_OPT_ADAM ? "adam" : "sgd");
    cJSON_AddNumberToObject(j, "lr", o->lr);
    cJSON_AddNumberToObject(j, "momentum", o->momentum);
    cJSON_AddNumberToObject(j, "beta2", o->beta2);
    cJSON_AddNumberToObject(j, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(j, "warmup_epochs", o->warmup_epochs);
    cJSON_AddNumberToObject(j, "final_lr_fraction", o->final_lr_fraction);
    cJSON_AddNumberToObject(j, "bn_momentum", o->bn_momentum);
    cJSON *a = cJSON_AddObjectToObject(j, "augment");
    if (a) {
        cJSON_AddNumberToObject(a, "rotation_deg", o->augment.rotation_deg);
        cJSON_AddNumberToObject(a, "shift", o->augment.shift);
        cJSON_AddNumberToObject(a, "shear", o->augment.shear);
        cJSON_AddNumberToObject(a, "zoom", o->augment.zoom);
        cJSON_AddBoolToObject(a, "hflip", o->augment.hflip != 0);
    }
    /* Only with the recipe on, so that files made without it keep their
     * bytes. */
    if (cnn_recipe_active(&o->recipe)) cJSON_AddItemToObject(j, "recipe", recipe_json(&o->recipe));
    /* Likewise only when not f32 (resume keeps it). */
    if (o->precision != CNN_PRECISION_F32)
        cJSON_AddStringToObject(j, "precision", cnn_precision_name(o->precision));
    return j;
}

cnn_status cnn_trainer_save_checkpoint(const cnn_trainer *t, const char *path)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *o = cnn_trainer_options_json(t);
    if (!j || !o) {
        cJSON_Delete(j);
        cJSON_Delete(o);
        return cnn_fail(CNN_ERR_NOMEM, "checkpoint %s: out of memory", path);
    }
    char step[32];
    snprintf(step, sizeof step, "%" PRIu64, t->step);
    cJSON_AddItemToObject(j, "options", o);
    cJSON_AddStringToObject(j, "byte_order", "little");
    cJSON_AddNumberToObject(j, "n_params", (double)t->m->n_params);
    cJSON_AddNumberToObject(j, "epoch", t->epoch);
    cJSON_AddNumberToObject(j, "batch_pos", t->batch_pos);
    cJSON_AddStringToObject(j, "step", step);
    cJSON_AddNumberToObject(j, "loss_sum", t->loss_sum);
    cJSON_AddNumberToObject(j, "loss_count", (double)t->loss_count);
    if (t->best_epoch >= 0 && t->opt.recipe.keep_best) {
        cJSON_AddNumberToObject(j, "best_epoch", t->best_epoch);
        cJSON_AddNumberToObject(j, "best_logloss", t->best_logloss);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return cnn_fail(CNN_ERR_NOMEM, "checkpoint %s: out of memory", path);

    uint8_t head[16];
    memcpy(head, CKPT_MAGIC, 8);
    put_u32(head + 8, CKPT_VERSION);
    size_t tlen = strlen(text);
    put_u32(head + 12, (uint32_t)tlen);
    size_t pbytes = t->m->n_params * sizeof(float);
    uint64_t h = 0xCBF29CE484222325ull;
    h = fnv1a(h, head, sizeof head);
    h = fnv1a(h, text, tlen);
    h = fnv1a(h, t->m->params, pbytes);
    h = fnv1a(h, t->mom1, pbytes);
    h = fnv1a(h, t->mom2, pbytes);
    /* With the moving average on, it follows the moments. */
    if (t->ema) h = fnv1a(h, t->ema, pbytes);
    uint8_t tail[8];
    for (int i = 0; i < 8; i++) tail[i] = (uint8_t)(h >> (8 * i));
    const void *parts[] = {head, text, t->m->params, t->mom1, t->mom2,
                           t->ema ? (const void *)t->ema : tail, tail};
    const size_t sizes[] = {sizeof head, tlen, pbytes, pbytes, pbytes,
                            t->ema ? pbytes : sizeof tail, sizeof tail};
    cnn_status s = cnn_write_file_atomic(path, parts, sizes, t->ema ? 7 : 6);
    free(text);
    if (s) return cnn_fail_prefix(s, "checkpoint %s", path);
    return CNN_OK;
}

static double json_number(const cJSON *o, const char *key, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        *ok = 0;
        return 0.0;
    }
    return v->valuedouble;
}

static uint64_t json_u64_string(const cJSON *o, const char *key, int *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) {
        *ok = 0;
        return 0;
    }
    char *end;
    unsigned long long x = strtoull(v->valuestring, &end, 10);
    if (*end || end == v->valuestring) *ok = 0;
    return (uint64_t)x;
}

static void parse_recipe(const cJSON *j, cnn_recipe *r, int *ok)
{
#define GET(f) r->f = (float)json_number(j, #f, ok);
    RECIPE_FIELDS(GET)
#undef GET
    r->keep_best = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "keep_best"));
    const cJSON *mp = cJSON_GetObjectItemCaseSensitive(j, "mix_prob");
    if (mp) {
        if (!cJSON_IsNumber(mp) || !(mp->valuedouble > 0.0 && mp->valuedouble <= 1.0)) *ok = 0;
        else r->mix_prob = (float)mp->valuedouble;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "calib");
    if (c) {
        const double v = cJSON_IsNumber(c) ? c->valuedouble : -1.0;
        if (!(v >= 1.0 && v <= (double)(1 << 24) && v == (int)v)) *ok = 0;
        else r->calib = (int)v;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "augment_v2");
    if (!a) return;
    r->augment_v2 = 1;
#define GET(f) r->v2.f = (float)json_number(a, #f, ok);
    V2_FIELDS(GET)
#undef GET
    r->v2.hflip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "hflip"));
}

static cnn_status parse_options(const cJSON *o, cnn_train_options *opt,
                                const char **arch, const char **init)
{
    int ok = 1;
    *opt = cnn_train_defaults();
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "arch");
    const cJSON *optz = cJSON_GetObjectItemCaseSensitive(o, "optimizer");
    const cJSON *aug = cJSON_GetObjectItemCaseSensitive(o, "augment");
    if (!cJSON_IsString(a) || !cJSON_IsString(optz) || !cJSON_IsObject(aug))
        return CNN_ERR_FORMAT;
    *arch = a->valuestring;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "init");
    if (in && !cJSON_IsString(in)) return CNN_ERR_FORMAT;
    *init = in ? in->valuestring : NULL;
    opt->epochs = (int)json_number(o, "epochs", &ok);
    opt->batch = (int)json_number(o, "batch", &ok);
    opt->seed = json_u64_string(o, "seed", &ok);
    opt->threads = (int)json_number(o, "threads", &ok);
    opt->optimizer = strcmp(optz->valuestring, "sgd") == 0 ? CNN_OPT_SGD : CNN_OPT_ADAM;
    opt->lr = (float)json_number(o, "lr", &ok);
    opt->momentum = (float)json_number(o, "momentum", &ok);
    opt->beta2 = (float)json_number(o, "beta2", &ok);
    opt->weight_decay = (float)json_number(o, "weight_decay", &ok);
    opt->warmup_epochs = (float)json_number(o, "warmup_epochs", &ok);
    opt->final_lr_fraction = (float)json_number(o, "final_lr_fraction", &ok);
    opt->bn_momentum = (float)json_number(o, "bn_momentum", &ok);
    opt->augment.rotation_deg = (float)json_number(aug, "rotation_deg", &ok);
    opt->augment.shift = (float)json_number(aug, "shift", &ok);
    opt->augment.shear = (float)json_number(aug, "shear", &ok);
    opt->augment.zoom = (float)json_number(aug, "zoom", &ok);
    opt->augment.hflip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(aug, "hflip"));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "recipe");
    if (r) parse_recipe(r, &opt->recipe, &ok);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "precision");
    if (pr && (!cJSON_IsString(pr) || cnn_precision_parse(pr->valuestring, &opt->precision) != CNN_OK))
        ok = 0;
    return ok ? CNN_OK : CNN_ERR_FORMAT;
}

cnn_status cnn_trainer_resume(const char *path, int threads,
                              cnn_model **model, cnn_trainer **out)
{
    *model = NULL;
    *out = NULL;
    if (!host_little_endian())
        return cnn_fail(CNN_ERR_UNSUPPORTED, "checkpoint %s: big-endian hosts are not supported", path);
    void *data;
    size_t size;
    cnn_status s = cnn_read_file(path, (size_t)1 << 36, &data, &size);
    if (s) return cnn_fail_prefix(s, "checkpoint %s", path);
    const uint8_t *p = data;
    cJSON *j = NULL;
    cnn_model *m = NULL;
    cnn_trainer *t = NULL;
    if (size < 24 || memcmp(p, CKPT_MAGIC, 8) != 0) {
        s = cnn_fail(CNN_ERR_FORMAT, "checkpoint %s: not a catdog checkpoint", path);
        goto done;
    }
    if (get_u32(p + 8) != CKPT_VERSION) {
        s = cnn_fail(CNN_ERR_UNSUPPORTED, "checkpoint %s: version %u (this build reads %d)",
                     path, get_u32(p + 8), CKPT_VERSION);
        goto done;
    }
    uint64_t h = fnv1a(0xCBF29CE484222325ull, p, size - 8), stored = 0;
    for (int i = 0; i < 8; i++) stored |= (uint64_t)p[size - 8 + i] << (8 * i);
    size_t tlen = get_u32(p + 12);
    if (h != stored || tlen > size - 24) {
        s = cnn_fail(CNN_ERR_FORMAT, "checkpoint %s: damaged (hash or length mismatch)", path);
        goto done;
    }
    j = cJSON_ParseWithLength((const char *)p + 16, tlen);
    const cJSON *oj = j ? cJSON_GetObjectItemCaseSensitive(j, "options") : NULL;
    cnn_train_options opt;
    const char *arch = NULL, *init = NULL;
    int ok = 1;
    if (!oj || parse_options(oj, &opt, &arch, &init) != CNN_OK) {
        s = cnn_fail(CNN_ERR_FORMAT, "checkpoint %s: bad or missing options", path);
        goto done;
    }
    double n_params = json_number(j, "n_params", &ok);
    int epoch = (int)json_number(j, "epoch", &ok);
    int batch_pos = (int)json_number(j, "batch_pos", &ok);
    uint64_t step = json_u64_string(j, "step", &ok);
    double loss_sum = json_number(j, "loss_sum", &ok);
    double loss_count = json_number(j, "loss_count", &ok);
    if (!ok || epoch < 0 || batch_pos < 0) {
        s = cnn_fail(CNN_ERR_FORMAT, "checkpoint %s: bad position fields", path);
        goto done;
    }
    s = cnn_model_from_spec(arch, &m);
    if (s) {
        cnn_fail_prefix(s, "checkpoint %s: architecture", path);
        goto done;
    }
    size_t pbytes = m->n_params * sizeof(float);
    size_t blocks = opt.recipe.ema_decay > 0.0f ? 4 : 3;
    if ((double)m->n_params != n_params || size - 24 - tlen != blocks * pbytes) {
        s = cnn_fail(CNN_ERR_FORMAT, "checkpoint %s: %zu parameters expected for %s, the file disagrees",
                     path, m->n_params, arch);
        goto done;
    }
    if (threads > 0) opt.threads = threads;
    opt.arch = arch;
    opt.init = init;
    s = cnn_trainer_create(m, &opt, &t);
    if (s) goto done;
    const uint8_t *body = p + 16 + tlen;
    memcpy(m->params, body, pbytes);
    memcpy(t->mom1, body + pbytes, pbytes);
    memcpy(t->mom2, body + 2 * pbytes, pbytes);
    if (t->ema) memcpy(t->ema, body + 3 * pbytes, pbytes);
    if (cJSON_GetObjectItemCaseSensitive(j, "best_epoch")) {
        t->best_epoch = (int)json_number(j, "best_epoch", &ok);
        t->best_logloss = json_number(j, "best_logloss", &ok);
    }
    t->epoch = epoch;
    t->batch_pos = batch_pos;
    t->step = step;
    t->loss_sum = loss_sum;
    t->loss_count = (long)loss_count;
    cnn_trainer_pack_weights(t);
done:
    cJSON_Delete(j);
    free(data);
    if (s) {
        cnn_trainer_free(t);
        cnn_model_free(m);
        return s;
    }
    *model = m;
    *out = t;
    return CNN_OK;
}
