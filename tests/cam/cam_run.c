/* cam_run - helper of the PyTorch Grad-CAM tests (gradcam_torch.py).
 *
 *   cam_run prep MODEL IMAGE OUT
 *       writes the network's input for IMAGE (raw float32, H x W x C) as
 *       the catdog command line computes it: JPEG decoded at the smallest
 *       scale that keeps the model's input size, then cnn_preprocess();
 *   cam_run cam MODEL INPUT OUT
 *       runs the network on INPUT (raw float32, one H x W x C image) and
 *       writes, for every conv tap, the Grad-CAM map (raw float32, h x w);
 *       prints "logit L" (the forward pass's), then one line per tap,
 *       "tap NAME H W C GRADCAM_LOGIT". */
#include "cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "cam_run: %s: %s\n", what, cnn_last_error());
    return 1;
}

static int prep(const cnn_model *m, const char *image, const char *out)
{
    const size_t n = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(n * sizeof *input);
    cnn_image img = {0};
    cnn_image_options opt = {0};
    opt.min_width = m->in_w;
    opt.min_height = m->in_h;
    if (!input) return fail("out of memory");
    if (cnn_image_load(image, &opt, &img) != CNN_OK) return fail(image);
    if (cnn_preprocess(m, img.pixels, img.width, img.height, img.stride, img.channels, input) !=
        CNN_OK)
        return fail("preprocess");
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(input, sizeof *input, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cam_run: cannot write %s\n", out);
        return 1;
    }
    cnn_image_free(&img);
    free(input);
    return 0;
}

static int cams(const cnn_model *m, const char *in_path, const char *out)
{
    cnn_net *net = NULL;
    if (cnn_net_create(m, 1, &net) != CNN_OK) return fail("net");
    const size_t n = (size_t)m->in_h * m->in_w * m->in_c;
    float *input = malloc(n * sizeof *input), logit;
    FILE *f = fopen(in_path, "rb");
    if (!input || !f || fread(input, sizeof *input, n, f) != n) {
        fprintf(stderr, "cam_run: cannot read %zu floats from %s\n", n, in_path);
        return 1;
    }
    fclose(f);
    if (cnn_net_forward(net, input, 1, &logit) != CNN_OK) return fail("forward");
    printf("logit %.9g\n", (double)logit);
    FILE *o = fopen(out, "wb");
    if (!o) {
        fprintf(stderr, "cam_run: cannot write %s\n", out);
        return 1;
    }
    int ok = 1;
    for (int t = 0; t < cnn_net_tap_count(net) && ok; t++) {
        cnn_tensor_view v;
        const cnn_layer *L;
        if (cnn_net_tap(net, t, &v, &L) != CNN_OK) return fail("tap");
        const size_t hw = (size_t)v.h * v.w;
        float *cam = malloc(hw * sizeof *cam), cam_logit;
        if (!cam) return fail("out of memory");
        if (cnn_net_gradcam(net, 0, t, cam, hw, &cam_logit) != CNN_OK) return fail(L->name);
        ok = fwrite(cam, sizeof *cam, hw, o) == hw;
        printf("tap %s %d %d %d %.9g\n", L->name, v.h, v.w, v.c, (double)cam_logit);
        free(cam);
    }
    if (fclose(o) != 0 || !ok) {
        fprintf(stderr, "cam_run: cannot write %s\n", out);
        return 1;
    }
    free(input);
    cnn_net_free(net);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "prep") != 0 && strcmp(argv[1], "cam") != 0)) {
        fputs("usage: cam_run prep MODEL IMAGE OUT | cam_run cam MODEL INPUT OUT\n", stderr);
        return 2;
    }
    cnn_model *m = NULL;
    if (cnn_model_load(argv[2], &m) != CNN_OK) return fail(argv[2]);
    int rc = strcmp(argv[1], "prep") == 0 ? prep(m, argv[3], argv[4]) : cams(m, argv[3], argv[4]);
    cnn_model_free(m);
    return rc;
}
