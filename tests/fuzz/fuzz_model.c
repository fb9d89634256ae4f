/* fuzz_model.c - fuzz harness for model files: the safetensors reader
 * (header, metadata, architecture, tensors) and, for what loads, planning
 * a network and one forward pass.
 *
 * An input that starts with '{' is also given to cnn_model_from_spec() as
 * a model description, so the fuzzer reaches the architecture parser and
 * the network planner without having to build matching tensors too.
 *
 * Besides memory errors (the sanitizers), the harness checks the API's
 * promises: a failure leaves *out NULL and sets a message; a model that
 * loads is within the CNN_MAX_* limits, has finite weights and runs; the
 * header-only reader accepts every file that loads, and what it accepts
 * passes the same checks, without parameters. */
#include "cnn.h"
#include "fuzz.h"

#include <math.h>
#include <string.h>

/* Forward passes are only run on models this small, so that each input
 * stays fast (the limits themselves allow far larger ones). */
#define RUN_MAX_MACS 4000000u
#define RUN_MAX_ACTIVATION_BYTES ((size_t)8 << 20)

static void check_failure(const char *what, cnn_status s, const cnn_model *m)
{
    FUZZ_ASSERT(m == NULL, "%s failed (%s) but left a model", what, cnn_status_name(s));
    FUZZ_ASSERT(cnn_last_error()[0] != '\0', "%s failed (%s) without a message", what,
                cnn_status_name(s));
    FUZZ_ASSERT(fuzz_printable(cnn_last_error()), "%s: control characters in the message",
                what);
    FUZZ_ASSERT(s != CNN_ERR_ARG && s != CNN_ERR_INTERRUPTED && s != CNN_ERR_IO,
                "%s: status %s for a bad input: %s", what, cnn_status_name(s),
                cnn_last_error());
}

static void check_model(const cnn_model *m, int loaded)
{
    FUZZ_ASSERT(m->n_layers >= 1 && m->n_layers <= CNN_MAX_LAYERS, "%d layers", m->n_layers);
    FUZZ_ASSERT(m->in_h >= 1 && m->in_h <= CNN_MAX_DIM && m->in_w >= 1 && m->in_w <= CNN_MAX_DIM &&
                    (m->in_c == 1 || m->in_c == 3),
                "input %d x %d x %d", m->in_h, m->in_w, m->in_c);
    FUZZ_ASSERT(m->n_params <= CNN_MAX_PARAMS, "%zu parameters", m->n_params);
    FUZZ_ASSERT(m->activation_bytes <= CNN_MAX_ACTIVATION_BYTES, "%zu activation bytes",
                m->activation_bytes);
    FUZZ_ASSERT(m->temperature > 0.0f && isfinite(m->temperature), "temperature %g",
                (double)m->temperature);
    const cnn_layer *last = &m->layers[m->n_layers - 1];
    FUZZ_ASSERT(last->out_h == 1 && last->out_w == 1 && last->out_c == 1,
                "last layer outputs %d x %d x %d", last->out_h, last->out_w, last->out_c);
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const cnn_layer *L = &m->layers[i];
        FUZZ_ASSERT(L->out_h >= 1 && L->out_w >= 1 && L->out_c >= 1, "layer %d output %d x %d x %d",
                    i, L->out_h, L->out_w, L->out_c);
        FUZZ_ASSERT(memchr(L->name, '\0', sizeof L->name) != NULL, "layer %d name unterminated", i);
        total += L->n_params;
        const float *v[4] = {L->weight, L->bias, L->mean, L->var};
        size_t n[4] = {L->n_weight, L->n_bias, L->n_weight, L->n_weight};
        for (int k = 0; k < 4; k++) {
            if (!v[k]) continue;
            FUZZ_ASSERT(m->params, "layer %d has a tensor but the model no parameters", i);
            FUZZ_ASSERT(v[k] >= m->params && v[k] + n[k] <= m->params + m->n_params,
                        "layer %d tensor %d outside the parameter block", i, k);
            if (!loaded) continue;
            for (size_t j = 0; j < n[k]; j++)
                FUZZ_ASSERT(isfinite(v[k][j]), "layer %d tensor %d element %zu is %g", i, k, j,
                            (double)v[k][j]);
        }
    }
    FUZZ_ASSERT(total == m->n_params, "layers hold %zu parameters, the model says %zu", total,
                m->n_params);
}

/* Plans a net for one image, runs it once and renders each tap. */
static void run_model(const cnn_model *m)
{
    if (m->macs > RUN_MAX_MACS || m->activation_bytes > RUN_MAX_ACTIVATION_BYTES) return;
    cnn_net *net = NULL;
    cnn_status s = cnn_net_create(m, 1, &net);
    if (s != CNN_OK) {
        /* A model the loader accepted must be runnable; only running out
         * of memory is an excuse. */
        FUZZ_ASSERT(s == CNN_ERR_NOMEM, "cnn_net_create: %s: %s", cnn_status_name(s),
                    cnn_last_error());
        return;
    }
    FUZZ_ASSERT(cnn_net_set_threads(net, 1) == CNN_OK, "set_threads: %s", cnn_last_error());
    size_t n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    float *input = malloc(n * sizeof *input);
    if (input) {
        for (size_t i = 0; i < n; i++) input[i] = (float)(i % 7) * 0.25f - 0.5f;
        float logit = 0.0f;
        s = cnn_net_forward(net, input, 1, &logit);
        FUZZ_ASSERT(s == CNN_OK, "forward: %s: %s", cnn_status_name(s), cnn_last_error());
        double p = cnn_model_probability(m, logit);
        FUZZ_ASSERT(isnan(logit) || (p >= 1e-4 && p <= 1.0 - 1e-4), "probability %g", p);
        for (int t = 0; t < cnn_net_tap_count(net); t++) {
            cnn_tensor_view v;
            const cnn_layer *L = NULL;
            s = cnn_net_tap(net, t, &v, &L);
            FUZZ_ASSERT(s == CNN_OK && L, "tap %d: %s", t, cnn_last_error());
            FUZZ_ASSERT(v.n == 1 && v.h == L->out_h && v.w == L->out_w && v.c == L->out_c,
                        "tap %d is %d x %d x %d x %d, layer %s outputs %d x %d x %d", t, v.n,
                        v.h, v.w, v.c, L->name, L->out_h, L->out_w, L->out_c);
            cnn_image img;
            s = cnn_mosaic_render(&v, 0, t % 2 ? CNN_COLORMAP_VIRIDIS : CNN_COLORMAP_GRAY, &img);
            FUZZ_ASSERT(s == CNN_OK || s == CNN_ERR_NOMEM || s == CNN_ERR_LIMIT,
                        "mosaic of tap %d: %s: %s", t, cnn_status_name(s), cnn_last_error());
            cnn_image_free(&img);
        }
        free(input);
    }
    cnn_net_free(net);
}

/* The outcome of one reader: a model that passes check_model() (and
 * runs, with run), or a clean failure.  Frees the model. */
static void check_result(const char *what, cnn_status s, cnn_model *m, int loaded, int run)
{
    if (s != CNN_OK) {
        check_failure(what, s, m);
        return;
    }
    FUZZ_ASSERT(m != NULL, "%s succeeded without a model", what);
    check_model(m, loaded);
    if (run) run_model(m);
    cnn_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cnn_model *m = (cnn_model *)&m; /* must be overwritten either way */
    cnn_clear_error();
    cnn_status s = cnn_model_load_memory(data, size, &m);
    check_result("cnn_model_load_memory", s, m, 1, 1);

    m = (cnn_model *)&m;
    cnn_clear_error();
    cnn_status hs = cnn_model_load_header_memory(data, size, &m);
    FUZZ_ASSERT(s != CNN_OK || hs == CNN_OK, "the file loads, but its header is refused: %s",
                cnn_last_error());
    FUZZ_ASSERT(hs != CNN_OK || m->params == NULL, "the header reader read parameters");
    check_result("cnn_model_load_header_memory", hs, m, 0, 0);

    if (size > 0 && data[0] == '{') {
        char *text = malloc(size + 1);
        if (!text) return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        m = (cnn_model *)&m;
        cnn_clear_error();
        s = cnn_model_from_spec(text, &m);
        check_result("cnn_model_from_spec", s, m, 0, 1);
        free(text);
    }
    return 0;
}
