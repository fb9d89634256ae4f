/* parity_run MODEL INPUT N OUT [THREADS]
 *
 * Helper for tests/parity.py: loads a model, runs N images read from
 * INPUT (raw float32, NHWC, N x H x W x C), and writes to OUT the N logits
 * followed by every conv tap (raw float32, NHWC).  Prints one line per
 * tap, "tap NAME H W C", so the caller knows the layout. */
#include "cnn.h"

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "parity_run: %s: %s\n", what, cnn_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fputs("usage: parity_run MODEL INPUT N OUT [THREADS]\n", stderr);
        return 2;
    }
    int n = atoi(argv[3]), threads = argc == 6 ? atoi(argv[5]) : 1;
    cnn_model *m = NULL;
    cnn_net *net = NULL;
    if (cnn_model_load(argv[1], &m) != CNN_OK) return fail(argv[1]);
    if (cnn_net_create(m, n, &net) != CNN_OK || cnn_net_set_threads(net, threads) != CNN_OK)
        return fail("net");

    size_t in_elems = (size_t)n * m->in_h * m->in_w * m->in_c;
    float *input = malloc(in_elems * sizeof *input), *logits = malloc((size_t)n * sizeof *logits);
    FILE *f = fopen(argv[2], "rb");
    if (!input || !logits || !f || fread(input, sizeof *input, in_elems, f) != in_elems) {
        fprintf(stderr, "parity_run: cannot read %zu floats from %s\n", in_elems, argv[2]);
        return 1;
    }
    fclose(f);
    if (cnn_net_forward(net, input, n, logits) != CNN_OK) return fail("forward");

    FILE *o = fopen(argv[4], "wb");
    if (!o) return fail(argv[4]);
    int ok = fwrite(logits, sizeof *logits, (size_t)n, o) == (size_t)n;
    for (int t = 0; t < cnn_net_tap_count(net); t++) {
        cnn_tensor_view v;
        const cnn_layer *L;
        if (cnn_net_tap(net, t, &v, &L) != CNN_OK) return fail("tap");
        size_t e = (size_t)v.n * v.h * v.w * v.c;
        ok = ok && fwrite(v.data, sizeof(float), e, o) == e;
        printf("tap %s %d %d %d\n", L->name, v.h, v.w, v.c);
    }
    if (fclose(o) != 0 || !ok) return fail("write");
    free(input);
    free(logits);
    cnn_net_free(net);
    cnn_model_free(m);
    return 0;
}
