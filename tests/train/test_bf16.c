/* test_bf16.c - bf16 mixed precision (core/bf16.c, the kernel sets'
 * gemm_bf16, the trainer's and the net's bf16 paths) against the f32
 * scalar references, on every kernel set this CPU runs: the native bf16
 * sets (avx512bf16: vdpbf16ps; amx: AMX tiles) and the emulated path of
 * the others.  A set the CPU (or OS, or compiler) cannot run is reported
 * as skipped.
 *
 * The tolerance.  Each bf16 input is its f32 value rounded to nearest
 * even with 8 significant bits (7 stored): relative error at most
 * u = 2^-8.  A product of two rounded values is exact in f32 and within
 * 2u + u^2 = 2^-7 + 2^-16 of the product of the unrounded ones.  Summing
 * K such products in f32 adds at most K * 2^-24 of the sum of their
 * magnitudes (one rounding per term, whatever the order or the partial
 * sums); we allow twice that, for the reference's own rounding and for
 * vdpbf16ps implementations that round the pair's sum differently.  So for
 * an output c = sum a_p b_p (+ bias) over K terms:
 *     |c_bf16 - c_ref| <= (2^-7 + 2^-16 + 2 K 2^-24) * sum |a_p| |b_p|
 * where sum |a_p||b_p| is the same reference op on the magnitudes.  For
 * the GEMM alone, against the exact sum of the rounded inputs, the bound
 * is 2 K 2^-24 * sum |a_p||b_p|. */
#include "../check.h"
#include "bf16.h"
#include "cnn_train.h"
#include "train_kernels.h"

#include <stdint.h>
#include <stdlib.h>

static uint64_t rng = 777;

static float frand(void) { return (float)(tk_uniform(rng++, 0) * 2.0 - 1.0); }

static float *rand_array(size_t n)
{
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = frand();
    return a;
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static float *abs_copy(const float *a, size_t n)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = fabsf(a[i]);
    return r;
}

static double bound(double terms, double mag)
{
    return (0x1p-7 + 0x1p-16 + 2.0 * terms * 0x1p-24) * mag + 1e-30;
}

/* Worst |got - ref| / bound over n outputs (<= 1 passes; NaN fails). */
static double worst_ratio(const float *got, const float *ref, const float *mag, size_t n,
                          double terms)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double r = fabs((double)got[i] - ref[i]) / bound(terms, mag[i]);
        if (!(r <= worst)) worst = r;
    }
    return worst;
}

/* cnn_bf16_round (inline, bf16.h) is half.c's cnn_f32_to_bf16. */
static void test_rounding(void)
{
    int bad = 0;
    const uint32_t special[] = {0, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                0x00000001u, 0x7f7fffffu, 0x3f808000u, 0x3f818000u, 0x3f7fffffu};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        float f;
        memcpy(&f, &special[i], sizeof f);
        bad += cnn_bf16_round(f) != cnn_f32_to_bf16(f);
    }
    for (uint64_t i = 0; i < 1000000; i++) {
        const uint32_t b = (uint32_t)tk_hash(99, i);
        float f;
        memcpy(&f, &b, sizeof f);
        bad += cnn_bf16_round(f) != cnn_f32_to_bf16(f);
    }
    CHECKF(bad == 0, "%d values round differently from cnn_f32_to_bf16", bad);
    /* Ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7. */
    CHECK(cnn_bf16_round(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(cnn_bf16_round(1.0f + 3 * 0x1p-8f) == 0x3f82);
}

static const char *set_name(int isa) { return cnn_isa_name((cnn_isa)isa); }

/* gemm_bf16 of one set on M x N x K with padded strides (B's by b_pad
 * columns past N rounded up to 16), against the exact sums of the rounded
 * inputs; then the same C computed in pieces (rows and columns split)
 * must have the same bytes. */
static void test_gemm_shape(const cnn_kernels *k, int M, int N, int K, int accumulate, int b_pad)
{
    const int Ke = (int)cnn_bf16_round_up((size_t)K, 2);
    const size_t lda = (size_t)Ke + 4, ldb = cnn_bf16_round_up((size_t)N, 16) + (size_t)b_pad,
                 ldc = (size_t)N + 3;
    float *a = rand_array((size_t)M * K), *b = rand_array((size_t)K * N);
    float *c0 = rand_array((size_t)M * ldc);
    uint16_t *ab = calloc((size_t)M * lda, sizeof *ab);
    uint16_t *bb = calloc(cnn_bf16_pairs_halves((size_t)K, ldb), sizeof *bb);
    /* A: rows of K rounded values, zero to lda; B: pairs, ldb columns. */
    cnn_bf16_pack_rows(a, K, 1, M, K, ab, lda);
    float *bpad = zeros((size_t)K * ldb);
    for (int p = 0; p < K; p++)
        for (int j = 0; j < N; j++) bpad[(size_t)p * ldb + j] = b[(size_t)p * N + j];
    cnn_bf16_pack_pairs(bpad, (ptrdiff_t)ldb, 1, K, (int)ldb, bb);
    float *c = malloc((size_t)M * ldc * sizeof *c), *c2 = malloc((size_t)M * ldc * sizeof *c2);
    memcpy(c, c0, (size_t)M * ldc * sizeof *c);
    memcpy(c2, c0, (size_t)M * ldc * sizeof *c2);
    k->gemm_bf16(M, N, Ke, ab, (ptrdiff_t)lda, bb, (ptrdiff_t)ldb, c, (ptrdiff_t)ldc, accumulate);
    double worst = 0;
    int untouched = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = accumulate ? c0[(size_t)i * ldc + j] : 0.0, mag = fabs(s);
            for (int p = 0; p < K; p++) {
                const double x = cnn_bf16_to_f32(cnn_bf16_round(a[(size_t)i * K + p]));
                const double y = cnn_bf16_to_f32(cnn_bf16_round(b[(size_t)p * N + j]));
                s += x * y;
                mag += fabs(x * y);
            }
            const double r = fabs(c[(size_t)i * ldc + j] - s) / (2.0 * (K + 1) * 0x1p-24 * mag + 1e-30);
            if (!(r <= worst)) worst = r;
        }
        for (size_t j = (size_t)N; j < ldc; j++)
            untouched &= c[(size_t)i * ldc + j] == c0[(size_t)i * ldc + j];
    }
    CHECKF(worst <= 1.0, "%s gemm_bf16 %dx%dx%d acc %d: error %.3g of the bound", k->name, M, N, K,
           accumulate, worst);
    CHECKF(untouched, "%s gemm_bf16 %dx%dx%d: wrote past column N", k->name, M, N, K);
    /* Pieces: rows [0, m1) and [m1, M), columns [0, 16) and [16, N). */
    const int m1 = M / 2, n1 = N > 16 ? 16 : N;
    k->gemm_bf16(m1, n1, Ke, ab, (ptrdiff_t)lda, bb, (ptrdiff_t)ldb, c2, (ptrdiff_t)ldc, accumulate);
    k->gemm_bf16(M - m1, n1, Ke, ab + (size_t)m1 * lda, (ptrdiff_t)lda, bb, (ptrdiff_t)ldb,
                 c2 + (size_t)m1 * ldc, (ptrdiff_t)ldc, accumulate);
    if (N > n1) {
        k->gemm_bf16(m1, N - n1, Ke, ab, (ptrdiff_t)lda, bb + (size_t)n1 * 2, (ptrdiff_t)ldb, c2 + n1,
                     (ptrdiff_t)ldc, accumulate);
        k->gemm_bf16(M - m1, N - n1, Ke, ab + (size_t)m1 * lda, (ptrdiff_t)lda, bb + (size_t)n1 * 2,
                     (ptrdiff_t)ldb, c2 + (size_t)m1 * ldc + n1, (ptrdiff_t)ldc, accumulate);
    }
    CHECKF(memcmp(c, c2, (size_t)M * ldc * sizeof *c) == 0,
           "%s gemm_bf16 %dx%dx%d: computed in pieces, different bytes", k->name, M, N, K);
    free(a); free(b); free(c0); free(ab); free(bb); free(bpad); free(c); free(c2);
}

static void test_gemm(const cnn_kernels *k)
{
    static const int shapes[][3] = {{1, 1, 1},    {5, 17, 6},   {13, 33, 31},  {27, 32, 256},
                                    {40, 70, 300}, {12, 32, 258}, {33, 48, 64}, {64, 64, 576}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int acc = 0; acc < 2; acc++)
            test_gemm_shape(k, shapes[s][0], shapes[s][1], shapes[s][2], acc, 16);
    /* B exactly as wide as N rounded up to 16, as the packed convolution
     * weights are: the AMX set's blocks where only 16 columns of B are
     * left (N = 3: the input gradient of an RGB convolution), with K
     * short of a tile step. */
    static const int tight[][3] = {{37, 3, 288}, {20, 16, 30}, {45, 48, 70}, {33, 1, 7}};
    for (size_t s = 0; s < sizeof tight / sizeof *tight; s++)
        for (int acc = 0; acc < 2; acc++)
            test_gemm_shape(k, tight[s][0], tight[s][1], tight[s][2], acc, 0);
}

/* The trainer's bf16 convolution (forward, weight and input gradient)
 * against the references, with 1 and 3 threads, each run twice. */
static void test_conv(const cnn_kernels *kern, int n, int h, int w, int c, int oc, int k, int stride,
                      int pad)
{
    tk_conv g = {n, h, w, c, oc, k, stride, pad, pad, (h + 2 * pad - k) / stride + 1,
                 (w + 2 * pad - k) / stride + 1, kern, CNN_PRECISION_BF16, NULL, NULL, NULL};
    const size_t ni = (size_t)n * h * w * c, nw = (size_t)oc * c * k * k, no = (size_t)n * g.oh * g.ow * oc;
    float *in = rand_array(ni), *wt = rand_array(nw), *bias = rand_array((size_t)oc), *r = rand_array(no);
    float *ain = abs_copy(in, ni), *aw = abs_copy(wt, nw), *ar = abs_copy(r, no), *ab = abs_copy(bias, (size_t)oc);
    float *ref = zeros(no), *mag = zeros(no);
    cnn_ref_conv2d(in, n, h, w, c, wt, bias, oc, k, stride, pad, pad, g.oh, g.ow, ref);
    cnn_ref_conv2d(ain, n, h, w, c, aw, ab, oc, k, stride, pad, pad, g.oh, g.ow, mag);
    float *rdin = zeros(ni), *rdw = zeros(nw), *mdin = zeros(ni), *mdw = zeros(nw);
    ref_conv2d_backward(&g, in, wt, r, rdin, rdw, NULL);
    ref_conv2d_backward(&g, ain, aw, ar, mdin, mdw, NULL);
    float *first_out = zeros(no);
    for (int threads = 1; threads <= 3; threads += 2) {
        float *wp = zeros(tk_conv_packed_floats(&g, 0)), *wf = zeros(tk_conv_packed_floats(&g, 1));
        float *scratch = zeros(tk_conv_scratch_floats(&g, threads));
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        float *out[2], *dw[2], *din[2];
        tk_conv_pack_forward(&g, wt, wp);
        tk_conv_pack_backward(&g, wt, wf);
        for (int run = 0; run < 2; run++) {
            out[run] = zeros(no), dw[run] = zeros(nw), din[run] = zeros(ni);
            tk_conv_forward(&g, in, wp, bias, out[run], scratch, pool);
            tk_conv_backward_weight(&g, in, r, dw[run], NULL, scratch, pool);
            tk_conv_backward_input(&g, r, wf, wt, din[run], scratch, pool);
        }
        const double ef = worst_ratio(out[0], ref, mag, no, (double)k * k * c);
        const double ew = worst_ratio(dw[0], rdw, mdw, nw, (double)n * g.oh * g.ow);
        /* Strides other than 1: the input gradient is the f32 GEMM. */
        const double ei = worst_ratio(din[0], rdin, mdin, ni, (double)k * k * oc);
        CHECKF(ef <= 1 && ew <= 1 && ei <= 1,
               "%s bf16 conv n%d %dx%dx%d->%d k%d s%d, %d threads: error forward %.3g, dw %.3g, "
               "din %.3g of the bound", kern->name, n, h, w, c, oc, k, stride, threads, ef, ew, ei);
        CHECKF(memcmp(out[0], out[1], no * 4) == 0 && memcmp(dw[0], dw[1], nw * 4) == 0 &&
                   memcmp(din[0], din[1], ni * 4) == 0,
               "%s bf16 conv, %d threads: a second run differs", kern->name, threads);
        {
            /* The input kept rounded by the forward pass for the weight
             * gradient, and the output gradient by the weight gradient for
             * the input gradient: the same bytes as rounding them again. */
            tk_conv gk = g;
            uint16_t *keep = calloc(tk_conv_input_bf16_halves(&g) + 1, sizeof *keep);
            uint16_t *dkeep = calloc(tk_conv_dout_bf16_halves(&g) + 1, sizeof *dkeep);
            gk.input_bf16 = keep;
            gk.dout_bf16 = dkeep;
            float *out2 = zeros(no), *dw2 = zeros(nw), *din2 = zeros(ni);
            tk_conv_forward(&gk, in, wp, bias, out2, scratch, pool);
            tk_conv_backward_weight(&gk, in, r, dw2, NULL, scratch, pool);
            tk_conv_backward_input(&gk, r, wf, wt, din2, scratch, pool);
            CHECKF(memcmp(out[0], out2, no * 4) == 0 && memcmp(dw[0], dw2, nw * 4) == 0 &&
                       memcmp(din[0], din2, ni * 4) == 0,
                   "%s bf16 conv, %d threads: with the input and output gradient kept rounded, "
                   "other bytes", kern->name, threads);
            free(keep); free(dkeep); free(out2); free(dw2); free(din2);
        }
        {
            /* The output's statistics taken on the way (tk_conv.stats, for
             * a batch-norm after it): the same output bytes, means and
             * variances within 1e-9 of those of the output in double. */
            tk_conv gs = g;
            double *st = calloc(tk_conv_stats_doubles(&g), sizeof *st), worst = 0.0;
            float *o2 = zeros(no);
            gs.stats = st;
            tk_conv_forward(&gs, in, wp, bias, o2, scratch, pool);
            const size_t pix = (size_t)n * g.oh * g.ow;
            for (int ch = 0; ch < oc; ch++) {
                double m = 0.0, v = 0.0;
                for (size_t p = 0; p < pix; p++) m += o2[p * oc + ch];
                m /= (double)pix;
                for (size_t p = 0; p < pix; p++) v += (o2[p * oc + ch] - m) * (o2[p * oc + ch] - m);
                v /= (double)pix;
                worst = fmax(worst, fabs(st[ch] - m) / (fabs(m) + sqrt(v) + 1e-30));
                worst = fmax(worst, fabs(st[oc + ch] / (double)pix - v) / (v + m * m + 1e-30));
            }
            CHECKF(memcmp(o2, out[0], no * 4) == 0 && worst < 1e-9,
                   "%s bf16 conv, %d threads, statistics on the way: same output %d, error %g",
                   kern->name, threads, memcmp(o2, out[0], no * 4) == 0, worst);
            free(st); free(o2);
        }
        if (threads == 1) memcpy(first_out, out[0], no * 4);
        else
            CHECKF(memcmp(first_out, out[0], no * 4) == 0,
                   "%s bf16 conv forward: 1 and 3 threads differ", kern->name);
        for (int run = 0; run < 2; run++) free(out[run]), free(dw[run]), free(din[run]);
        free(wp); free(wf); free(scratch);
        cnn_pool_free(pool);
    }
    free(first_out);
    free(in); free(wt); free(bias); free(r); free(ain); free(aw); free(ar); free(ab);
    free(ref); free(mag); free(rdin); free(rdw); free(mdin); free(mdw);
}

/* A convolution with fewer than 4 input (or output) channels runs in f32
 * in bf16 mode: the f32 bytes, forward and both gradients. */
static void test_conv_few_channels(const cnn_kernels *kern, int c, int oc)
{
    const int n = 2, h = 9, w = 7, k = 3;
    tk_conv g[2];
    for (int p = 0; p < 2; p++)
        g[p] = (tk_conv){n, h, w, c, oc, k, 1, 1, 1, h, w, kern,
                         p ? CNN_PRECISION_BF16 : CNN_PRECISION_F32, NULL, NULL, NULL};
    CHECKF(!tk_conv_is_bf16(&g[1]), "%s: a %d->%d convolution is bf16", kern->name, c, oc);
    const size_t ni = (size_t)n * h * w * c, nw = (size_t)oc * c * k * k;
    const size_t no = (size_t)n * h * w * oc;
    float *in = rand_array(ni), *wt = rand_array(nw), *r = rand_array(no), *res[2][3];
    for (int p = 0; p < 2; p++) {
        float *wp = zeros(tk_conv_packed_floats(&g[p], 0));
        float *wf = zeros(tk_conv_packed_floats(&g[p], 1));
        float *scratch = zeros(tk_conv_scratch_floats(&g[p], 1));
        tk_conv_pack_forward(&g[p], wt, wp);
        tk_conv_pack_backward(&g[p], wt, wf);
        res[p][0] = zeros(no), res[p][1] = zeros(nw), res[p][2] = zeros(ni);
        tk_conv_forward(&g[p], in, wp, NULL, res[p][0], scratch, NULL);
        tk_conv_backward_weight(&g[p], in, r, res[p][1], NULL, scratch, NULL);
        tk_conv_backward_input(&g[p], r, wf, wt, res[p][2], scratch, NULL);
        free(wp); free(wf); free(scratch);
    }
    CHECKF(memcmp(res[0][0], res[1][0], no * 4) == 0 && memcmp(res[0][1], res[1][1], nw * 4) == 0 &&
               memcmp(res[0][2], res[1][2], ni * 4) == 0,
           "%s: a %d->%d convolution in bf16 mode is not the f32 one", kern->name, c, oc);
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 3; q++) free(res[p][q]);
    free(in); free(wt); free(r);
}

static void test_dense(const cnn_kernels *kern, int n, int in_f, int units)
{
    const size_t ni = (size_t)n * in_f, nw = (size_t)in_f * units, no = (size_t)n * units;
    float *in = rand_array(ni), *w = rand_array(nw), *b = rand_array((size_t)units), *r = rand_array(no);
    float *ain = abs_copy(in, ni), *aw = abs_copy(w, nw), *ab = abs_copy(b, (size_t)units), *ar = abs_copy(r, no);
    float *ref = zeros(no), *mag = zeros(no), *rdin = zeros(ni), *rdw = zeros(nw);
    float *mdin = zeros(ni), *mdw = zeros(nw);
    cnn_ref_dense(in, n, in_f, w, b, units, ref);
    cnn_ref_dense(ain, n, in_f, aw, ab, units, mag);
    ref_dense_backward(in, r, n, in_f, w, units, rdin, rdw, NULL);
    ref_dense_backward(ain, ar, n, in_f, aw, units, mdin, mdw, NULL);
    float *scratch = zeros(tk_dense_bf16_scratch_floats(n, in_f, units));
    for (int threads = 1; threads <= 3; threads += 2) {
        float *out = zeros(no), *din = zeros(ni), *dw = zeros(nw), *db = zeros((size_t)units);
        cnn_pool *pool = NULL;
        CHECK(cnn_pool_create(threads, &pool) == CNN_OK);
        tk_dense_forward_bf16(kern, in, n, in_f, w, b, units, out, scratch, pool);
        tk_dense_backward_bf16(kern, in, r, n, in_f, w, units, din, dw, db, scratch, pool);
        cnn_pool_free(pool);
        const double ef = worst_ratio(out, ref, mag, no, in_f);
        const double ew = worst_ratio(dw, rdw, mdw, nw, n), ei = worst_ratio(din, rdin, mdin, ni, units);
        CHECKF(ef <= 1 && ew <= 1 && ei <= 1,
               "%s bf16 dense %dx%d->%d, %d threads: error forward %.3g, dw %.3g, din %.3g of the "
               "bound", kern->name, n, in_f, units, threads, ef, ew, ei);
        free(out); free(din); free(dw); free(db);
    }
    free(scratch);
    free(in); free(w); free(b); free(r); free(ain); free(aw); free(ab); free(ar);
    free(ref); free(mag); free(rdin); free(rdw); free(mdin); free(mdw);
}

/* Inference: a bf16 net's logits near the f32 net's, the same bytes with
 * 1 and 3 threads and at batch 1 and 4, and not f32's bytes.  Through
 * five conv layers no per-element bound is derived: a sanity bound of 3%
 * of the largest logit (each layer's products are within 2^-7 relative,
 * five layers about 4% if every error added up in the same direction). */
static void test_net(int isa)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec("catdog-v1", &m));
    if (!m) return;
    CHECK_OK(cnn_model_init(m, 5));
    const size_t in_size = (size_t)m->in_h * m->in_w * m->in_c;
    enum { B = 4 };
    float *x = malloc(in_size * B * sizeof *x), l32[B], l16[B], l16b[B], one;
    for (size_t i = 0; i < in_size * B; i++) x[i] = (float)tk_uniform(4242, i);
    cnn_net_options o;
    cnn_net_options_init(&o);
    o.isa = isa;
    cnn_net *n32 = NULL, *n16 = NULL;
    CHECK_OK(cnn_net_create_opts(m, B, &o, &n32));
    o.precision = CNN_PRECISION_BF16;
    CHECK_OK(cnn_net_create_opts(m, B, &o, &n16));
    if (n32 && n16) {
        CHECK(cnn_net_precision(n16) == CNN_PRECISION_BF16);
        CHECK_OK(cnn_net_forward(n32, x, B, l32));
        CHECK_OK(cnn_net_set_threads(n16, 1));
        CHECK_OK(cnn_net_forward(n16, x, B, l16));
        CHECK_OK(cnn_net_set_threads(n16, 3));
        CHECK_OK(cnn_net_forward(n16, x, B, l16b));
        CHECKF(memcmp(l16, l16b, sizeof l16) == 0, "%s bf16 net: 1 and 3 threads differ", set_name(isa));
        CHECK_OK(cnn_net_forward(n16, x + in_size, 1, &one));
        CHECKF(memcmp(&one, &l16[1], sizeof one) == 0, "%s bf16 net: batch 1 and 4 differ", set_name(isa));
        double lo = l32[0], hi = l32[0], worst = 0;
        for (int i = 0; i < B; i++) {
            lo = fmin(lo, l32[i]), hi = fmax(hi, l32[i]);
            worst = fmax(worst, fabs((double)l16[i] - l32[i]));
        }
        const double big = fmax(fabs(lo), fabs(hi));
        printf("  %s net: bf16 vs f32 logits, largest difference %.3g (largest logit %.3g)\n",
               set_name(isa), worst, big);
        CHECKF(worst <= 0.03 * big + 1e-6, "%s bf16 net: logits differ by %.3g", set_name(isa), worst);
        CHECKF(memcmp(l16, l32, sizeof l16) != 0, "%s bf16 net: exactly the f32 logits", set_name(isa));
    }
    cnn_net_free(n32);
    cnn_net_free(n16);
    cnn_model_free(m);
    free(x);
}

int main(void)
{
    test_rounding();
    printf("bf16 paths:");
    for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
        printf(" %s (%s)", set_name(isa),
               !cnn_kernels_for((cnn_isa)isa)       ? "skipped: this CPU, OS or build cannot run it"
               : cnn_isa_has_bf16((cnn_isa)isa)     ? "bf16 instructions"
                                                    : "emulated");
    printf("\n");
    for (int isa = 0; isa < CNN_ISA_COUNT; isa++) {
        const cnn_kernels *k = cnn_kernels_for((cnn_isa)isa);
        if (!k) continue;
        CHECK(cnn_isa_has_bf16((cnn_isa)isa) == (k->bf16_loop != NULL));
        test_gemm(k);
        test_conv(k, 2, 7, 6, 3, 5, 3, 1, 1);
        test_conv(k, 2, 9, 8, 8, 20, 3, 1, 1);
        test_conv(k, 1, 9, 9, 6, 33, 3, 2, 1);
        test_conv(k, 3, 5, 5, 16, 32, 1, 1, 0);
        test_conv_few_channels(k, 3, 16);
        test_conv_few_channels(k, 8, 2);
        {
            tk_conv g8 = {1, 5, 5, 4, 4, 3, 1, 1, 1, 5, 5, k, CNN_PRECISION_BF16, NULL, NULL, NULL};
            CHECKF(tk_conv_is_bf16(&g8), "%s: a 4->4 convolution is not bf16", k->name);
        }
        test_dense(k, 5, 37, 3);
        test_dense(k, 4, 64, 1);
        test_net(isa);
    }
    double peak;
    for (int isa = 0; isa < CNN_ISA_COUNT; isa++) {
        if (!cnn_kernels_for((cnn_isa)isa) || !cnn_isa_has_bf16((cnn_isa)isa)) {
            CHECK_FAILS(cnn_isa_bf16_peak((cnn_isa)isa, &peak), CNN_ERR_UNSUPPORTED, set_name(isa));
            continue;
        }
        CHECK_OK(cnn_isa_bf16_peak((cnn_isa)isa, &peak));
        CHECKF(peak > 1e9 && peak < 1e14, "%s bf16 peak %g", set_name(isa), peak);
    }
    cnn_precision p;
    CHECK_OK(cnn_precision_parse("bf16", &p));
    CHECK(p == CNN_PRECISION_BF16);
    CHECK_FAILS(cnn_precision_parse("fp8", &p), CNN_ERR_ARG, "fp8");
    return check_done("test_bf16");
}
