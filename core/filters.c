/* filters.c - what each filter looks for: activation maximisation.
 *
 * A picture is optimised so that one channel of a conv layer (its mean
 * pre-ReLU activation) or the logit gets as large as it goes.  The
 * gradient comes from the batched backward pass to the input (cnn_grad);
 * this file owns everything around it:
 *
 *   spectrum G (per colour, Fourier coefficients scaled by 1/f)
 *     -> z = Re(sum over (ky, kx) of s(ky, kx) G e^{2 pi i (ky y / H + kx x / W)})
 *     -> t = C z per pixel (colour decorrelation, below)
 *     -> p = sigmoid(t), the picture in [0, 1]
 *     -> a random shift, scale and rotation, sampled bilinearly (wrapping
 *        around) at the network's input size, the model's preprocessing
 *        applied: the network's input x
 *   loss = -objective(x) + TV_WEIGHT * TV(p) + L2_WEIGHT * L2(p)
 *
 * where a label's objective is its logit (sign flipped for labels[0]) and
 * a channel's is its mean minus CONTRAST times the soft maximum of its
 * layer's means on the same input (taken from the gradient's own
 * forward pass every CONTRAST_EVERY steps), so that the picture shows what this channel
 * responds to more than the rest of its layer does,
 * and Adam on G.  The backward pass runs the same chain in reverse: the
 * adjoint of the bilinear sampling (each input pixel's gradient scattered
 * to the four picture pixels it read, with the same weights), of the
 * sigmoid, of C (its transpose) and of the inverse DFT (a forward DFT).
 * The DFTs are separable (columns, then rows), each side a mixed-radix
 * FFT: O(H W (sum of the prime factors of H and W)) per colour (for
 * 150 x 150: 15 complex multiply-adds per value and side instead of 150).
 *
 * Why this parameterisation (the known failures it avoids): optimising
 * pixels directly gives high-frequency noise, worst on batch-norm models;
 * the 1/f scaling lets Adam move every frequency as far as natural photos
 * do, and the colour matrix does the same for colours.  The pre-ReLU
 * objective has a gradient even where the channel is off (a post-ReLU
 * mean is stuck at 0 there and gives gray pictures).  The random
 * transforms keep the picture from exploiting single-pixel patterns.
 *
 * Threads: one pool, the gradient's (cnn_grad_pool): its passes split
 * each layer, and this file's work (the chain above and Adam, the
 * contrast's seeds) takes a picture per item, each picture computed the
 * same way whichever thread takes it, so the pictures do not depend on
 * the thread count (test_filters compares 1, 2 and 3 threads). */
#include "cnn.h"
#include "cnn_internal.h"
#include "layers.h"
#include "pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FILTERS_PI 3.14159265358979323846

/* Colour decorrelation, derived by tests/tools/colour-decorrelation from
 * the 22,500 training photos of the data set (160x160, 576 million
 * pixels, RGB scaled to 0..1): their covariance is
 *     0.067209 0.061329 0.057041
 *     0.061329 0.064080 0.061048
 *     0.057041 0.061048 0.065146
 * (eigenvalues 0.185101, 0.009159, 0.002175); C = U sqrt(L) (U the
 * eigenvectors as columns, largest first, each signed so that its
 * largest component is positive) divided by its largest column norm.
 * Independent unit values z give t = C z with the photos' colour
 * correlations: mostly brightness, a little colour. */
static const float colour_matrix[3][3] = {
    {0.5790f, 0.1620f, -0.0397f},
    {0.5816f, -0.0121f, 0.0880f},
    {0.5713f, -0.1519f, -0.0493f},
};

/* The penalties are means over the picture (TV: squared differences to
 * the right and lower neighbours; L2: (p - 0.5)^2), so these weights
 * hold at any size.  Tried on the shipped model's conv2 (96 steps):
 * without penalties up to these weights the activations reached
 * changed by under 10%; ten times more (TV 5, L2 2) cost colour
 * channels 20% and turned some pictures gray.  Learning rate 0.05 and
 * the spectrum's start (normal, spread 0.01) as in Lucid's
 * (Olah et al. 2017) description. */
#define TV_WEIGHT 1.0
#define L2_WEIGHT 0.2
#define LEARNING_RATE 0.05
/* The weight of the layer's soft maximum in a channel's objective
 * (contrast_seeds()).  On the shipped model's conv5 (128 steps, 3
 * channels spread over the layer) the plain channel mean reached 20x the
 * best of 40 validation photos but ranked its channel 16th to 28th of
 * 256 on its own picture (most channels of a deep layer rise together);
 * 0.5 ranked them 1st to 16th, 0.9 1st to 4th at about 60% of the
 * activation, still 8x the best photo. */
#define CONTRAST 0.9
/* The soft maximum's temperature, in activation units (batch-norm
 * outputs are about unit-sized on photos): with 1, conv3's channel 0
 * still ranked 7th of 128 (its rivals shared the push-down); with 0.25
 * the four channels tried (0, 32, 64, 96; 256 steps) all ranked 1st.
 * The layer's means are measured every CONTRAST_EVERY steps (from the
 * gradient's forward pass, which stops at the layer) and used in between: at
 * temperature 1, every step and every 4 ranked those four channels the
 * same (7th, 1st, 4th, 3rd). */
#define CONTRAST_TEMPERATURE 0.25
#define CONTRAST_EVERY 4
#define INIT_STD 0.01
#define JITTER 0.05      /* of the side, each way */
#define SCALE_MIN 0.9
#define SCALE_MAX 1.1
#define ROTATE_DEG 10.0

/* ------------------------------------------------------------------ */
/* The channel probe: forward passes of a copy whose ReLUs after the   */
/* conv are the identity                                              */
/* ------------------------------------------------------------------ */

struct cnn_channel_probe {
    cnn_model *copy;
    cnn_net *net;
    int tap;      /* -1: the logit */
    int channels;
    int max_batch;
    float *logits;
};

/* The layer whose output the objective of conv `layer` reads: the last
 * batch-norm in the run of batch-norm and dropout layers right after it,
 * else the conv itself. */
static int target_layer(const cnn_model *m, int layer)
{
    int t = layer;
    for (int i = layer + 1; i < m->n_layers; i++) {
        cnn_layer_type ty = m->layers[i].type;
        if (ty == CNN_LAYER_BATCHNORM) t = i;
        else if (ty != CNN_LAYER_DROPOUT) break;
    }
    return t;
}

static cnn_status check_conv(const cnn_model *m, int layer, const char *what)
{
    if (layer < -1 || layer >= m->n_layers)
        return cnn_fail(CNN_ERR_ARG, "%s: layer %d does not exist (0 .. %d, or -1 for the logit)",
                        what, layer, m->n_layers - 1);
    if (layer >= 0 && m->layers[layer].type != CNN_LAYER_CONV2D)
        return cnn_fail(CNN_ERR_ARG, "%s: layer %s is a %s, not a conv layer", what,
                        m->layers[layer].name, cnn_layer_type_name(m->layers[layer].type));
    return CNN_OK;
}

cnn_status cnn_channel_probe_create(const cnn_model *m, int layer, int max_batch,
                                    const cnn_net_options *o, int threads,
                                    cnn_channel_probe **out)
{
    if (!m || !out) return cnn_fail(CNN_ERR_ARG, "cnn_channel_probe_create: NULL argument");
    *out = NULL;
    cnn_status st = check_conv(m, layer, "channel probe");
    if (st != CNN_OK) return st;
    if (max_batch < 1 || max_batch > 4096)
        return cnn_fail(CNN_ERR_ARG, "channel probe: batch %d is outside 1 .. 4096", max_batch);
    cnn_channel_probe *p = cnn_alloc(1, sizeof *p);
    if (!p) return cnn_fail(CNN_ERR_NOMEM, "channel probe: out of memory");
    p->max_batch = max_batch;
    p->tap = -1;
    p->channels = 1;
    p->logits = cnn_alloc((size_t)max_batch, sizeof *p->logits);
    if (!p->logits) {
        st = cnn_fail(CNN_ERR_NOMEM, "channel probe: out of memory");
        goto fail;
    }
    if ((st = cnn_model_copy(m, &p->copy)) != CNN_OK) goto fail;
    if (layer >= 0) {
        /* The ReLUs of the conv's tap become dropouts, the identity at
         * inference, which still belong to the tap: the tap is then the
         * pre-ReLU map.  Only layers after the tap see the difference,
         * and nothing here reads their output. */
        for (int i = layer + 1; i < p->copy->n_layers; i++) {
            cnn_layer *L = &p->copy->layers[i];
            if (L->type == CNN_LAYER_RELU) {
                L->type = CNN_LAYER_DROPOUT;
                L->rate = 0.0f;
            } else if (L->type != CNN_LAYER_BATCHNORM && L->type != CNN_LAYER_DROPOUT) {
                break;
            }
        }
        if ((st = cnn_model_find_conv(p->copy, m->layers[layer].name, NULL, &p->tap)) != CNN_OK)
            goto fail;
        p->channels = m->layers[layer].out_c;
    }
    if ((st = cnn_net_create_opts(p->copy, max_batch, o, &p->net)) != CNN_OK) goto fail;
    if ((st = cnn_net_set_threads(p->net, threads)) != CNN_OK) goto fail;
    *out = p;
    return CNN_OK;

fail:
    cnn_channel_probe_free(p);
    return cnn_fail_prefix(st, "channel probe");
}

int cnn_channel_probe_channels(const cnn_channel_probe *p) { return p ? p->channels : 0; }

cnn_status cnn_channel_probe_run(cnn_channel_probe *p, const float *input, int n, float *means)
{
    if (!p || !input || !means) return cnn_fail(CNN_ERR_ARG, "cnn_channel_probe_run: NULL argument");
    if (n < 1 || n > p->max_batch)
        return cnn_fail(CNN_ERR_ARG, "channel probe: %d inputs, the probe takes 1 .. %d", n,
                        p->max_batch);
    cnn_status st = cnn_net_forward(p->net, input, n, p->logits);
    if (st != CNN_OK) return st;
    if (p->tap < 0) {
        memcpy(means, p->logits, (size_t)n * sizeof *means);
        return CNN_OK;
    }
    cnn_tensor_view t;
    if ((st = cnn_net_tap(p->net, p->tap, &t, NULL)) != CNN_OK) return st;
    const size_t cells = (size_t)t.h * (size_t)t.w;
    double *acc = cnn_alloc((size_t)t.c, sizeof *acc);
    if (!acc) return cnn_fail(CNN_ERR_NOMEM, "channel probe: out of memory");
    for (int j = 0; j < n; j++) {
        memset(acc, 0, (size_t)t.c * sizeof *acc);
        const float *d = t.data + (size_t)j * cells * (size_t)t.c;
        for (size_t q = 0; q < cells; q++)
            for (int k = 0; k < t.c; k++) acc[k] += d[q * (size_t)t.c + (size_t)k];
        for (int k = 0; k < t.c; k++)
            means[(size_t)j * (size_t)t.c + (size_t)k] = (float)(acc[k] / (double)cells);
    }
    free(acc);
    return CNN_OK;
}

void cnn_channel_probe_free(cnn_channel_probe *p)
{
    if (!p) return;
    cnn_net_free(p->net);
    cnn_model_free(p->copy);
    free(p->logits);
    free(p);
}

cnn_status cnn_conv_channel_gains(const cnn_model *m, int layer, float *gains)
{
    if (!m || !gains) return cnn_fail(CNN_ERR_ARG, "cnn_conv_channel_gains: NULL argument");
    cnn_status st = check_conv(m, layer, "channel gains");
    if (st != CNN_OK) return st;
    if (layer < 0) return cnn_fail(CNN_ERR_ARG, "channel gains: the logit has no channels");
    const cnn_layer *L = &m->layers[layer];
    if (!L->weight) return cnn_fail(CNN_ERR_ARG, "channel gains: the model has no parameters");
    const size_t per = (size_t)L->in_c * (size_t)L->kernel * (size_t)L->kernel;
    const cnn_layer *bn = NULL;
    int t = target_layer(m, layer);
    if (t != layer) bn = &m->layers[t];
    for (int o = 0; o < L->filters; o++) {
        double s = 0.0;
        for (size_t i = 0; i < per; i++) {
            double w = L->weight[(size_t)o * per + i];
            s += w * w;
        }
        double g = sqrt(s);
        if (bn && bn->weight && bn->var)
            g *= fabs((double)bn->weight[o]) / sqrt((double)bn->var[o] + (double)bn->eps);
        gains[o] = (float)g;
    }
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

void cnn_filters_options_init(cnn_filters_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->layer = -1;
    o->label = 1;
    o->steps = 256;
    o->size = 0;
    o->seed = 0;
    o->batch = 16;
    o->threads = 0;
    o->precision = cnn_isa_has_bf16(cnn_isa_default()) ? CNN_PRECISION_BF16 : CNN_PRECISION_F32;
}

static cnn_status check_options(const cnn_model *m, const cnn_filters_options *o)
{
    cnn_status st = check_conv(m, o->layer, "filters");
    if (st != CNN_OK) return st;
    if (o->layer < 0 && o->label != 0 && o->label != 1)
        return cnn_fail(CNN_ERR_ARG, "filters: label %d is not 0 or 1", o->label);
    if (o->steps < 1 || o->steps > 100000)
        return cnn_fail(CNN_ERR_ARG, "filters: %d steps is outside 1 .. 100000", o->steps);
    if (o->size != 0 && (o->size < 16 || o->size > CNN_MAX_DIM))
        return cnn_fail(CNN_ERR_ARG, "filters: size %d is outside 16 .. %d", o->size, CNN_MAX_DIM);
    if (o->batch < 1 || o->batch > 256)
        return cnn_fail(CNN_ERR_ARG, "filters: batch %d is outside 1 .. 256", o->batch);
    if (o->threads < 0 || o->threads > 1024)
        return cnn_fail(CNN_ERR_ARG, "filters: %d threads is outside 0 .. 1024", o->threads);
    if (o->precision != CNN_PRECISION_F32 && o->precision != CNN_PRECISION_BF16)
        return cnn_fail(CNN_ERR_ARG, "filters: unknown precision %d", (int)o->precision);
    if (m->in_c != 1 && m->in_c != 3)
        return cnn_fail(CNN_ERR_UNSUPPORTED, "filters: the model takes %d input channels "
                        "(1 or 3 can be shown)", m->in_c);
    return CNN_OK;
}

cnn_status cnn_filters_picture_size(const cnn_model *m, const cnn_filters_options *o,
                                    int *width, int *height)
{
    if (!m || !o || !width || !height)
        return cnn_fail(CNN_ERR_ARG, "cnn_filters_picture_size: NULL argument");
    cnn_status st = check_options(m, o);
    if (st != CNN_OK) return st;
    *width = o->size ? o->size : m->in_w;
    *height = o->size ? o->size : m->in_h;
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64, one stream per picture                  */
/* ------------------------------------------------------------------ */

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double next_uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

static double next_normal(uint64_t *s)
{
    double u = next_uniform(s), v = next_uniform(s);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * FILTERS_PI * v);
}

/* ------------------------------------------------------------------ */
/* The run                                                            */
/* ------------------------------------------------------------------ */

typedef struct {
    double a00, a01, a10, a11; /* input pixel offset -> picture offset */
    double cx, cy;             /* picture point of the input's centre */
} transform;

/* One side's DFT: its prime factors and e^{2 pi i m / n}, m < n. */
typedef struct {
    int n, nf, f[32];
    float *cs, *sn;
} fft_plan;

/* One picture being optimised. */
typedef struct {
    uint64_t rng;
    float *g, *m1, *m2;  /* spectrum (re, im), Adam's moments: colours x H x K x 2 */
    float *dg;           /* its gradient */
    float *z;            /* colours x H x W, before the colour matrix */
    float *p;            /* H x W x colours, the picture in [0, 1] */
    float *dp;           /* dloss/dp */
    float *fa[2], *fb[2]; /* the DFTs' buffers (re, im), H x W each */
    transform t;
} picture;

typedef struct {
    const cnn_model *m;
    const cnn_filters_options *o;
    int W, H, K;         /* picture size, K = W / 2 + 1 columns of the spectrum */
    int C;               /* colours: 1 or 3 */
    int in_h, in_w;
    size_t spec;         /* floats of one spectrum: C * H * K * 2 */
    size_t pix;          /* H * W */
    float *scale;        /* H x K: 1/f */
    fft_plan plan_y, plan_x; /* sides H and W */
    float in_mul[3], in_add[3]; /* x = p * in_mul + in_add */
    picture *pics;
    int n_pics;          /* in the batch now */
    float *input;        /* batch x in_h x in_w x in_c */
    float *grad;         /* the same */
    int step;            /* Adam's step count, from 1 */
} run;

/* ------------------------------------------------------------------ */
/* The DFTs: a mixed-radix Stockham FFT (every prime factor of the    */
/* side its own pass: N (2 + 3 + 5 + 5) for a side of 150 instead of  */
/* N^2), run on `count` transforms at once, interleaved (element t of  */
/* transform v at [t * count + v]) so that the inner loop is one flat  */
/* run over the transforms                                           */
/* ------------------------------------------------------------------ */

/* Pass of radix R after passes of total length Ns: out[s] of each
 * butterfly j is sum_r in[j + r N/R] e^{-+2 pi i r (k + s Ns) / (Ns R)},
 * k = j mod Ns, written at (j / Ns) Ns R + k + s Ns (Stockham's
 * autosort: the result comes out in natural order). */
static void fft_pass(const fft_plan *p, int inverse, size_t count, int Ns, int R,
                     const float *restrict ir, const float *restrict ii,
                     float *restrict outr, float *restrict outi)
{
    const int N = p->n, NR = N / R, step = N / (Ns * R);
    /* The transforms in fours, written out so that the compiler's
     * straight-line vectoriser can take them at the baseline ISA (each
     * value's operations and their order are those of the plain loop). */
    const size_t v4 = count & ~(size_t)3;
    for (int j = 0; j < NR; j++) {
        const int k = j % Ns;
        const size_t d0 = (size_t)(j / Ns) * (size_t)Ns * (size_t)R + (size_t)k;
        for (int s = 0; s < R; s++) {
            float *restrict dr = outr + (d0 + (size_t)s * (size_t)Ns) * count;
            float *restrict di = outi + (d0 + (size_t)s * (size_t)Ns) * count;
            const float *sr = ir + (size_t)j * count, *si = ii + (size_t)j * count;
            memcpy(dr, sr, count * sizeof *dr);
            memcpy(di, si, count * sizeof *di);
            const int64_t inc = (int64_t)k * step + (int64_t)s * NR;
            for (int r = 1; r < R; r++) {
                const int m = (int)(((int64_t)r * inc) % N);
                const float c = p->cs[m], sn = inverse ? p->sn[m] : -p->sn[m];
                sr = ir + (size_t)(j + r * NR) * count;
                si = ii + (size_t)(j + r * NR) * count;
                size_t v = 0;
                for (; v < v4; v += 4) {
                    const float a0 = sr[v], a1 = sr[v + 1], a2 = sr[v + 2], a3 = sr[v + 3];
                    const float b0 = si[v], b1 = si[v + 1], b2 = si[v + 2], b3 = si[v + 3];
                    dr[v] += a0 * c - b0 * sn;
                    dr[v + 1] += a1 * c - b1 * sn;
                    dr[v + 2] += a2 * c - b2 * sn;
                    dr[v + 3] += a3 * c - b3 * sn;
                    di[v] += a0 * sn + b0 * c;
                    di[v + 1] += a1 * sn + b1 * c;
                    di[v + 2] += a2 * sn + b2 * c;
                    di[v + 3] += a3 * sn + b3 * c;
                }
                for (; v < count; v++) {
                    dr[v] += sr[v] * c - si[v] * sn;
                    di[v] += sr[v] * sn + si[v] * c;
                }
            }
        }
    }
}

/* The unnormalised DFT (inverse: e^{+2 pi i t f / N}) of count
 * interleaved transforms in buf[0] (re, im); buf[1] is scratch.
 * Returns the index of the pair that holds the result. */
static int fft_run(const fft_plan *p, int inverse, size_t count, float *buf[2][2])
{
    int at = 0, Ns = 1;
    for (int f = 0; f < p->nf; f++) {
        fft_pass(p, inverse, count, Ns, p->f[f], buf[at][0], buf[at][1], buf[1 - at][0],
                 buf[1 - at][1]);
        at = 1 - at;
        Ns *= p->f[f];
    }
    return at;
}

static cnn_status fft_plan_init(fft_plan *p, int n)
{
    p->n = n;
    p->nf = 0;
    for (int q = n, d = 2; q > 1;) {
        if (q % d == 0) {
            if (p->nf == (int)(sizeof p->f / sizeof p->f[0]))
                return cnn_fail(CNN_ERR_LIMIT, "filters: side %d has too many factors", n);
            p->f[p->nf++] = d;
            q /= d;
        } else {
            d++;
        }
    }
    p->cs = cnn_alloc((size_t)n, sizeof *p->cs);
    p->sn = cnn_alloc((size_t)n, sizeof *p->sn);
    if (!p->cs || !p->sn) return cnn_fail(CNN_ERR_NOMEM, "filters: out of memory");
    for (int m = 0; m < n; m++) {
        double a = 2.0 * FILTERS_PI * (double)m / n;
        p->cs[m] = (float)cos(a);
        p->sn[m] = (float)sin(a);
    }
    return CNN_OK;
}

/* The spectrum of one colour -> z (one H x W plane): the columns'
 * inverse DFTs over ky (K transforms of length H), then the rows' over kx
 * (H transforms of length W, the half spectrum padded with zeros, the
 * real part kept). */
static void spectrum_to_plane(const run *r, picture *pc, int c)
{
    const int H = r->H, W = r->W, K = r->K;
    const float *g = pc->g + (size_t)c * (size_t)H * (size_t)K * 2;
    float *z = pc->z + (size_t)c * r->pix;
    float *buf[2][2] = {{pc->fa[0], pc->fa[1]}, {pc->fb[0], pc->fb[1]}};
    const size_t hk = (size_t)H * (size_t)K;
    for (size_t i = 0; i < hk; i++) {
        buf[0][0][i] = g[2 * i] * r->scale[i];
        buf[0][1][i] = g[2 * i + 1] * r->scale[i];
    }
    int at = fft_run(&r->plan_y, 1, (size_t)K, buf);
    /* [y][kx] -> [kx][y], zeros for kx >= K. */
    const float *tr = buf[at][0], *ti = buf[at][1];
    float *xr = buf[1 - at][0], *xi = buf[1 - at][1];
    for (int y = 0; y < H; y++)
        for (int kx = 0; kx < K; kx++) {
            xr[(size_t)kx * (size_t)H + (size_t)y] = tr[(size_t)y * (size_t)K + (size_t)kx];
            xi[(size_t)kx * (size_t)H + (size_t)y] = ti[(size_t)y * (size_t)K + (size_t)kx];
        }
    memset(xr + hk, 0, (r->pix - hk) * sizeof *xr);
    memset(xi + hk, 0, (r->pix - hk) * sizeof *xi);
    float *buf2[2][2] = {{xr, xi}, {buf[at][0], buf[at][1]}};
    at = fft_run(&r->plan_x, 1, (size_t)H, buf2);
    const float *zr = buf2[at][0];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            z[(size_t)y * (size_t)W + (size_t)x] = zr[(size_t)x * (size_t)H + (size_t)y];
}

/* The adjoint: dz (one plane, in pc->z's place for colour c, passed in)
 * -> the spectrum's gradient of colour c: the rows' forward DFTs (kx < K
 * kept), then the columns'. */
static void plane_to_spectrum_grad(const run *r, picture *pc, const float *dz, int c)
{
    const int H = r->H, W = r->W, K = r->K;
    float *dg = pc->dg + (size_t)c * (size_t)H * (size_t)K * 2;
    float *buf[2][2] = {{pc->fa[0], pc->fa[1]}, {pc->fb[0], pc->fb[1]}};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            buf[0][0][(size_t)x * (size_t)H + (size_t)y] = dz[(size_t)y * (size_t)W + (size_t)x];
    memset(buf[0][1], 0, r->pix * sizeof(float));
    int at = fft_run(&r->plan_x, 0, (size_t)H, buf);
    const float *ur = buf[at][0], *ui = buf[at][1];
    float *yr = buf[1 - at][0], *yi = buf[1 - at][1];
    for (int y = 0; y < H; y++)
        for (int kx = 0; kx < K; kx++) {
            yr[(size_t)y * (size_t)K + (size_t)kx] = ur[(size_t)kx * (size_t)H + (size_t)y];
            yi[(size_t)y * (size_t)K + (size_t)kx] = ui[(size_t)kx * (size_t)H + (size_t)y];
        }
    float *buf2[2][2] = {{yr, yi}, {buf[at][0], buf[at][1]}};
    at = fft_run(&r->plan_y, 0, (size_t)K, buf2);
    const size_t hk = (size_t)H * (size_t)K;
    for (size_t i = 0; i < hk; i++) {
        dg[2 * i] = buf2[at][0][i] * r->scale[i];
        dg[2 * i + 1] = buf2[at][1][i] * r->scale[i];
    }
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* z -> p (colour matrix, then the sigmoid unless linear: the adjoint
 * check leaves it out). */
static void planes_to_picture_as(const run *r, picture *pc, int linear)
{
    const size_t pix = r->pix;
    if (r->C == 1) {
        for (size_t q = 0; q < pix; q++) pc->p[q] = linear ? pc->z[q] : sigmoidf(pc->z[q]);
        return;
    }
    for (size_t q = 0; q < pix; q++) {
        float z0 = pc->z[q], z1 = pc->z[pix + q], z2 = pc->z[2 * pix + q];
        for (int c = 0; c < 3; c++) {
            float t = colour_matrix[c][0] * z0 + colour_matrix[c][1] * z1 +
                      colour_matrix[c][2] * z2;
            pc->p[q * 3 + (size_t)c] = linear ? t : sigmoidf(t);
        }
    }
}

static void planes_to_picture(const run *r, picture *pc) { planes_to_picture_as(r, pc, 0); }

/* dt (per pixel and colour, H x W x C) -> dz (C planes): the colour
 * matrix's transpose. */
static void picture_grad_to_planes(const run *r, const float *dt, float *dz)
{
    const size_t pix = r->pix;
    for (size_t q = 0; q < pix; q++) {
        if (r->C == 1) {
            dz[q] = dt[q];
            continue;
        }
        for (int k = 0; k < 3; k++)
            dz[(size_t)k * pix + q] = colour_matrix[0][k] * dt[q * 3] +
                                      colour_matrix[1][k] * dt[q * 3 + 1] +
                                      colour_matrix[2][k] * dt[q * 3 + 2];
    }
}

/* Bilinear sampling with wrap-around: the four corners and weights of
 * picture point (sx, sy) in pixel-centre coordinates. */
typedef struct {
    size_t q[4];
    float w[4];
} taps4;

/* i mod n in [0, n); most points lie inside the picture, where this is i
 * itself (no division, twice per input pixel and step). */
static long wrap(long i, long n)
{
    if (i >= 0 && i < n) return i;
    i %= n;
    return i < 0 ? i + n : i;
}

static taps4 bilinear(const run *r, double sx, double sy)
{
    double fx = floor(sx), fy = floor(sy);
    double ax = sx - fx, ay = sy - fy;
    long x0 = wrap((long)fx, r->W), y0 = wrap((long)fy, r->H);
    long x1 = x0 + 1 == r->W ? 0 : x0 + 1, y1 = y0 + 1 == r->H ? 0 : y0 + 1;
    taps4 t;
    t.q[0] = (size_t)y0 * (size_t)r->W + (size_t)x0;
    t.q[1] = (size_t)y0 * (size_t)r->W + (size_t)x1;
    t.q[2] = (size_t)y1 * (size_t)r->W + (size_t)x0;
    t.q[3] = (size_t)y1 * (size_t)r->W + (size_t)x1;
    t.w[0] = (float)((1 - ax) * (1 - ay));
    t.w[1] = (float)(ax * (1 - ay));
    t.w[2] = (float)((1 - ax) * ay);
    t.w[3] = (float)(ax * ay);
    return t;
}

/* Where input pixel (u, v) reads the picture. */
static void source_point(const run *r, const transform *t, int u, int v, double *sx, double *sy)
{
    double dx = u + 0.5 - r->in_w * 0.5, dy = v + 0.5 - r->in_h * 0.5;
    *sx = t->cx + t->a00 * dx + t->a01 * dy - 0.5;
    *sy = t->cy + t->a10 * dx + t->a11 * dy - 0.5;
}

/* The picture -> the network input of slot j. */
static void picture_to_input(const run *r, const picture *pc, float *in)
{
    const int ic = r->m->in_c, C = r->C;
    for (int v = 0; v < r->in_h; v++)
        for (int u = 0; u < r->in_w; u++) {
            double sx, sy;
            source_point(r, &pc->t, u, v, &sx, &sy);
            taps4 b = bilinear(r, sx, sy);
            float *o = in + ((size_t)v * (size_t)r->in_w + (size_t)u) * (size_t)ic;
            for (int c = 0; c < ic; c++) {
                float val = 0.0f;
                for (int k = 0; k < 4; k++) val += b.w[k] * pc->p[b.q[k] * (size_t)C + (size_t)c];
                o[c] = val * r->in_mul[c] + r->in_add[c];
            }
        }
}

/* Adjoint: input gradient -> dp (accumulated). */
static void input_grad_to_picture(const run *r, picture *pc, const float *gin)
{
    const int ic = r->m->in_c, C = r->C;
    for (int v = 0; v < r->in_h; v++)
        for (int u = 0; u < r->in_w; u++) {
            double sx, sy;
            source_point(r, &pc->t, u, v, &sx, &sy);
            taps4 b = bilinear(r, sx, sy);
            const float *g = gin + ((size_t)v * (size_t)r->in_w + (size_t)u) * (size_t)ic;
            for (int c = 0; c < ic; c++) {
                float d = g[c] * r->in_mul[c];
                for (int k = 0; k < 4; k++) pc->dp[b.q[k] * (size_t)C + (size_t)c] += b.w[k] * d;
            }
        }
}

static void random_transform(const run *r, picture *pc)
{
    double ang = (2.0 * next_uniform(&pc->rng) - 1.0) * ROTATE_DEG * FILTERS_PI / 180.0;
    double sc = SCALE_MIN + (SCALE_MAX - SCALE_MIN) * next_uniform(&pc->rng);
    double tx = (2.0 * next_uniform(&pc->rng) - 1.0) * JITTER * r->W;
    double ty = (2.0 * next_uniform(&pc->rng) - 1.0) * JITTER * r->H;
    double kx = (double)r->W / r->in_w / sc, ky = (double)r->H / r->in_h / sc;
    pc->t.a00 = kx * cos(ang);
    pc->t.a01 = -kx * sin(ang);
    pc->t.a10 = ky * sin(ang);
    pc->t.a11 = ky * cos(ang);
    pc->t.cx = r->W * 0.5 + tx;
    pc->t.cy = r->H * 0.5 + ty;
}

/* Everything before the network for picture j: spectrum -> input. */
static void forward_one(run *r, int j)
{
    picture *pc = &r->pics[j];
    for (int c = 0; c < r->C; c++) spectrum_to_plane(r, pc, c);
    planes_to_picture(r, pc);
    random_transform(r, pc);
    picture_to_input(r, pc, r->input + (size_t)j * (size_t)r->in_h * (size_t)r->in_w *
                                           (size_t)r->m->in_c);
}

/* Everything after the network for picture j: the penalties, the
 * adjoints and Adam's step.  The network's gradient is of the objective,
 * which is maximised. */
static void backward_one(run *r, int j)
{
    picture *pc = &r->pics[j];
    const int W = r->W, H = r->H, C = r->C;
    const size_t pix = r->pix;
    memset(pc->dp, 0, pix * (size_t)C * sizeof *pc->dp);
    input_grad_to_picture(r, pc, r->grad + (size_t)j * (size_t)r->in_h * (size_t)r->in_w *
                                               (size_t)r->m->in_c);
    /* dloss/dp = -dobjective/dp + the penalties' gradients: TV is the
     * mean over pixels and colours of the squared differences to the
     * right and lower neighbours (wrapping around), L2 the mean of
     * (p - 0.5)^2. */
    const float tv = (float)(TV_WEIGHT * 2.0 / ((double)pix * C));
    const float l2 = (float)(L2_WEIGHT * 2.0 / ((double)pix * C));
    /* Both the objective (a mean over the map) and the penalties (means
     * over the picture) give each picture pixel a gradient of about
     * 1 / pixels, so their balance holds at any picture size. */
    const float obj = 1.0f;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t q = (size_t)y * (size_t)W + (size_t)x;
            size_t qr = (size_t)y * (size_t)W + (size_t)(x + 1 == W ? 0 : x + 1);
            size_t ql = (size_t)y * (size_t)W + (size_t)(x == 0 ? W - 1 : x - 1);
            size_t qd = (size_t)(y + 1 == H ? 0 : y + 1) * (size_t)W + (size_t)x;
            size_t qu = (size_t)(y == 0 ? H - 1 : y - 1) * (size_t)W + (size_t)x;
            for (int c = 0; c < C; c++) {
                const float *p = pc->p;
                size_t k = q * (size_t)C + (size_t)c;
                float d = 4.0f * p[k] - p[qr * (size_t)C + (size_t)c] - p[ql * (size_t)C + (size_t)c] -
                          p[qd * (size_t)C + (size_t)c] - p[qu * (size_t)C + (size_t)c];
                pc->dp[k] = -obj * pc->dp[k] + tv * d + l2 * (p[k] - 0.5f);
            }
        }
    /* Through the sigmoid (in place) and the colour matrix into dz (in
     * pc->z). */
    for (size_t k = 0; k < pix * (size_t)C; k++) pc->dp[k] *= pc->p[k] * (1.0f - pc->p[k]);
    picture_grad_to_planes(r, pc->dp, pc->z);
    for (int c = 0; c < C; c++) plane_to_spectrum_grad(r, pc, pc->z + (size_t)c * pix, c);
    /* Adam. */
    const double b1 = 0.9, b2 = 0.999;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, r->step)));
    const float c2 = (float)(1.0 / (1.0 - pow(b2, r->step)));
    for (size_t i = 0; i < r->spec; i++) {
        float g = pc->dg[i];
        pc->m1[i] = (float)b1 * pc->m1[i] + (float)(1.0 - b1) * g;
        pc->m2[i] = (float)b2 * pc->m2[i] + (float)(1.0 - b2) * g * g;
        pc->g[i] -= (float)LEARNING_RATE * (pc->m1[i] * c1) / (sqrtf(pc->m2[i] * c2) + 1e-8f);
    }
}

typedef struct {
    const int *channels;
    float *means, *seed;
    int cells, c;
} contrast_job;

/* Pictures [j0, j1) of contrast_seeds: each one's weights from its own
 * means, spread over its own seed (at the first layers, megabytes each). */
static void contrast_items(void *ctx, size_t j0, size_t j1)
{
    const contrast_job *cj = ctx;
    const int c = cj->c, cells = cj->cells;
    for (size_t j = j0; j < j1; j++) {
        float *mj = cj->means + j * (size_t)c;
        float top = mj[0];
        for (int k = 1; k < c; k++) top = mj[k] > top ? mj[k] : top;
        double sum = 0.0;
        const double T = CONTRAST_TEMPERATURE;
        for (int k = 0; k < c; k++) sum += exp((double)(mj[k] - top) / T);
        for (int k = 0; k < c; k++) {
            double w = (k == cj->channels[j]) - CONTRAST * exp((double)(mj[k] - top) / T) / sum;
            mj[k] = (float)(w / cells);
        }
        float *s = cj->seed + j * (size_t)cells * (size_t)c;
        for (int q = 0; q < cells; q++) memcpy(s + (size_t)q * (size_t)c, mj, (size_t)c * sizeof *s);
    }
}

/* The seeds of a step with the contrast: for picture j of channel ch,
 * d objective / d mean_k = [k == ch] - CONTRAST * softmax(means / T)_k,
 * spread as 1 / cells over the map.  The objective is the channel's mean
 * minus CONTRAST times a soft maximum (T log-sum-exp(means / T), T =
 * CONTRAST_TEMPERATURE) of all the layer's
 * means on the same input: once the channel leads its layer, only
 * (1 - CONTRAST) of the push remains on it; while others lead, they are
 * pushed down. */
static cnn_status contrast_seeds(const cnn_grad *g, cnn_pool *pool, int nb, const int *channels,
                                 float *means, float *seed, int cells, int c)
{
    cnn_status st = cnn_grad_channel_means(g, means);
    if (st != CNN_OK) return cnn_fail_prefix(st, "filters");
    contrast_job j = {channels, means, seed, cells, c};
    cnn_pool_for(pool, (size_t)nb, 1, contrast_items, &j);
    return CNN_OK;
}

static void forward_items(void *ctx, size_t i0, size_t i1)
{
    for (size_t j = i0; j < i1; j++) forward_one(ctx, (int)j);
}

static void backward_items(void *ctx, size_t i0, size_t i1)
{
    for (size_t j = i0; j < i1; j++) backward_one(ctx, (int)j);
}

/* The picture as it stands (spectrum -> p) into rgb bytes. */
static void picture_bytes(run *r, picture *pc, uint8_t *out)
{
    for (int c = 0; c < r->C; c++) spectrum_to_plane(r, pc, c);
    planes_to_picture(r, pc);
    for (size_t q = 0; q < r->pix; q++)
        for (int c = 0; c < 3; c++) {
            float v = pc->p[q * (size_t)r->C + (size_t)(r->C == 1 ? 0 : c)];
            long b = lrintf(v * 255.0f);
            out[q * 3 + (size_t)c] = (uint8_t)(b < 0 ? 0 : b > 255 ? 255 : b);
        }
}

/* A batch of the run: pictures b0 .. b0 + n_pics - 1. */
typedef struct {
    run *r;
    const int *channels; /* of the run (the label: NULL) */
    int b0, th, tw, tc;  /* the target's map */
    float *seed;         /* batch x per_seed */
    size_t per_seed;
    uint8_t *rgb;        /* the run's pictures */
} batch_job;

/* Slots [j0, j1) of a batch: each picture's start (its own random stream:
 * its channel and the seed) and its seed (the channel's mean, or the
 * logit); per picture, so the same whichever thread takes it. */
static void start_items(void *ctx, size_t j0, size_t j1)
{
    const batch_job *bj = ctx;
    const run *r = bj->r;
    const cnn_filters_options *o = r->o;
    const size_t cells = (size_t)bj->th * (size_t)bj->tw;
    for (size_t j = j0; j < j1; j++) {
        picture *pc = &r->pics[j];
        const int ch = o->layer >= 0 ? bj->channels[(size_t)bj->b0 + j] : bj->b0 + (int)j;
        pc->rng = o->seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(ch + 1));
        for (size_t i = 0; i < r->spec; i++) pc->g[i] = (float)(INIT_STD * next_normal(&pc->rng));
        memset(pc->m1, 0, r->spec * sizeof(float));
        memset(pc->m2, 0, r->spec * sizeof(float));
        float *s = bj->seed + j * bj->per_seed;
        if (o->layer >= 0) {
            memset(s, 0, bj->per_seed * sizeof *s);
            for (size_t q = 0; q < cells; q++)
                s[q * (size_t)bj->tc + (size_t)ch] = 1.0f / (float)cells;
        } else {
            for (size_t q = 0; q < bj->per_seed; q++) s[q] = o->label ? 1.0f : -1.0f;
        }
    }
}

/* Slots [j0, j1): the pictures as they stand into their rgb bytes. */
static void bytes_items(void *ctx, size_t j0, size_t j1)
{
    const batch_job *bj = ctx;
    run *r = bj->r;
    for (size_t j = j0; j < j1; j++)
        picture_bytes(r, &r->pics[j],
                      bj->rgb + ((size_t)bj->b0 + j) * (size_t)r->W * (size_t)r->H * 3);
}

static void free_run(run *r)
{
    if (r->pics)
        for (int j = 0; j < r->o->batch; j++) {
            picture *pc = &r->pics[j];
            free(pc->g), free(pc->m1), free(pc->m2), free(pc->dg);
            free(pc->z), free(pc->p), free(pc->dp);
            free(pc->fa[0]), free(pc->fa[1]), free(pc->fb[0]), free(pc->fb[1]);
        }
    free(r->pics);
    free(r->scale), free(r->plan_y.cs), free(r->plan_y.sn), free(r->plan_x.cs),
        free(r->plan_x.sn);
    free(r->input), free(r->grad);
}

static cnn_status setup_run(run *r)
{
    const cnn_model *m = r->m;
    const int H = r->H, W = r->W, K = r->K;
    size_t hk = (size_t)H * (size_t)K, sz;
    if (!cnn_mul_size(hk, (size_t)r->C * 2, &r->spec))
        return cnn_fail(CNN_ERR_LIMIT, "filters: the pictures are too large");
    r->pix = (size_t)H * (size_t)W;
    size_t in_floats = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    if (!cnn_mul_size(in_floats, (size_t)r->o->batch, &sz))
        return cnn_fail(CNN_ERR_LIMIT, "filters: the batch is too large");
    r->scale = cnn_alloc(hk, sizeof *r->scale);
    r->input = cnn_alloc(sz, sizeof(float));
    r->grad = cnn_alloc(sz, sizeof(float));
    r->pics = cnn_alloc((size_t)r->o->batch, sizeof *r->pics);
    if (!r->scale || !r->input || !r->grad || !r->pics)
        return cnn_fail(CNN_ERR_NOMEM, "filters: out of memory");
    for (int j = 0; j < r->o->batch; j++) {
        picture *pc = &r->pics[j];
        pc->g = cnn_alloc(r->spec, sizeof(float));
        pc->m1 = cnn_alloc(r->spec, sizeof(float));
        pc->m2 = cnn_alloc(r->spec, sizeof(float));
        pc->dg = cnn_alloc(r->spec, sizeof(float));
        pc->z = cnn_alloc(r->pix * (size_t)r->C, sizeof(float));
        pc->p = cnn_alloc(r->pix * (size_t)r->C, sizeof(float));
        pc->dp = cnn_alloc(r->pix * (size_t)r->C, sizeof(float));
        for (int k = 0; k < 2; k++) {
            pc->fa[k] = cnn_alloc(r->pix, sizeof(float));
            pc->fb[k] = cnn_alloc(r->pix, sizeof(float));
        }
        if (!pc->g || !pc->m1 || !pc->m2 || !pc->dg || !pc->z || !pc->p || !pc->dp ||
            !pc->fa[0] || !pc->fa[1] || !pc->fb[0] || !pc->fb[1])
            return cnn_fail(CNN_ERR_NOMEM, "filters: out of memory");
    }
    cnn_status st = fft_plan_init(&r->plan_y, H);
    if (st == CNN_OK) st = fft_plan_init(&r->plan_x, W);
    if (st != CNN_OK) return st;
    /* 1/f, f in cycles per pixel, floored at one cycle per picture; the
     * factor makes a unit spectrum a picture of about unit spread at any
     * size (the half spectrum counts each frequency once, hence 2). */
    const double norm = 1.0 / (2.0 * sqrt((double)H * W));
    for (int ky = 0; ky < H; ky++)
        for (int kx = 0; kx < K; kx++) {
            double fy = (double)(ky <= H / 2 ? ky : H - ky) / H, fx = (double)kx / W;
            double f = sqrt(fy * fy + fx * fx), fmin = 1.0 / (W > H ? W : H);
            r->scale[(size_t)ky * (size_t)K + (size_t)kx] = (float)(norm / (f > fmin ? f : fmin));
        }
    for (int c = 0; c < m->in_c; c++) {
        /* x = (v * scale - mean) / std with v = 255 p. */
        r->in_mul[c] = 255.0f * m->pre.scale / m->pre.std[c];
        r->in_add[c] = -m->pre.mean[c] / m->pre.std[c];
    }
    return CNN_OK;
}

cnn_status cnn_filters_run(const cnn_model *m, const cnn_filters_options *o,
                           const int *channels, int n, uint8_t *rgb, size_t rgb_len)
{
    if (!m || !o || !rgb || (o->layer >= 0 && !channels))
        return cnn_fail(CNN_ERR_ARG, "cnn_filters_run: NULL argument");
    cnn_status st = check_options(m, o);
    if (st != CNN_OK) return st;
    if (!m->params) return cnn_fail(CNN_ERR_ARG, "filters: the model has no parameters");
    if (n < 1 || n > CNN_MAX_CHANNELS)
        return cnn_fail(CNN_ERR_ARG, "filters: %d pictures asked for (1 .. %d)", n,
                        CNN_MAX_CHANNELS);
    int out_c = o->layer >= 0 ? m->layers[o->layer].out_c : 1;
    if (o->layer >= 0)
        for (int i = 0; i < n; i++)
            if (channels[i] < 0 || channels[i] >= out_c)
                return cnn_fail(CNN_ERR_ARG, "filters: layer %s has no channel %d (0 .. %d)",
                                m->layers[o->layer].name, channels[i], out_c - 1);
    run r = {0};
    r.m = m;
    r.o = o;
    cnn_filters_picture_size(m, o, &r.W, &r.H);
    r.K = r.W / 2 + 1;
    r.C = m->in_c;
    r.in_h = m->in_h;
    r.in_w = m->in_w;
    size_t need;
    if (!cnn_mul_size((size_t)r.W * (size_t)r.H * 3, (size_t)n, &need))
        return cnn_fail(CNN_ERR_LIMIT, "filters: the pictures are too large");
    if (rgb_len < need)
        return cnn_fail(CNN_ERR_ARG, "filters: %zu bytes for the pictures, %zu needed", rgb_len,
                        need);

    cnn_grad *g = NULL;
    cnn_pool *pool = NULL;
    float *seed = NULL, *means = NULL;
    const bool contrast = o->layer >= 0 && CONTRAST > 0;
    const int batch = o->batch < n ? o->batch : n;
    cnn_grad_options go = {o->layer >= 0 ? target_layer(m, o->layer) : -1, batch, o->threads,
                           o->precision};
    int th, tw, tc;
    size_t per_seed;
    cnn_filters_options o2 = *o;
    o2.batch = batch;
    r.o = &o2;
    if ((st = setup_run(&r)) != CNN_OK) goto done;
    if ((st = cnn_grad_create(m, &go, &g)) != CNN_OK) {
        cnn_fail_prefix(st, "filters");
        goto done;
    }
    cnn_grad_target_shape(g, &th, &tw, &tc);
    per_seed = (size_t)th * (size_t)tw * (size_t)tc;
    seed = cnn_alloc(per_seed * (size_t)batch, sizeof *seed);
    if (!seed) {
        st = cnn_fail(CNN_ERR_NOMEM, "filters: out of memory");
        goto done;
    }
    /* The pictures' own work runs on the gradient's threads: one pool,
     * so no second set of workers waits for the processors in between. */
    pool = cnn_grad_pool(g);
    if (contrast) {
        means = cnn_alloc((size_t)batch * (size_t)tc, sizeof *means);
        if (!means) {
            st = cnn_fail(CNN_ERR_NOMEM, "filters: out of memory");
            goto done;
        }
    }

    const int batches = (n + batch - 1) / batch;
    const int total = batches * o->steps;
    for (int b0 = 0, done_steps = 0; b0 < n; b0 += batch) {
        const int nb = n - b0 < batch ? n - b0 : batch;
        r.n_pics = nb;
        batch_job bj = {&r, channels, b0, th, tw, tc, seed, per_seed, rgb};
        cnn_pool_for(pool, (size_t)nb, 1, start_items, &bj);
        for (int step = 1; step <= o->steps; step++) {
            r.step = step;
            cnn_pool_for(pool, (size_t)nb, 1, forward_items, &r);
            /* The layer's means for the contrast come from the gradient's
             * own forward pass, before its backward pass reads the seeds. */
            if ((st = cnn_grad_forward(g, nb, r.input)) != CNN_OK) {
                cnn_fail_prefix(st, "filters");
                goto done;
            }
            if (contrast && (step - 1) % CONTRAST_EVERY == 0 &&
                (st = contrast_seeds(g, pool, nb, channels + b0, means, seed, th * tw, tc)) !=
                    CNN_OK)
                goto done;
            if ((st = cnn_grad_backward(g, nb, seed, r.grad, NULL)) != CNN_OK) {
                cnn_fail_prefix(st, "filters");
                goto done;
            }
            cnn_pool_for(pool, (size_t)nb, 1, backward_items, &r);
            done_steps++;
            if (o->progress && o->progress(o->progress_user, done_steps, total)) {
                st = cnn_fail(CNN_ERR_INTERRUPTED, "filters: stopped on request");
                goto done;
            }
        }
        cnn_pool_for(pool, (size_t)nb, 1, bytes_items, &bj);
    }

done:
    free(means);
    free(seed);
    cnn_grad_free(g);
    free_run(&r);
    return st;
}

/* ------------------------------------------------------------------ */
/* The adjoint check (tests): <J g, u> against <g, J^T u> for the      */
/* linear part of the chain, spectrum -> colours -> sampled input       */
/* ------------------------------------------------------------------ */

cnn_status cnn_filters_adjoint_check(const cnn_model *m, int size, uint64_t seed,
                                     double *forward_dot, double *adjoint_dot)
{
    if (!m || !forward_dot || !adjoint_dot)
        return cnn_fail(CNN_ERR_ARG, "cnn_filters_adjoint_check: NULL argument");
    cnn_filters_options o;
    cnn_filters_options_init(&o);
    o.batch = 1;
    o.size = size;
    run r = {0};
    r.m = m;
    r.o = &o;
    cnn_status st = cnn_filters_picture_size(m, &o, &r.W, &r.H);
    if (st != CNN_OK) return st;
    r.K = r.W / 2 + 1;
    r.C = m->in_c;
    r.in_h = m->in_h;
    r.in_w = m->in_w;
    if ((st = setup_run(&r)) != CNN_OK) {
        free_run(&r);
        return st;
    }
    for (int c = 0; c < m->in_c; c++) r.in_add[c] = 0.0f;
    picture *pc = &r.pics[0];
    pc->rng = seed;
    for (size_t i = 0; i < r.spec; i++) pc->g[i] = (float)next_normal(&pc->rng);
    for (int c = 0; c < r.C; c++) spectrum_to_plane(&r, pc, c);
    planes_to_picture_as(&r, pc, 1);
    random_transform(&r, pc);
    picture_to_input(&r, pc, r.input);
    const size_t in_n = (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    double fd = 0.0, ad = 0.0;
    for (size_t i = 0; i < in_n; i++) {
        r.grad[i] = (float)next_normal(&pc->rng);
        fd += (double)r.input[i] * r.grad[i];
    }
    memset(pc->dp, 0, r.pix * (size_t)r.C * sizeof *pc->dp);
    input_grad_to_picture(&r, pc, r.grad);
    picture_grad_to_planes(&r, pc->dp, pc->z);
    for (int c = 0; c < r.C; c++) plane_to_spectrum_grad(&r, pc, pc->z + (size_t)c * r.pix, c);
    for (size_t i = 0; i < r.spec; i++) ad += (double)pc->g[i] * pc->dg[i];
    *forward_dot = fd;
    *adjoint_dot = ad;
    free_run(&r);
    return CNN_OK;
}
