/* dataset.c - the labelled photo set in memory, decoded once.
 *
 * Training photos are kept as RGB u8, squashed to store_size^2 (the set in
 * ../shared/data/catdog is already 160 x 160, so nothing is resampled
 * there); augmentation samples from them each epoch.  Validation images go
 * through exactly the inference path (cnn_image_load at the model's input
 * size, cnn_preprocess) once, and are kept as input tensors. */
#include "cnn_internal.h"
#include "cnn_train.h"
#include "dataset_internal.h"
#include "pool.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cnn_dataset_free(cnn_dataset *d)
{
    if (!d) return;
    free(d->train_pixels);
    free(d->train_labels);
    cnn_free_aligned(d->val_inputs);
    free(d->val_labels);
    cnn_free_aligned(d->calib_inputs);
    free(d->calib_labels);
    free(d);
}

int cnn_dataset_calib_count(const cnn_dataset *d)
{
    return d ? d->n_calib : 0;
}

int cnn_dataset_count(const cnn_dataset *d, int validation)
{
    return d ? (validation ? d->n_val : d->n_train) : 0;
}

static int is_jpeg_name(const char *name)
{
    size_t n = strlen(name);
    const char *ext[] = {".jpg", ".jpeg"};
    for (int e = 0; e < 2; e++) {
        size_t k = strlen(ext[e]);
        if (n > k) {
            size_t i = 0;
            while (i < k && tolower((unsigned char)name[n - k + i]) == ext[e][i]) i++;
            if (i == k) return 1;
        }
    }
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **names;
    int count, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->count; i++) free(l->names[i]);
    free(l->names);
}

/* JPEG names in DIR, sorted, at most limit (0: all). */
static cnn_status list_dir(const char *dir, int limit, name_list *l)
{
    DIR *dp = opendir(dir);
    if (!dp) return cnn_fail(CNN_ERR_IO, "cannot open folder %s", dir);
    memset(l, 0, sizeof *l);
    struct dirent *e;
    cnn_status s = CNN_OK;
    while ((e = readdir(dp)) != NULL) {
        if (!is_jpeg_name(e->d_name)) continue;
        if (l->count == l->cap) {
            int cap = l->cap ? l->cap * 2 : 256;
            char **nn = realloc(l->names, (size_t)cap * sizeof *nn);
            if (!nn) { s = cnn_fail(CNN_ERR_NOMEM, "listing %s: out of memory", dir); break; }
            l->names = nn;
            l->cap = cap;
        }
        size_t len = strlen(e->d_name);
        char *copy = malloc(len + 1);
        if (!copy) { s = cnn_fail(CNN_ERR_NOMEM, "listing %s: out of memory", dir); break; }
        memcpy(copy, e->d_name, len + 1);
        l->names[l->count++] = copy;
    }
    closedir(dp);
    if (s) {
        names_free(l);
        return s;
    }
    if (l->count) qsort(l->names, (size_t)l->count, sizeof *l->names, compare_names);
    if (limit > 0 && l->count > limit) {
        for (int i = limit; i < l->count; i++) free(l->names[i]);
        l->count = limit;
    }
    return CNN_OK;
}

cnn_status cnn_list_labelled(const char *dir, int limit, char ***paths,
                             uint8_t **labels, int *count)
{
    static const char *const classes[2] = {"cats", "dogs"};
    name_list lists[2] = {{0}, {0}};
    char sub[2][4096];
    cnn_status s = CNN_OK;
    *paths = NULL;
    *labels = NULL;
    *count = 0;
    for (int c = 0; c < 2 && !s; c++) {
        if ((size_t)snprintf(sub[c], sizeof sub[c], "%s/%s", dir, classes[c]) >= sizeof sub[c])
            s = cnn_fail(CNN_ERR_ARG, "folder name too long: %s", dir);
        else
            s = list_dir(sub[c], limit, &lists[c]);
    }
    size_t bytes = 0;
    int n = 0;
    for (int c = 0; c < 2 && !s; c++) {
        if (lists[c].count == 0)
            s = cnn_fail(CNN_ERR_IO, "no .jpg images in %s", sub[c]);
        for (int i = 0; i < lists[c].count; i++)
            bytes += strlen(sub[c]) + 1 + strlen(lists[c].names[i]) + 1;
        n += lists[c].count;
    }
    char **block = NULL;
    uint8_t *lab = NULL;
    if (!s) {
        block = malloc((size_t)n * sizeof *block + bytes);
        lab = malloc((size_t)n);
        if (!block || !lab) s = cnn_fail(CNN_ERR_NOMEM, "listing %s: out of memory", dir);
    }
    if (!s) {
        char *str = (char *)(block + n);
        int k = 0;
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < lists[c].count; i++, k++) {
                int len = sprintf(str, "%s/%s", sub[c], lists[c].names[i]);
                block[k] = str;
                lab[k] = (uint8_t)c;
                str += len + 1;
            }
        *paths = block;
        *labels = lab;
        *count = n;
    } else {
        free(block);
        free(lab);
    }
    names_free(&lists[0]);
    names_free(&lists[1]);
    return s;
}

/* A model whose preprocessing squashes to size x size RGB with scale 1:
 * cnn_preprocess with it resizes a photo exactly as inference would. */
static void storage_model(const cnn_model *m, int size, cnn_model *st)
{
    memcpy(st, m, sizeof *st);
    st->in_h = st->in_w = size;
    st->in_c = 3;
    st->pre.resize = CNN_RESIZE_SQUASH;
    st->pre.scale = 1.0f;
    for (int c = 0; c < 3; c++) {
        st->pre.mean[c] = 0.0f;
        st->pre.std[c] = 1.0f;
    }
}

/* Decodes one training photo into store x store RGB u8. */
static cnn_status load_photo(const char *path, const cnn_model *st, int store,
                             float *tmp, uint8_t *dst)
{
    cnn_image img;
    cnn_image_options io = {.min_width = store, .min_height = store, .max_pixels = 0};
    cnn_status s = cnn_image_load(path, &io, &img);
    if (s) return s;
    if (img.width == store && img.height == store && img.channels == 3) {
        for (int y = 0; y < store; y++)
            memcpy(dst + (size_t)y * store * 3, img.pixels + (size_t)y * img.stride,
                   (size_t)store * 3);
    } else {
        s = cnn_preprocess(st, img.pixels, img.width, img.height, img.stride,
                           img.channels, tmp);
        if (!s)
            for (size_t i = 0; i < (size_t)store * store * 3; i++) {
                float v = tmp[i] + 0.5f;
                dst[i] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
            }
    }
    cnn_image_free(&img);
    return s;
}

/* Decodes one validation image into the model's input tensor. */
static cnn_status load_input(const char *path, const cnn_model *m, float *dst)
{
    cnn_image img;
    cnn_image_options io = {.min_width = m->in_w, .min_height = m->in_h, .max_pixels = 0};
    cnn_status s = cnn_image_load(path, &io, &img);
    if (s) return s;
    s = cnn_preprocess(m, img.pixels, img.width, img.height, img.stride,
                       img.channels, dst);
    cnn_image_free(&img);
    return s;
}

typedef struct {
    char **paths;
    const cnn_model *m, *st;
    int store;
    uint8_t *photos;
    float *inputs;
    size_t in_size;
    unsigned char *failed; /* [n]: whether file i failed */
} decode_job;

static cnn_status decode_one(const decode_job *j, int i, float *tmp)
{
    if (!j->photos) return load_input(j->paths[i], j->m, j->inputs + (size_t)i * j->in_size);
    const size_t tmp_floats = (size_t)j->store * j->store * 3;
    return load_photo(j->paths[i], j->st, j->store, tmp, j->photos + (size_t)i * tmp_floats);
}

static void decode_files(void *ctx, size_t i0, size_t i1)
{
    const decode_job *j = ctx;
    float *tmp = j->photos ? malloc((size_t)j->store * j->store * 3 * sizeof *tmp) : NULL;
    for (size_t i = i0; i < i1; i++)
        j->failed[i] = (j->photos && !tmp) || decode_one(j, (int)i, tmp) != CNN_OK;
    free(tmp);
}

/* Decodes every file of a split on the pool's threads; the first failure
 * (lowest index) is reported with its file name (decoded again on this
 * thread for its message: errors are per thread). */
static cnn_status decode_all(char **paths, int n, const cnn_model *m,
                             const cnn_model *st, int store, cnn_pool *pool,
                             uint8_t *photos, float *inputs, size_t in_size)
{
    decode_job j = {paths, m, st, store, photos, inputs, in_size, NULL};
    if (n <= 0) return CNN_OK;
    j.failed = calloc((size_t)n, 1);
    if (!j.failed) return cnn_fail(CNN_ERR_NOMEM, "data set: out of memory");
    cnn_pool_for(pool, (size_t)n, 16, decode_files, &j);
    int bad = -1;
    for (int i = 0; i < n && bad < 0; i++)
        if (j.failed[i]) bad = i;
    free(j.failed);
    if (bad < 0) return CNN_OK;
    float *tmp = photos ? malloc((size_t)store * store * 3 * sizeof *tmp) : NULL;
    cnn_status s = photos && !tmp ? cnn_fail(CNN_ERR_NOMEM, "out of memory")
                                  : decode_one(&j, bad, tmp);
    free(tmp);
    if (s == CNN_OK) /* it decoded this time: say so rather than nothing */
        return cnn_fail(CNN_ERR_FORMAT, "%s: failed to decode once, then decoded", paths[bad]);
    char message[512];
    snprintf(message, sizeof message, "%s", cnn_last_error());
    return cnn_fail(CNN_ERR_FORMAT, "%s: %s", paths[bad], message);
}

/* Moves `per_class` photos of each class of the training list (paths,
 * labels, *count; cats first, then dogs, each in name order) to the
 * calibration list: evenly spaced, the middle one of each run of
 * count / per_class.  The pointers still point into the listing's one
 * allocation. */
static cnn_status split_calibration(char **paths, uint8_t *labels, int *count,
                                    int per_class, char **cal_paths,
                                    uint8_t *cal_labels)
{
    int start[3] = {0, 0, *count};
    while (start[1] < *count && labels[start[1]] == 0) start[1]++;
    for (int c = 0; c < 2; c++)
        if (start[c + 1] - start[c] < 2 * per_class)
            return cnn_fail(CNN_ERR_ARG,
                            "%d %s photos cannot give %d for calibration and keep as "
                            "many for training",
                            start[c + 1] - start[c], c ? "dog" : "cat", per_class);
    int kept = 0, held = 0;
    for (int c = 0; c < 2; c++) {
        const int n = start[c + 1] - start[c];
        int next = 0; /* the next held-out one, 0..per_class */
        for (int i = 0; i < n; i++) {
            const int k = start[c] + i;
            const long pick = next < per_class
                                  ? ((long)next * n + (long)n / 2) / per_class
                                  : -1;
            if (i == pick) {
                cal_paths[held] = paths[k];
                cal_labels[held++] = labels[k];
                next++;
            } else {
                paths[kept] = paths[k];
                labels[kept++] = labels[k];
            }
        }
    }
    *count = kept;
    return CNN_OK;
}

cnn_status cnn_dataset_load(const char *dir, const cnn_model *m,
                            const cnn_dataset_options *opt,
                            cnn_dataset **out)
{
    *out = NULL;
    int store = opt && opt->store_size > 0 ? opt->store_size : 160;
    int limit = opt ? opt->limit : 0;
    int threads = opt ? opt->threads : 0;
    int calib = opt ? opt->calib : 0;
    if (calib < 0 || calib > (1 << 24))
        return cnn_fail(CNN_ERR_ARG, "calibration count %d out of range", calib);
    if (threads <= 0) threads = cnn_cpu_count();
    if (threads > 1024) threads = 1024;
    if (store < 8 || store > 1024)
        return cnn_fail(CNN_ERR_ARG, "store size %d outside 8..1024", store);
    char sub[4096];
    char **paths[2] = {NULL, NULL};
    uint8_t *labels[2] = {NULL, NULL};
    int count[2] = {0, 0};
    const char *split_names[2] = {"train", "validation"};
    cnn_status s = CNN_OK;
    for (int k = 0; k < 2 && !s; k++) {
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", dir, split_names[k]) >= sizeof sub)
            s = cnn_fail(CNN_ERR_ARG, "folder name too long: %s", dir);
        else
            s = cnn_list_labelled(sub, limit, &paths[k], &labels[k], &count[k]);
    }
    char **cal_paths = NULL;
    uint8_t *cal_labels = NULL;
    if (!s && calib > 0) {
        cal_paths = malloc(2 * (size_t)calib * sizeof *cal_paths);
        cal_labels = malloc(2 * (size_t)calib);
        if (!cal_paths || !cal_labels)
            s = cnn_fail(CNN_ERR_NOMEM, "data set: out of memory");
        else
            s = split_calibration(paths[0], labels[0], &count[0], calib, cal_paths,
                                  cal_labels);
    }
    cnn_dataset *d = NULL;
    cnn_model *st = NULL;
    if (!s) {
        d = cnn_alloc(1, sizeof *d);
        st = cnn_alloc(1, sizeof *st);
        if (!d || !st) s = CNN_ERR_NOMEM;
    }
    if (!s) {
        d->store_size = store;
        d->photo_bytes = (size_t)store * store * 3;
        d->in_size = (size_t)m->in_h * m->in_w * m->in_c;
        d->n_train = count[0];
        d->n_val = count[1];
        size_t bytes, floats;
        if (!cnn_mul_size(d->photo_bytes, (size_t)count[0], &bytes) ||
            !cnn_mul_size(d->in_size, (size_t)count[1], &floats))
            s = cnn_fail(CNN_ERR_LIMIT, "data set %s is too large", dir);
        else {
            d->train_pixels = malloc(bytes ? bytes : 1);
            d->val_inputs = cnn_alloc_aligned(floats ? floats : 1, sizeof(float));
            size_t cal_floats = 0;
            if (calib > 0 && cnn_mul_size(d->in_size, 2 * (size_t)calib, &cal_floats)) {
                d->n_calib = 2 * calib;
                d->calib_inputs = cnn_alloc_aligned(cal_floats, sizeof(float));
            }
            if (!d->train_pixels || !d->val_inputs || (calib > 0 && !d->calib_inputs))
                s = cnn_fail(CNN_ERR_NOMEM, "data set %s: out of memory (%zu MB)",
                             dir, (bytes + floats * 4) >> 20);
        }
    }
    cnn_pool *pool = NULL;
    if (!s) s = cnn_pool_create(threads, &pool);
    if (!s) {
        storage_model(m, store, st);
        s = decode_all(paths[0], count[0], m, st, store, pool, d->train_pixels,
                       NULL, 0);
    }
    if (!s)
        s = decode_all(paths[1], count[1], m, st, store, pool, NULL,
                       d->val_inputs, d->in_size);
    if (!s && calib > 0)
        s = decode_all(cal_paths, d->n_calib, m, st, store, pool, NULL,
                       d->calib_inputs, d->in_size);
    cnn_pool_free(pool);
    if (!s) {
        d->calib_labels = cal_labels;
        cal_labels = NULL;
        d->train_labels = labels[0];
        d->val_labels = labels[1];
        labels[0] = labels[1] = NULL;
        *out = d;
        d = NULL;
    }
    free(st);
    free(cal_paths);
    free(cal_labels);
    cnn_dataset_free(d);
    for (int k = 0; k < 2; k++) {
        free(paths[k]);
        free(labels[k]);
    }
    return s;
}

cnn_status cnn_dataset_from_memory(const cnn_model *m, int store_size,
                                   const uint8_t *train_pixels,
                                   const uint8_t *train_labels, int n_train,
                                   const float *val_inputs,
                                   const uint8_t *val_labels, int n_val,
                                   cnn_dataset **out)
{
    *out = NULL;
    if (!m || store_size < 1 || n_train < 0 || n_val < 0 ||
        (n_train && (!train_pixels || !train_labels)) ||
        (n_val && (!val_inputs || !val_labels)))
        return cnn_fail(CNN_ERR_ARG, "dataset_from_memory: bad arguments");
    cnn_dataset *d = cnn_alloc(1, sizeof *d);
    if (!d) return CNN_ERR_NOMEM;
    d->store_size = store_size;
    d->photo_bytes = (size_t)store_size * store_size * 3;
    d->in_size = (size_t)m->in_h * m->in_w * m->in_c;
    d->n_train = n_train;
    d->n_val = n_val;
    d->train_pixels = malloc(d->photo_bytes * n_train + 1);
    d->train_labels = malloc((size_t)n_train + 1);
    d->val_inputs = cnn_alloc_aligned(d->in_size * n_val + 1, sizeof(float));
    d->val_labels = malloc((size_t)n_val + 1);
    if (!d->train_pixels || !d->train_labels || !d->val_inputs || !d->val_labels) {
        cnn_dataset_free(d);
        return cnn_fail(CNN_ERR_NOMEM, "dataset_from_memory: out of memory");
    }
    if (n_train) {
        memcpy(d->train_pixels, train_pixels, d->photo_bytes * n_train);
        memcpy(d->train_labels, train_labels, (size_t)n_train);
    }
    if (n_val) {
        memcpy(d->val_inputs, val_inputs, d->in_size * n_val * sizeof(float));
        memcpy(d->val_labels, val_labels, (size_t)n_val);
    }
    *out = d;
    return CNN_OK;
}
