/* train_kernels.h - forward and backward kernels used by the trainer
 * (train_kernels.c, fast) and their scalar references for the backward
 * passes (grad.c).  NHWC activations, canonical parameter layouts.
 *
 * Threading: every kernel takes the pool whose threads it runs on (pool.h;
 * NULL: the calling thread only) and splits its reductions statically
 * into the pool's parts, so that for a given thread count the results
 * are bit-identical from run to run, whatever the timing.  Kernels never
 * allocate: the caller passes scratch sized with the *_scratch functions
 * for `threads` = cnn_pool_size(pool) (or more). */
#ifndef TRAIN_KERNELS_H
#define TRAIN_KERNELS_H

#include "cnn_internal.h"
#include "kernels.h"
#include "pool.h"

#include <stddef.h>
#include <stdint.h>

/* Convolution geometry: input (n, h, w, c), output (n, oh, ow, oc). */
typedef struct {
    int n, h, w, c;
    int oc, k, stride, pad_top, pad_left;
    int oh, ow;
    const cnn_kernels *kern; /* the GEMM's kernel set; NULL: the default
                                (cnn_isa_default) */
    cnn_precision precision; /* bf16: forward, input and weight gradient
                                in bf16 (bf16.h); the packed weights then
                                hold bf16 in the pair layout (a convolution
                                with fewer than 4 input or output channels
                                stays f32: tk_conv_is_bf16) */
    uint16_t *input_bf16;    /* bf16 (optional): tk_conv_input_bf16_halves
                                where tk_conv_forward keeps its input
                                rounded, so that tk_conv_backward_weight of
                                the same input (it must be) reads it there
                                instead of rounding it again; NULL: each
                                rounds it into its scratch */
    uint16_t *dout_bf16;     /* bf16 (optional): tk_conv_dout_bf16_halves
                                where tk_conv_backward_weight leaves the
                                output gradient rounded, for
                                tk_conv_backward_input (stride 1) called
                                next with the same dout, which then does
                                not round it again; NULL: it does */
    double *stats;           /* (optional) tk_conv_stats_doubles where
                                tk_conv_forward also takes the per-channel
                                statistics of its output for a training
                                batch-norm after it: the means in
                                [0, oc), the sums of squared deviations in
                                [oc, 2 oc) (the rest is its work space);
                                the same values for any thread count */
} tk_conv;

/* Whether g's arithmetic is bf16: its precision, except for fewer than 4
 * input or output channels (train_kernels.c, conv_bf16). */
int tk_conv_is_bf16(const tk_conv *g);

/* Doubles of tk_conv.stats (at most one record per output row and block
 * of 32 channels, or per chunk of pixels, for any kernel set). */
size_t tk_conv_stats_doubles(const tk_conv *g);

/* Halves of tk_conv.input_bf16 and dout_bf16 (0 where g's arithmetic is
 * f32). */
size_t tk_conv_input_bf16_halves(const tk_conv *g);
size_t tk_conv_dout_bf16_halves(const tk_conv *g);

/* Floats of scratch the conv kernels need, for all threads together. */
size_t tk_conv_scratch_floats(const tk_conv *g, int threads);

/* Floats of packed weights, forward (backward 0) or for the input
 * gradient (1), for any kernel set. */
size_t tk_conv_packed_floats(const tk_conv *g, int backward);
/* The weights (OIHW) in g->kern's conv layout (kernels.h: blocks of
 * conv_block output channels) for tk_conv_forward. */
void tk_conv_pack_forward(const tk_conv *g, const float *w, float *wt);
/* The weights for tk_conv_backward_input: for stride 1 those of the
 * convolution that is the input gradient, w[oc][ic][k-1-ky][k-1-kx] in
 * the same blocks, its outputs the input channels; for other strides
 * OHWI ([oc][k][k][ic]). */
void tk_conv_pack_backward(const tk_conv *g, const float *w, float *wf);

void tk_conv_forward(const tk_conv *g, const float *in, const float *wt,
                     const float *bias, float *out, float *scratch,
                     cnn_pool *pool);
/* din = d(loss)/d(in) from dout; wf from tk_conv_pack_backward (w is not
 * read; kept for the callers).  Any stride; the same bits for any thread
 * count. */
void tk_conv_backward_input(const tk_conv *g, const float *dout,
                            const float *wf, const float *w, float *din,
                            float *scratch, cnn_pool *pool);
/* dw (OIHW) += d(loss)/d(weight), db (may be NULL) += d(loss)/d(bias). */
void tk_conv_backward_weight(const tk_conv *g, const float *in,
                             const float *dout, float *dw, float *db,
                             float *scratch, cnn_pool *pool);

/* Dense: in (n, in_f), weight [units][in_f], wt its transpose. */
void tk_dense_pack(const float *w, int in_f, int units, float *wt);
/* kern: the GEMM's kernel set (NULL: the default). */
void tk_dense_forward(const cnn_kernels *kern, const float *in, int n, int in_f,
                      const float *wt, const float *bias, int units, float *out,
                      cnn_pool *pool);
/* din, dw, db (each may be NULL: not computed). */
void tk_dense_backward(const cnn_kernels *kern, const float *in,
                       const float *dout, int n, int in_f, const float *w,
                       int units, float *din, float *dw, float *db, cnn_pool *pool);

/* Dense layers in bf16 (bf16.h): w [units][in_f] the f32 master weights,
 * rounded into scratch (tk_dense_bf16_scratch_floats) with the inputs on
 * every call; the results as tk_dense_forward and tk_dense_backward. */
size_t tk_dense_bf16_scratch_floats(int n, int in_f, int units);
void tk_dense_forward_bf16(const cnn_kernels *kern, const float *in, int n, int in_f,
                           const float *w, const float *bias, int units, float *out,
                           float *scratch, cnn_pool *pool);
void tk_dense_backward_bf16(const cnn_kernels *kern, const float *in,
                            const float *dout, int n, int in_f, const float *w,
                            int units, float *din, float *dw, float *db,
                            float *scratch, cnn_pool *pool);

/* Batch-norm in training mode over pixels = n*h*w rows of c channels:
 * normalises with the batch statistics and writes them, mean, var (biased)
 * and invstd = 1/sqrt(var + eps), each [c].  stats: those statistics as
 * the convolution before took them (tk_conv.stats), or NULL: a pass over
 * x takes them (sums around the first row, split over the pool's parts).
 * scratch: tk_bn_scratch_doubles.  relu: y is the output of a ReLU after
 * the batch-norm instead (fused; the same values as tk_relu_forward of
 * the batch-norm's output). */
size_t tk_bn_scratch_doubles(int c, int threads);
void tk_bn_forward_train(const float *x, size_t pixels, int c,
                         const float *gamma, const float *beta, float eps,
                         const double *stats, int relu, float *y, float *mean, float *var,
                         float *invstd, double *scratch, cnn_pool *pool);
void tk_bn_forward_eval(const float *x, size_t pixels, int c,
                        const float *gamma, const float *beta,
                        const float *rmean, const float *rvar, float eps,
                        int relu, float *y, cnn_pool *pool);
/* Inference mode (running statistics): dx = dy * gamma / sqrt(rvar + eps)
 * per channel. */
void tk_bn_backward_eval(const float *dy, size_t pixels, int c, const float *gamma,
                         const float *rvar, float eps, float *dx, cnn_pool *pool);
/* dx from dy; dgamma, dbeta += their gradients.  gate (NULL: none) fuses
 * the backward pass of a ReLU after the batch-norm: dy is then the
 * gradient at the ReLU's output, gate that output (the same results as
 * tk_relu_backward first). */
void tk_bn_backward(const float *x, const float *dy, const float *gate,
                    size_t pixels, int c, const float *gamma,
                    const float *mean, const float *invstd, float *dx,
                    float *dgamma, float *dbeta, double *scratch, cnn_pool *pool);

void tk_relu_forward(const float *x, size_t count, float *y, cnn_pool *pool);
/* dx = dy where y > 0 (y is the ReLU's output). */
void tk_relu_backward(const float *y, const float *dy, size_t count,
                      float *dx, cnn_pool *pool);

void tk_maxpool_forward(const float *in, int n, int h, int w, int c, int k,
                        int stride, int oh, int ow, float *out, cnn_pool *pool);
/* The gradient goes to the first maximum of each window (the one the
 * forward pass picked); out is the forward output.  relu fuses the
 * backward pass of a ReLU before the pool (in is its output): din is then
 * the gradient at the ReLU's input, 0 where the maximum is not > 0 (the
 * same results as tk_relu_backward after). */
void tk_maxpool_backward(const float *in, const float *out,
                         const float *dout, int n, int h, int w, int c, int k,
                         int stride, int oh, int ow, int relu, float *din,
                         cnn_pool *pool);

/* Batch-norm in training mode -> ReLU -> 2x2 stride-2 max pool, each way
 * in one pass.  Forward: the statistics as tk_bn_forward_train, then
 * pout (n, h/2, w/2, c) = the pool of the ReLU's output, which is never
 * written (the same bits as tk_bn_forward_train with relu, then
 * tk_maxpool_forward).  x: the batch-norm's input, h x w. */
void tk_bn_relu_pool2_forward(const float *x, int n, int h, int w, int c, const float *gamma,
                              const float *beta, float eps, const double *stats, float *pout,
                              float *mean, float *var, float *invstd, double *scratch,
                              cnn_pool *pool);
/* Backward: dx, dgamma, dbeta as tk_bn_backward computes them from the dy
 * that tk_maxpool_backward (relu fused) writes, without writing that dy
 * out (two image rows at a time, in `rows`: tk_bn_pool_rows_floats) and
 * without reading the ReLU's or the pool's output: the ReLU's output is
 * recomputed from x, gamma, beta and the statistics the way the forward
 * passes compute it, and the pool's maxima from that.  pdout: the pool's
 * gradient, h/2 x w/2 (rows and columns past 2 (h/2), 2 (w/2) get no
 * gradient).  The sums are split over the pool's parts in row pairs, so
 * the bits may differ from the kernels apart with more than one thread
 * (not with one), and depend on the thread count as theirs do. */
size_t tk_bn_pool_rows_floats(int w, int c, int threads);
void tk_bn_relu_pool2_backward(const float *x, const float *pdout, int n, int h, int w, int c,
                               const float *gamma, const float *beta, const float *mean,
                               const float *invstd, float *dx, float *dgamma,
                               float *dbeta, double *scratch, float *rows,
                               cnn_pool *pool);

/* A convolution (f32 arithmetic: !tk_conv_is_bf16) -> batch-norm ->
 * ReLU -> 2x2 stride-2 max pool, backward, when the convolution's input
 * gradient is not needed (the first layer): dgamma, dbeta as
 * tk_bn_relu_pool2_backward (the same bits) and dw (OIHW) += the
 * convolution's weight gradient, in one pass over x (the convolution's
 * output, the batch-norm's input) and pdout, without forming the
 * gradient at x: with dx = k1 (dy - k2 - x_hat k3) per channel (the
 * batch-norm's backward pass), the weight gradient is
 *   dw[o][t] = k1 (sum_p dy patch_t - k2 sum_p patch_t - k3 sum_p x_hat patch_t),
 * whose three sums (over the output pixels p, patch_t the input at tap t
 * of p's window) need only dy and x_hat, which the batch-norm's sums pass
 * computes anyway.  They run on g->kern's GEMM row by row (f32, as the
 * patches' GEMM) and are added up in double, and the formula is taken in
 * double, so the result differs from tk_conv_backward_weight of that dx
 * by rounding only.  g: the convolution (its output (n, oh, ow, oc) is
 * x); in: its input; scratch: tk_conv_bn_pool_scratch_doubles, rows:
 * tk_conv_bn_pool_rows_floats, for the pool's thread count.  Depends on
 * the thread count as tk_bn_relu_pool2_backward does. */
size_t tk_conv_bn_pool_scratch_doubles(const tk_conv *g, int threads);
size_t tk_conv_bn_pool_rows_floats(const tk_conv *g, int threads);
void tk_conv_bn_relu_pool2_backward(const tk_conv *g, const float *in, const float *x,
                                    const float *pdout, const float *gamma, const float *beta,
                                    const float *mean, const float *invstd, float *dw,
                                    float *dgamma, float *dbeta, double *scratch, float *rows,
                                    cnn_pool *pool);

void tk_gap_forward(const float *in, int n, int h, int w, int c, float *out);
void tk_gap_backward(const float *dout, int n, int h, int w, int c,
                     float *din);

/* Inverted dropout: y = x * keep / (1 - rate), keep drawn from key and
 * the element index (so it does not depend on threads); rate 0 copies. */
void tk_dropout_forward(const float *x, size_t count, float rate,
                        uint64_t key, float *y);
void tk_dropout_backward(const float *dy, size_t count, float rate,
                         uint64_t key, float *dx);

/* One optimizer step over count parameters p with gradients g.
 * Adam with decoupled weight decay (AdamW): m1, m2 the moments, c1, c2
 * the bias corrections 1 / (1 - b^step):
 *   m1 = b1 m1 + (1 - b1) g,  m2 = b2 m2 + (1 - b2) g^2,
 *   p -= lr ((m1 c1) / (sqrt(m2 c2) + 1e-8) + wd p).
 * SGD with momentum and L2 decay: m1 = momentum m1 + g + wd p, p -= lr m1.
 * Element-wise: the results do not depend on the pool. */
void tk_adam_step(float *p, const float *g, float *m1, float *m2, size_t count,
                  float b1, float b2, float c1, float c2, float lr, float wd,
                  cnn_pool *pool);
void tk_sgd_step(float *p, const float *g, float *m1, size_t count, float momentum,
                 float lr, float wd, cnn_pool *pool);

/* Counter-based random numbers: a 64-bit hash of (key, counter). */
uint64_t tk_hash(uint64_t key, uint64_t counter);
/* Uniform in [0, 1) from tk_hash. */
double tk_uniform(uint64_t key, uint64_t counter);

/* Scalar references of the backward passes (grad.c): one output element
 * at a time, sums in double, single-threaded.  They overwrite (din, dx,
 * dw, ...), unlike the fast kernels' +=; any output may be NULL. */
void ref_conv2d_backward(const tk_conv *g, const float *in,
                         const float *w, const float *dout, float *din,
                         float *dw, float *db);
void ref_batchnorm_train_forward(const float *x, size_t pixels, int c,
                                 const float *gamma, const float *beta,
                                 float eps, float *y);
void ref_batchnorm_backward(const float *x, const float *dy, size_t pixels,
                            int c, const float *gamma, float eps, float *dx,
                            float *dgamma, float *dbeta);
void ref_relu_backward(const float *x, const float *dy, size_t count,
                       float *dx);
void ref_maxpool_backward(const float *in, const float *dout, int n, int h,
                          int w, int c, int k, int stride, int oh, int ow,
                          float *din);
void ref_dense_backward(const float *in, const float *dout, int n, int in_f,
                        const float *w, int units, float *din, float *dw,
                        float *db);
void ref_gap_backward(const float *dout, int n, int h, int w, int c,
                      float *din);

#endif /* TRAIN_KERNELS_H */
