/* random.h - deterministic pseudo-random numbers and model parameters for
 * the C tests (each test program gets its own generator). */
#ifndef CATDOG_TESTS_RANDOM_H
#define CATDOG_TESTS_RANDOM_H

#include "cnn.h"

#include <stdint.h>

static uint64_t test_rng = 0x9E3779B97F4A7C15ull;

/* xorshift64; uniform in [-1, 1). */
static inline float frand(void)
{
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (float)((test_rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* cnn_model_init() leaves biases at zero and batch-norm at the identity,
 * which would hide mistakes in how they are applied or folded: give
 * them random values too (variances stay well above zero). */
static inline void randomize_biases(cnn_model *m)
{
    for (int li = 0; li < m->n_layers; li++) {
        cnn_layer *L = &m->layers[li];
        if (L->type == CNN_LAYER_BATCHNORM) {
            for (int i = 0; i < L->out_c; i++) {
                L->weight[i] = 1.0f + 0.5f * frand();
                L->bias[i] = 0.2f * frand();
                L->mean[i] = 0.3f * frand();
                L->var[i] = 0.5f + 0.4f * frand();
            }
        } else if (L->bias) {
            for (size_t i = 0; i < L->n_bias; i++) L->bias[i] = 0.1f * frand();
        }
    }
}

#endif
