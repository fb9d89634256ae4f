/* test_synthetic.c - a tiny network learns a separable task to 100%.
 *
 * Photos are 16 x 16 noise with one bright bar: horizontal for label 1,
 * vertical for label 0, at a random row or column.  The classes are
 * separable (bar orientation), but not by any single pixel or by colour,
 * so the conv layers have to learn an oriented edge detector.  Trained
 * with the article's augmentation off, the network must classify every
 * held-out image correctly, and the loss must have fallen. */
#include "../check.h"
#include "cnn_train.h"
#include "train_kernels.h"

#include <stdlib.h>

enum { S = 16, N_TRAIN = 256, N_VAL = 128 };

static void make_photo(uint64_t key, int label, uint8_t *px)
{
    for (int i = 0; i < S * S * 3; i++)
        px[i] = (uint8_t)(tk_uniform(key, (uint64_t)i) * 100.0);
    int at = 2 + (int)(tk_uniform(key, 9999) * (S - 4));
    for (int j = 0; j < S; j++)
        for (int ch = 0; ch < 3; ch++) {
            int y = label ? at : j, x = label ? j : at;
            px[(y * S + x) * 3 + ch] = 230;
        }
}

int main(void)
{
    const char *spec =
        "{\"schema\":1,\"name\":\"bars\",\"input\":[16,16,3],\"labels\":[\"cat\",\"dog\"],"
        "\"preprocess\":{\"resize\":\"squash\",\"scale\":0.00392156862745098,"
        "\"mean\":[0,0,0],\"std\":[1,1,1]},\"layers\":["
        "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":8,\"kernel\":3,\"padding\":\"same\",\"bias\":false},"
        "{\"type\":\"batchnorm\",\"name\":\"bn1\"},{\"type\":\"relu\",\"name\":\"r1\"},"
        "{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2,\"stride\":2},"
        "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel\":3,\"padding\":\"same\"},"
        "{\"type\":\"relu\",\"name\":\"r2\"},{\"type\":\"gap\",\"name\":\"gap\"},"
        "{\"type\":\"dense\",\"name\":\"fc\",\"units\":1},{\"type\":\"sigmoid\",\"name\":\"prob\"}]}";
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(spec, &m));
    if (!m) return check_done("test_synthetic");
    CHECK_OK(cnn_model_init(m, 3));

    uint8_t *train = malloc((size_t)N_TRAIN * S * S * 3), train_y[N_TRAIN];
    uint8_t photo[S * S * 3], val_y[N_VAL];
    float *val = malloc((size_t)N_VAL * S * S * 3 * sizeof *val);
    for (int i = 0; i < N_TRAIN; i++) {
        train_y[i] = (uint8_t)(i % 2);
        make_photo(1000 + (uint64_t)i, train_y[i], train + (size_t)i * S * S * 3);
    }
    for (int i = 0; i < N_VAL; i++) {
        val_y[i] = (uint8_t)(i % 2);
        make_photo(900000 + (uint64_t)i, val_y[i], photo);
        for (int k = 0; k < S * S * 3; k++)
            val[(size_t)i * S * S * 3 + k] = photo[k] / 255.0f;
    }
    cnn_dataset *d = NULL;
    CHECK_OK(cnn_dataset_from_memory(m, S, train, train_y, N_TRAIN, val, val_y, N_VAL, &d));

    cnn_train_options o = cnn_train_defaults();
    o.epochs = 12;
    o.batch = 16;
    o.threads = 2;
    o.lr = 0.01f;
    o.augment = (cnn_augment){0, 0, 0, 0, 0};
    o.arch = spec;
    cnn_trainer *t = NULL;
    CHECK_OK(cnn_trainer_create(m, &o, &t));
    double acc0 = 0, ll0 = 0, acc = 0, ll = 0;
    if (t && d) {
        CHECK_OK(cnn_trainer_evaluate(t, d, &acc0, &ll0, NULL));
        cnn_train_run run = {0};
        CHECK_OK(cnn_trainer_run(t, d, &run));
        CHECK_OK(cnn_trainer_evaluate(t, d, &acc, &ll, NULL));
    }
    printf("before: accuracy %.4f logloss %.4f; after: accuracy %.4f logloss %.4f\n",
           acc0, ll0, acc, ll);
    CHECKF(acc == 1.0, "held-out accuracy %.4f, expected 1", acc);
    CHECKF(ll < 0.1 && ll < ll0, "log loss %.4f (before training %.4f)", ll, ll0);

    /* SGD with momentum learns it too. */
    cnn_trainer_free(t);
    t = NULL;
    CHECK_OK(cnn_model_init(m, 4));
    o.optimizer = CNN_OPT_SGD;
    o.lr = 0.1f;
    o.weight_decay = 5e-4f;
    CHECK_OK(cnn_trainer_create(m, &o, &t));
    if (t && d) {
        cnn_train_run run = {0};
        CHECK_OK(cnn_trainer_run(t, d, &run));
        CHECK_OK(cnn_trainer_evaluate(t, d, &acc, &ll, NULL));
    }
    printf("sgd: accuracy %.4f logloss %.4f\n", acc, ll);
    CHECKF(acc == 1.0, "sgd: held-out accuracy %.4f, expected 1", acc);

    /* bf16 convolutions and dense layer (Adam, as the first run), on the
     * default kernel set (emulated where it has no bf16 instructions):
     * learns it too, and the same seed gives the same bytes. */
    o.optimizer = CNN_OPT_ADAM;
    o.lr = 0.01f;
    o.weight_decay = 0.01f;
    o.precision = CNN_PRECISION_BF16;
    float *first = malloc(m->n_params * sizeof *first);
    for (int run = 0; run < 2; run++) {
        cnn_trainer_free(t);
        t = NULL;
        CHECK_OK(cnn_model_init(m, 3));
        CHECK_OK(cnn_trainer_create(m, &o, &t));
        if (t && d) {
            cnn_train_run run_opts = {0};
            CHECK_OK(cnn_trainer_run(t, d, &run_opts));
            CHECK_OK(cnn_trainer_evaluate(t, d, &acc, &ll, NULL));
        }
        printf("bf16 (%s kernels), run %d: accuracy %.4f logloss %.4f\n",
               cnn_isa_name(cnn_isa_default()), run + 1, acc, ll);
        CHECKF(acc == 1.0, "bf16: held-out accuracy %.4f, expected 1", acc);
        CHECKF(ll < 0.1, "bf16: log loss %.4f", ll);
        if (run == 0) memcpy(first, m->params, m->n_params * sizeof *first);
        else
            CHECKF(memcmp(first, m->params, m->n_params * sizeof *first) == 0,
                   "bf16: the same seed gave different weights");
    }
    free(first);

    cnn_trainer_free(t);
    cnn_dataset_free(d);
    cnn_model_free(m);
    free(train);
    free(val);
    return check_done("test_synthetic");
}
