/* rules.c - the small rules every application of the core follows the
 * same way (the CLI, the plug-in, its dialog, the trainer): the verdict
 * on a probability, which conv layer a name means, and which model file
 * is the default.  Declared in cnn.h. */
#include "layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The verdict                                                         */
/* ------------------------------------------------------------------ */

int cnn_verdict(double p_positive) { return p_positive >= 0.5 ? 1 : 0; }

double cnn_verdict_confidence(double p_positive)
{
    return cnn_verdict(p_positive) ? p_positive : 1.0 - p_positive;
}

/* ------------------------------------------------------------------ */
/* Conv layers by name                                                 */
/* ------------------------------------------------------------------ */

/* The conv layers are the layer types whose output is a tap (layers.h),
 * the same test net.c's taps use, so that the n-th name here is tap n. */

cnn_status cnn_model_conv_names(const cnn_model *m, const char *separator, char **out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "cnn_model_conv_names: NULL argument");
    *out = NULL;
    if (!m || !separator) return cnn_fail(CNN_ERR_ARG, "cnn_model_conv_names: NULL argument");
    /* Names are shorter than CNN_MAX_NAME and there are at most
     * CNN_MAX_LAYERS: no overflow below. */
    const size_t sep = strlen(separator);
    size_t size = 1;
    for (int i = 0; i < m->n_layers; i++)
        if (cnn_layer_has(&m->layers[i], CNN_LOP_TAP))
            size += strnlen(m->layers[i].name, CNN_MAX_NAME) + sep;
    char *text = cnn_alloc(size, 1);
    if (!text) return CNN_ERR_NOMEM;
    size_t used = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (!cnn_layer_has(&m->layers[i], CNN_LOP_TAP)) continue;
        if (used > 0) {
            memcpy(text + used, separator, sep);
            used += sep;
        }
        const size_t n = strnlen(m->layers[i].name, CNN_MAX_NAME);
        memcpy(text + used, m->layers[i].name, n);
        used += n;
    }
    text[used] = '\0';
    *out = text;
    return CNN_OK;
}

cnn_status cnn_model_find_conv(const cnn_model *m, const char *name, int *layer, int *tap)
{
    if (layer) *layer = -1;
    if (tap) *tap = -1;
    if (!m) return cnn_fail(CNN_ERR_ARG, "cnn_model_find_conv: NULL model");
    const int found = name ? cnn_model_find_layer(m, name) : -1;
    int convs = 0, conv_layer = -1, conv_tap = -1;
    for (int i = 0; i < m->n_layers; i++) {
        if (!cnn_layer_has(&m->layers[i], CNN_LOP_TAP)) continue;
        if (!name || i == found) conv_layer = i, conv_tap = convs;
        convs++;
    }
    if (conv_layer >= 0) {
        if (layer) *layer = conv_layer;
        if (tap) *tap = conv_tap;
        return CNN_OK;
    }
    if (layer) *layer = found;
    if (convs == 0) return cnn_fail(CNN_ERR_ARG, "the network has no conv layer");
    char *list = NULL;
    if (cnn_model_conv_names(m, " ", &list) != CNN_OK) return CNN_ERR_NOMEM;
    cnn_status s;
    if (found < 0)
        s = cnn_fail(CNN_ERR_ARG, "no layer called '%s'; its conv layers are: %s", name, list);
    else
        s = cnn_fail(CNN_ERR_ARG, "'%s' is not a conv layer; its conv layers are: %s", name, list);
    free(list);
    return s;
}

/* ------------------------------------------------------------------ */
/* Ranking                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
    double score;
    int index;
} ranked;

/* Decreasing score, then increasing index; NaN ranks last. */
static int by_score(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    const int na = isnan(a->score), nb = isnan(b->score);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

cnn_status cnn_rank(const double *score, int n, int *order)
{
    if (n < 0 || (n > 0 && (!score || !order)))
        return cnn_fail(CNN_ERR_ARG, "cnn_rank: bad arguments (n %d)", n);
    if (n == 0) return CNN_OK;
    ranked *r = cnn_alloc((size_t)n, sizeof *r);
    if (!r) return CNN_ERR_NOMEM;
    for (int i = 0; i < n; i++) r[i].score = score[i], r[i].index = i;
    qsort(r, (size_t)n, sizeof *r, by_score);
    for (int i = 0; i < n; i++) order[i] = r[i].index;
    free(r);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* The default model                                                   */
/* ------------------------------------------------------------------ */

/* A "default" file longer than this names no model. */
#define DEFAULT_FILE_MAX (1 << 20)

static char *copy_string(const char *s)
{
    const size_t n = strlen(s) + 1;
    char *c = cnn_alloc(n, 1);
    if (c) memcpy(c, s, n);
    return c;
}

/* White space as in the C locale (GLib's g_ascii_isspace). */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int has_model_suffix(const char *name)
{
    const size_t n = strlen(name), k = strlen(CNN_MODEL_SUFFIX);
    return n > k && name[0] != '.' && strcmp(name + n - k, CNN_MODEL_SUFFIX) == 0;
}

static int is_regular_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* folder + "/" + name; folder's trailing slashes dropped ("/" stays). */
static char *join_path(const char *folder, const char *name)
{
    size_t n = strlen(folder);
    while (n > 1 && folder[n - 1] == '/') n--;
    const int slash = n > 0 && folder[n - 1] != '/';
    const size_t size = n + (size_t)slash + strlen(name) + 1;
    char *path = cnn_alloc(size, 1);
    if (path) snprintf(path, size, "%.*s%s%s", (int)n, folder, slash ? "/" : "", name);
    return path;
}

/* The whole file (NUL-terminated) or NULL (missing, unreadable, too long,
 * out of memory: *nomem tells the last apart). */
static char *read_small_file(const char *path, int *nomem)
{
    *nomem = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    *nomem = !buf;
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (ferror(f) || len >= DEFAULT_FILE_MAX) {
            free(buf);
            buf = NULL;
        } else if (feof(f)) {
            buf[len] = '\0';
            break;
        } else if (len == cap - 1) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) free(buf);
            *nomem = !bigger;
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    return buf;
}

cnn_status cnn_models_folder_default(const char *folder, char **path)
{
    if (!path) return cnn_fail(CNN_ERR_ARG, "cnn_models_folder_default: NULL argument");
    *path = NULL;
    if (!folder) return cnn_fail(CNN_ERR_ARG, "cnn_models_folder_default: NULL folder");
    char *marker = join_path(folder, CNN_DEFAULT_FILE);
    if (!marker) return CNN_ERR_NOMEM;
    int nomem;
    char *text = read_small_file(marker, &nomem);
    free(marker);
    if (!text) return nomem ? cnn_fail(CNN_ERR_NOMEM, "out of memory") : CNN_OK;

    char *name = text;
    while (is_space(*name)) name++;
    size_t n = strlen(name);
    while (n > 0 && is_space(name[n - 1])) n--;
    name[n] = '\0';
    cnn_status s = CNN_OK;
    if (has_model_suffix(name) && !strchr(name, '/')) {
        char *model = join_path(folder, name);
        if (!model) s = CNN_ERR_NOMEM;
        else if (is_regular_file(model)) *path = model;
        else free(model);
    }
    free(text);
    return s;
}

cnn_status cnn_default_model(const char *override, const char *models_folder,
                             const char *const *fallbacks, int n_fallbacks, char **path)
{
    if (!path) return cnn_fail(CNN_ERR_ARG, "cnn_default_model: NULL argument");
    *path = NULL;
    if (n_fallbacks < 0 || (n_fallbacks > 0 && !fallbacks))
        return cnn_fail(CNN_ERR_ARG, "cnn_default_model: bad fallbacks");
    const char *chosen = NULL;
    if (override && *override) {
        chosen = override;
    } else if (models_folder) {
        cnn_status s = cnn_models_folder_default(models_folder, path);
        if (s != CNN_OK || *path) return s;
    }
    for (int i = 0; !chosen && i < n_fallbacks; i++)
        if (fallbacks[i] && (i == n_fallbacks - 1 || access(fallbacks[i], R_OK) == 0))
            chosen = fallbacks[i];
    if (!chosen) return CNN_OK;
    *path = copy_string(chosen);
    return *path ? CNN_OK : CNN_ERR_NOMEM;
}
