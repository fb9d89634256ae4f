/* filters_data.c - activation maximisation on the shipped model against
 * the data set: for channels of every conv layer (the model's own list),
 * the picture's mean pre-ReLU activation must beat that channel's on
 * every validation photo tried, and the channel must rank among its
 * layer's top 5 on its own picture.  Exits 77 without the data set.
 *
 * usage: filters_data MODEL DATA_DIR [--per-class N] [--channels K]
 *                     [--steps N] [--layer NAME]
 * The channels of a layer: K spread evenly (0, c/K, 2c/K, ...), so that
 * no choice of favourable ones hides a failure. */
#include "../check.h"
#include "cnn.h"
#include "cnn_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: filters_data MODEL DATA_DIR [--per-class N] [--channels K] "
                        "[--steps N] [--layer NAME]\n");
        return 2;
    }
    int per_class = 50, per_layer = 2, steps = 256;
    const char *only = NULL;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--per-class") == 0) per_class = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--channels") == 0) per_layer = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--steps") == 0) steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--layer") == 0) only = argv[i + 1];
        else {
            fprintf(stderr, "filters_data: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    /* $CATDOG_DATA overrides DATA, as for the other data tests (tools/test
     * sets it for the build from the release tarball). */
    const char *env = getenv("CATDOG_DATA");
    const char *data = env && *env ? env : argv[2];
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s/validation", data);
    struct stat st;
    if (stat(vdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: no data set at %s\n", vdir);
        return 77;
    }
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_load(argv[1], &m));
    if (!m) return check_done("filters_data");
    char **paths = NULL;
    uint8_t *labels = NULL;
    int n = 0;
    CHECK_OK(cnn_list_labelled(vdir, per_class, &paths, &labels, &n));
    const size_t in_n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    float *inputs = malloc(sizeof(float) * in_n * (size_t)(n > 0 ? n : 1));
    for (int k = 0; k < n; k++) {
        cnn_image img;
        cnn_image_options io = {m->in_w, m->in_h, 0};
        CHECK_OK(cnn_image_load(paths[k], &io, &img));
        CHECK_OK(cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels,
                                inputs + (size_t)k * in_n));
        cnn_image_free(&img);
    }
    printf("%d validation photos (%d per class at most)\n", n, per_class);
    int layers_done = 0;
    for (int layer = 0; layer < m->n_layers; layer++) {
        if (m->layers[layer].type != CNN_LAYER_CONV2D) continue;
        if (only && strcmp(only, m->layers[layer].name) != 0) continue;
        const int c = m->layers[layer].out_c, k = per_layer < c ? per_layer : c;
        int *chans = malloc(sizeof(int) * (size_t)k);
        for (int i = 0; i < k; i++) chans[i] = (int)((long)i * c / k);
        cnn_filters_options o;
        cnn_filters_options_init(&o);
        o.layer = layer;
        o.steps = steps;
        int w, h;
        CHECK_OK(cnn_filters_picture_size(m, &o, &w, &h));
        const size_t pic = (size_t)w * (size_t)h * 3;
        uint8_t *rgb = malloc(pic * (size_t)k);
        double t0 = cnn_clock_seconds();
        CHECK_OK(cnn_filters_run(m, &o, chans, k, rgb, pic * (size_t)k));
        double secs = cnn_clock_seconds() - t0;
        cnn_channel_probe *p = NULL;
        CHECK_OK(cnn_channel_probe_create(m, layer, 16, NULL, 0, &p));
        float *means = malloc(sizeof(float) * (size_t)c * 16), *best = malloc(sizeof(float) * (size_t)c);
        for (int i = 0; i < c; i++) best[i] = -INFINITY;
        for (int b0 = 0; b0 < n; b0 += 16) {
            int nb = n - b0 < 16 ? n - b0 : 16;
            CHECK_OK(cnn_channel_probe_run(p, inputs + (size_t)b0 * in_n, nb, means));
            for (int j = 0; j < nb; j++)
                for (int i = 0; i < c; i++)
                    if (means[(size_t)j * (size_t)c + (size_t)i] > best[i])
                        best[i] = means[(size_t)j * (size_t)c + (size_t)i];
        }
        float *input = malloc(sizeof(float) * in_n);
        for (int i = 0; i < k; i++) {
            const int ch = chans[i];
            CHECK_OK(cnn_preprocess(m, rgb + (size_t)i * pic, w, h, (size_t)w * 3, 3, input));
            CHECK_OK(cnn_channel_probe_run(p, input, 1, means));
            int above = 0;
            for (int q = 0; q < c; q++) above += means[q] > means[ch];
            printf("%s #%d: %.4f on its picture (rank %d of %d), best of %d photos %.4f\n",
                   m->layers[layer].name, ch, (double)means[ch], above + 1, c, n, (double)best[ch]);
            CHECKF(means[ch] > best[ch], "%s #%d: picture %.4f, best photo %.4f",
                   m->layers[layer].name, ch, (double)means[ch], (double)best[ch]);
            CHECKF(above < 5, "%s #%d ranks %d of %d on its own picture", m->layers[layer].name,
                   ch, above + 1, c);
        }
        printf("%s: %d pictures, %d steps, %.1f s\n", m->layers[layer].name, k, steps, secs);
        layers_done++;
        cnn_channel_probe_free(p);
        free(input);
        free(means);
        free(best);
        free(rgb);
        free(chans);
    }
    CHECKF(layers_done > 0, "no conv layer %s", only ? only : "at all");
    free(inputs);
    free(paths);
    free(labels);
    cnn_model_free(m);
    return check_done("filters_data");
}
