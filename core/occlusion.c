/* occlusion.c - heat maps at the input's resolution: occlusion
 * sensitivity (batched forward passes of occluded copies of the input),
 * the fills that hide pixels, and Grad-CAM stretched to the input for the
 * trust checks (trust.c). */
#include "layers.h"

#include <stdio.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *cnn_fill_name(cnn_fill fill)
{
    switch (fill) {
    case CNN_FILL_GRAY: return "gray";
    case CNN_FILL_BLUR: return "blur";
    }
    return "?";
}

const char *cnn_explain_method_name(cnn_explain_method method)
{
    switch (method) {
    case CNN_EXPLAIN_GRADCAM: return "gradcam";
    case CNN_EXPLAIN_OCCLUSION: return "occlusion";
    case CNN_EXPLAIN_INTEGRATED_GRADIENTS: return "integrated-gradients";
    case CNN_EXPLAIN_COUNT: break;
    }
    return "?";
}

void cnn_occlusion_options_init(cnn_occlusion_options *o)
{
    if (!o) return;
    o->window = 15;
    o->stride = 8;
    o->fill = CNN_FILL_GRAY;
    o->path = CNN_OCCLUSION_AUTO;
    o->progress = NULL;
    o->progress_data = NULL;
}

void cnn_explain_options_init(cnn_explain_options *o, cnn_explain_method method)
{
    if (!o) return;
    o->method = method;
    o->tap = -1;
    cnn_occlusion_options_init(&o->occlusion);
    cnn_ig_options_init(&o->ig);
    o->batch = 16;
    o->threads = 0;
}

/* The input's size in floats and pixels, checked. */
static cnn_status input_size(const cnn_model *m, size_t *pixels, size_t *floats)
{
    if (m->in_h <= 0 || m->in_w <= 0 || m->in_c <= 0 || m->in_h > CNN_MAX_DIM ||
        m->in_w > CNN_MAX_DIM || m->in_c > 4)
        return cnn_fail(CNN_ERR_MODEL, "model input %dx%dx%d is not usable", m->in_h, m->in_w,
                        m->in_c);
    size_t p;
    if (!cnn_mul_size((size_t)m->in_h, (size_t)m->in_w, &p) ||
        !cnn_mul_size(p, (size_t)m->in_c, floats))
        return cnn_fail(CNN_ERR_LIMIT, "model input %dx%dx%d is too large", m->in_h, m->in_w,
                        m->in_c);
    *pixels = p;
    return CNN_OK;
}

/* Blurs n rows of `len` values, `step` floats apart within a row and
 * `row_step` apart between rows, with kernel k[-r .. r], edges clamped;
 * line is scratch of len floats. */
static void blur_lines(float *data, int n, int len, size_t step, size_t row_step,
                       const double *k, int r, float *line)
{
    for (int i = 0; i < n; i++) {
        float *d = data + (size_t)i * row_step;
        for (int x = 0; x < len; x++) line[x] = d[(size_t)x * step];
        for (int x = 0; x < len; x++) {
            double s = 0.0;
            for (int j = -r; j <= r; j++) {
                int xx = x + j;
                xx = xx < 0 ? 0 : xx >= len ? len - 1 : xx;
                s += k[j + r] * line[xx];
            }
            d[(size_t)x * step] = (float)s;
        }
    }
}

cnn_status cnn_fill_input(const cnn_model *m, const float *input, cnn_fill fill, double sigma,
                          float *out)
{
    if (!m || !out || (fill == CNN_FILL_BLUR && !input))
        return cnn_fail(CNN_ERR_ARG, "cnn_fill_input: NULL argument");
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    const int h = m->in_h, w = m->in_w, c = m->in_c;
    if (fill == CNN_FILL_GRAY) {
        float gray[4];
        for (int ch = 0; ch < c; ch++) {
            const int i = c == 1 ? 0 : ch;
            const double sd = m->pre.std[i] != 0.0f ? m->pre.std[i] : 1.0;
            gray[ch] = (float)((128.0 * m->pre.scale - m->pre.mean[i]) / sd);
        }
        for (size_t p = 0; p < pixels; p++)
            for (int ch = 0; ch < c; ch++) out[p * (size_t)c + (size_t)ch] = gray[ch];
        return CNN_OK;
    }
    if (fill != CNN_FILL_BLUR) return cnn_fail(CNN_ERR_ARG, "unknown fill %d", (int)fill);
    if (!(sigma > 0.0) || sigma > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "blur: sigma %g is not in (0, %d]", sigma, CNN_MAX_DIM);
    const int r = (int)ceil(3.0 * sigma);
    double *k = cnn_alloc((size_t)(2 * r + 1), sizeof *k);
    float *line = k ? cnn_alloc((size_t)(h > w ? h : w), sizeof *line) : NULL;
    if (!line) {
        free(k);
        return cnn_fail_prefix(CNN_ERR_NOMEM, "blur");
    }
    double sum = 0.0;
    for (int j = -r; j <= r; j++) sum += k[j + r] = exp(-(double)j * j / (2.0 * sigma * sigma));
    for (int j = 0; j <= 2 * r; j++) k[j] /= sum;
    memcpy(out, input, floats * sizeof *out);
    const size_t row = (size_t)w * (size_t)c;
    for (int ch = 0; ch < c; ch++) {
        /* along x: h lines; along y: w lines */
        blur_lines(out + ch, h, w, (size_t)c, row, k, r, line);
        blur_lines(out + ch, w, h, row, (size_t)c, k, r, line);
    }
    free(line);
    free(k);
    return CNN_OK;
}

int cnn_occlusion_places(int size, int window, int stride)
{
    if (size <= 0 || window <= 0 || stride <= 0 || window > size) return 0;
    const int span = size - window;
    return span / stride + 1 + (span % stride != 0);
}

/* Place i of a side: i * stride, the last one flush with the edge. */
static int place(int i, int size, int window, int stride)
{
    const int p = i * stride;
    return p > size - window ? size - window : p;
}

/* The checks every occlusion call makes (m is the net's model). */
static cnn_status check_options(const cnn_model *m, const cnn_occlusion_options *o)
{
    const int h = m->in_h, w = m->in_w;
    const int side = h < w ? h : w;
    if (o->window < 1 || o->window > side)
        return cnn_fail(CNN_ERR_ARG, "occlusion: window %d is not in 1 .. %d (the input is "
                        "%dx%d)", o->window, side, w, h);
    if (o->stride < 1 || o->stride > side)
        return cnn_fail(CNN_ERR_ARG, "occlusion: stride %d is not in 1 .. %d", o->stride, side);
    if (o->fill != CNN_FILL_GRAY && o->fill != CNN_FILL_BLUR)
        return cnn_fail(CNN_ERR_ARG, "occlusion: unknown fill %d", (int)o->fill);
    if (o->path != CNN_OCCLUSION_AUTO && o->path != CNN_OCCLUSION_FULL)
        return cnn_fail(CNN_ERR_ARG, "occlusion: unknown path %d", (int)o->path);
    return CNN_OK;
}

/* ------------------------------------------------------------------ */
/* Incremental passes                                                  */
/*                                                                     */
/* A window changes only a small region of the early feature maps.  The */
/* layers are split at a cut after a max pool: the prefix before it    */
/* must be stride-1 convolutions with an odd kernel padded by k/2 on    */
/* every side ('same'), pointwise layers (batch-norm, ReLU, dropout)    */
/* and max pools whose window equals their stride; the first layer of   */
/* another kind ends the prefix the scheme understands.  Per axis, a    */
/* window's rows [a, b) make the cut's map dirty in [d0, d1): a conv    */
/* widens by k/2 on each side (clipped to the map), a pool of stride s  */
/* maps [a, b) to [a/s, (b-1)/s] (clipped: floor pooling drops the last */
/* rows).  The dirty cells depend on input rows [q0, q1) (the inverse,  */
/* outside the picture: padding).  The prefix runs on a crop of the     */
/* occluded input that holds them, starting at a multiple of the        */
/* pooling factor (so every pooling grid lines up with the full map's), */
/* of one size for windows inside the picture and one that ends at the  */
/* edge (there the crop's padding and floor pooling are the full        */
/* map's), per axis: up to four prefix nets.  Where a crop's edge lies  */
/* inside the picture its zero padding is wrong near that edge; a       */
/* forward pass of which cells are right checks that the dirty ones are */
/* (a cut that fails it is not used).  The dirty cells are pasted into  */
/* the clean picture's map at the cut, and the layers after the cut     */
/* (the suffix) run on batches of those.  Every cell the suffix sees is */
/* computed from the same values by the same layers as in a full pass, */
/* so the map is the same up to float rounding.  The cut, and whether   */
/* to cut at all, is chosen by counting multiply-adds.                  */
/* ------------------------------------------------------------------ */

/* One layer of the prefix as it acts on an axis: a conv of radius r
 * (pool 0), or a max pool of stride pool (r 0). */
typedef struct {
    int r, pool;
} axis_op;

/* Whether the scheme understands layer L (see above); *op gets what it
 * does to an axis (r = pool = 0 for a pointwise layer). */
static bool understood(const cnn_layer *L, axis_op *op)
{
    const cnn_layer_ops *ops = cnn_layer_ops_of(L->type);
    op->r = op->pool = 0;
    if (!ops) return false;
    const bool same_shape = L->out_h == L->in_h && L->out_w == L->in_w;
    switch (ops->step) {
    case CNN_STEP_CONV:
        op->r = L->kernel / 2;
        return L->stride == 1 && L->kernel % 2 == 1 && L->pad_top == op->r &&
               L->pad_bottom == op->r && L->pad_left == op->r && L->pad_right == op->r &&
               same_shape;
    case CNN_STEP_POOL:
        op->pool = L->stride;
        return L->kernel == L->stride && L->kernel >= 1 && L->out_h == L->in_h / L->stride &&
               L->out_w == L->in_w / L->stride;
    case CNN_STEP_AFFINE:
    case CNN_STEP_RELU:
        return same_shape && L->out_c == L->in_c;
    default:
        /* dropout: the identity (flatten changes the shape) */
        return (ops->flags & CNN_LOP_FREE_AT_INFERENCE) && same_shape && L->out_c == L->in_c;
    }
}

/* The crops along one axis of the input: a place's kind (0: a crop of
 * size[0] inside the picture, 1: one of size[1] that ends at its edge,
 * -1: the window changes nothing at the cut), the crop's first pixel, and
 * the dirty cells [d0, d1) of the cut's map. */
typedef struct {
    int n;          /* places */
    int size[2];    /* 0 where no place uses that kind */
    int count[2];   /* places of each kind */
    int cut;        /* the cut map's size along the axis */
    int factor;     /* the pooling factor: crops start at multiples of it */
    int *kind, *start, *d0, *d1; /* [n] each, in one block at kind */
} axis_plan;

static void axis_plan_free(axis_plan *a)
{
    free(a->kind);
    memset(a, 0, sizeof *a);
}

/* Plans one axis of `size` pixels for the prefix ops[0 .. n_ops-1]:
 * false (nothing allocated) when the cut is unusable there (a map of no
 * cells, a dirty cell the crop cannot compute); CNN_ERR_NOMEM is the one
 * failure (*st). */
static bool plan_axis(const axis_op *ops, int n_ops, int size, int window, int stride,
                      axis_plan *a, cnn_status *st)
{
    *st = CNN_OK;
    memset(a, 0, sizeof *a);
    int lev[CNN_MAX_LAYERS + 1]; /* the map's size after each op */
    long long factor = 1;        /* the pooling factor */
    lev[0] = size;
    for (int i = 0; i < n_ops; i++) {
        lev[i + 1] = ops[i].pool ? lev[i] / ops[i].pool : lev[i];
        if (ops[i].pool) factor *= ops[i].pool;
        if (lev[i + 1] < 1) return false;
    }
    const int n = cnn_occlusion_places(size, window, stride);
    if (n < 1) return false;
    a->n = n;
    a->cut = lev[n_ops];
    a->factor = (int)factor; /* at most size: every level has a cell */
    a->kind = cnn_alloc((size_t)n * 4, sizeof *a->kind);
    if (!a->kind) {
        *st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        return false;
    }
    a->start = a->kind + n;
    a->d0 = a->start + n;
    a->d1 = a->d0 + n;
    /* Per place: the dirty cells, their input rows, the crop they need
     * (lo .. hi, aligned down to the factor at lo) and whether it must
     * end at the edge (kind 1). */
    long long need_int = 0, edge_start = size;
    for (int i = 0; i < n; i++) {
        const int p = place(i, size, window, stride);
        long long d0 = p, d1 = p + window;
        for (int k = 0; k < n_ops && d0 < d1; k++) {
            if (ops[k].r) {
                d0 = d0 - ops[k].r < 0 ? 0 : d0 - ops[k].r;
                d1 = d1 + ops[k].r > lev[k] ? lev[k] : d1 + ops[k].r;
            } else if (ops[k].pool) {
                const long long s = ops[k].pool;
                d1 = (d1 - 1) / s + 1;
                d0 /= s;
                if (d1 > lev[k + 1]) d1 = lev[k + 1];
            }
        }
        if (d0 >= d1) {
            a->kind[i] = -1;
            continue;
        }
        a->d0[i] = (int)d0;
        a->d1[i] = (int)d1;
        long long q0 = d0, q1 = d1;
        for (int k = n_ops - 1; k >= 0; k--) {
            if (ops[k].pool) {
                q0 *= ops[k].pool;
                q1 *= ops[k].pool;
            }
            q0 -= ops[k].r;
            q1 += ops[k].r;
        }
        const long long lo = (q0 < 0 ? 0 : q0) / factor * factor;
        a->start[i] = (int)lo;
        a->kind[i] = q1 >= size ? 1 : 0;
        if (a->kind[i] == 0 && q1 - lo > need_int) need_int = q1 - lo;
    }
    /* An inside crop that would run past the edge ends at it instead. */
    for (int i = 0; i < n; i++) {
        if (a->kind[i] == 0 && a->start[i] + need_int > size) a->kind[i] = 1;
        if (a->kind[i] == 1 && a->start[i] < edge_start) edge_start = a->start[i];
    }
    for (int i = 0; i < n; i++) {
        if (a->kind[i] < 0) continue;
        a->count[a->kind[i]]++;
        if (a->kind[i] == 1) a->start[i] = (int)edge_start;
    }
    a->size[0] = a->count[0] ? (int)need_int : 0;
    a->size[1] = a->count[1] ? (int)(size - edge_start) : 0;

    /* Which cells of each crop's maps equal the full map's: [v0, v1) in
     * the full map's coordinates, the crop covering [o, e).  A conv
     * spoils r cells at a crop edge unless that edge is the picture's
     * (its padding is then the full map's); a pool keeps the windows
     * wholly inside the right cells. */
    for (int i = 0; i < n; i++) {
        if (a->kind[i] < 0) continue;
        long long o = a->start[i], e = o + a->size[a->kind[i]], v0 = o, v1 = e;
        for (int k = 0; k < n_ops; k++) {
            if (ops[k].r) {
                v0 = v0 == o && o == 0 ? 0 : v0 + ops[k].r;
                v1 = v1 == e && e == lev[k] ? e : v1 - ops[k].r;
            } else if (ops[k].pool) {
                const long long s = ops[k].pool;
                o /= s; /* exact: o is a multiple of the factor */
                e = o + (e - o * s) / s;
                v0 = (v0 + s - 1) / s;
                v1 = v1 / s;
                if (v0 < o) v0 = o;
                if (v1 > e) v1 = e;
            }
        }
        if (!(v0 <= a->d0[i] && a->d1[i] <= v1 && o <= a->d0[i] && a->d1[i] <= e)) {
            axis_plan_free(a);
            return false;
        }
    }
    return true;
}

/* The cut, its crops and the slices of the model they run. */
typedef struct {
    int cut;                   /* first layer of the suffix; 0: full passes */
    axis_plan rows, cols;
    cnn_model *pre[2][2];      /* prefix at each crop size (row kind, column kind) */
    cnn_model *pre_full;       /* the prefix at the input's size (the clean map) */
    cnn_model *suffix;         /* layers cut .. end at the cut map's size */
    double macs, macs_full;    /* of this plan, and of the full passes */
    int windows, changing;     /* occluded copies; those that change the cut's map */
} occ_plan;

static void occ_plan_free(occ_plan *p)
{
    axis_plan_free(&p->rows);
    axis_plan_free(&p->cols);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) cnn_model_slice_free(p->pre[i][j]);
    cnn_model_slice_free(p->pre_full);
    cnn_model_slice_free(p->suffix);
    const double full = p->macs_full;
    const int windows = p->windows;
    memset(p, 0, sizeof *p);
    p->macs_full = p->macs = full;
    p->windows = windows;
}

/* A slice whose shapes fail (a crop too small for a layer) only rules
 * the cut out; its message is not the caller's. */
static cnn_status slice_or_skip(const cnn_model *m, int first, int end, int h, int w,
                                cnn_model **out, bool *skip)
{
    cnn_status st = cnn_model_slice(m, first, end, h, w, out);
    *skip = st != CNN_OK && st != CNN_ERR_NOMEM;
    return st == CNN_ERR_NOMEM ? st : CNN_OK;
}

/* Plans cut `cut` (layers [0, cut) the prefix) into *p; *usable false
 * when the cut cannot be used. */
static cnn_status plan_cut(const cnn_model *m, int cut, const axis_op *ops, int n_ops,
                           const cnn_occlusion_options *o, occ_plan *p, bool *usable)
{
    *usable = false;
    cnn_status st;
    p->cut = cut;
    if (!plan_axis(ops, n_ops, m->in_h, o->window, o->stride, &p->rows, &st)) return st;
    if (!plan_axis(ops, n_ops, m->in_w, o->window, o->stride, &p->cols, &st)) return st;
    bool skip = false;
    if ((st = slice_or_skip(m, 0, cut, m->in_h, m->in_w, &p->pre_full, &skip)) != CNN_OK ||
        skip)
        return st;
    const cnn_layer *last = &p->pre_full->layers[cut - 1];
    if (last->out_h != p->rows.cut || last->out_w != p->cols.cut) return CNN_OK;
    if ((st = slice_or_skip(m, cut, m->n_layers, p->rows.cut, p->cols.cut, &p->suffix,
                            &skip)) != CNN_OK ||
        skip)
        return st;
    /* the input's own pass, the clean map's prefix, then per window */
    double macs = (double)m->macs + (double)p->pre_full->macs;
    p->changing = 0;
    for (int kr = 0; kr < 2; kr++)
        for (int kc = 0; kc < 2; kc++) {
            const int n = p->rows.count[kr] * p->cols.count[kc];
            if (n == 0) continue;
            if ((st = slice_or_skip(m, 0, cut, p->rows.size[kr], p->cols.size[kc],
                                    &p->pre[kr][kc], &skip)) != CNN_OK ||
                skip)
                return st;
            macs += (double)n * ((double)p->pre[kr][kc]->macs + (double)p->suffix->macs);
            p->changing += n;
        }
    p->macs = macs;
    *usable = true;
    return CNN_OK;
}

/* Below this share of the full passes' multiply-adds the incremental
 * passes pay for their extra work (planning the sub-nets, copying maps). */
#define INCREMENTAL_SHARE 0.75

/* The path for o: *p gets the best cut, or cut 0 (full passes). */
static cnn_status plan_occlusion(const cnn_model *m, const cnn_occlusion_options *o,
                                 occ_plan *p)
{
    memset(p, 0, sizeof *p);
    p->windows = cnn_occlusion_places(m->in_h, o->window, o->stride) *
                 cnn_occlusion_places(m->in_w, o->window, o->stride);
    p->macs_full = p->macs = (double)(p->windows + 1) * (double)m->macs;
    if (o->path == CNN_OCCLUSION_FULL) return CNN_OK;
    axis_op ops[CNN_MAX_LAYERS];
    int n_ops = 0;
    for (int i = 0; i < m->n_layers - 1; i++) {
        axis_op op;
        if (!understood(&m->layers[i], &op)) break;
        if (op.r || op.pool) ops[n_ops++] = op;
        if (!op.pool) continue;
        occ_plan c;
        memset(&c, 0, sizeof c);
        c.windows = p->windows;
        c.macs_full = p->macs_full;
        bool usable;
        cnn_status st = plan_cut(m, i + 1, ops, n_ops, o, &c, &usable);
        if (st != CNN_OK) {
            occ_plan_free(&c);
            occ_plan_free(p);
            return st;
        }
        if (usable && c.macs < INCREMENTAL_SHARE * p->macs_full &&
            (p->cut == 0 || c.macs < p->macs)) {
            occ_plan_free(p);
            *p = c;
        } else {
            occ_plan_free(&c);
        }
    }
    return CNN_OK;
}

cnn_status cnn_occlusion_describe(const cnn_net *net, const cnn_occlusion_options *o,
                                  cnn_occlusion_info *out)
{
    if (!net || !o || !out) return cnn_fail(CNN_ERR_ARG, "cnn_occlusion_describe: NULL argument");
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st == CNN_OK) st = check_options(m, o);
    if (st != CNN_OK) return st;
    occ_plan p;
    if ((st = plan_occlusion(m, o, &p)) != CNN_OK) return st;
    memset(out, 0, sizeof *out);
    out->incremental = p.cut > 0;
    out->windows = p.windows;
    out->macs = p.macs;
    out->macs_full = p.macs_full;
    if (p.cut > 0) {
        snprintf(out->cut, sizeof out->cut, "%s", m->layers[p.cut - 1].name);
        for (int k = 0; k < 2; k++) {
            out->crop_h[k] = p.rows.size[k];
            out->crop_w[k] = p.cols.size[k];
        }
    }
    occ_plan_free(&p);
    return CNN_OK;
}

/* The accumulation both paths share: window (y0, x0)'s drop. */
static void add_drop(double *sum, int *count, int w, int window, int y0, int x0, double drop)
{
    for (int y = y0; y < y0 + window; y++)
        for (int x = x0; x < x0 + window; x++) {
            sum[(size_t)y * (size_t)w + (size_t)x] += drop;
            count[(size_t)y * (size_t)w + (size_t)x]++;
        }
}

/* Copies rows [y0, y0 + rows) x columns [x0, x0 + cols) of a w-wide
 * picture of c channels to a rows x cols one. */
static void copy_box(const float *src, int w, int c, int y0, int x0, int rows, int cols,
                     float *dst)
{
    const size_t len = (size_t)cols * (size_t)c;
    for (int y = 0; y < rows; y++)
        memcpy(dst + (size_t)y * len, src + ((size_t)(y0 + y) * (size_t)w + (size_t)x0) * c,
               len * sizeof *dst);
}

typedef struct {
    cnn_net *net;
    const cnn_model *m;
    const float *input, *fill;
    const cnn_occlusion_options *o;
    int batch;
    double base, sign;
    double *sum;
    int *count;
} occ_run;

/* The incremental passes of plan p (allocating the sub-nets and buffers
 * once). */
static cnn_status run_incremental(const occ_run *r, const occ_plan *p)
{
    const cnn_model *m = r->m;
    const int h = m->in_h, w = m->in_w, c = m->in_c, win = r->o->window;
    const int ch = p->rows.cut, cw = p->cols.cut;
    const cnn_layer *cut_layer = &p->pre_full->layers[p->cut - 1];
    const int cc = cut_layer->out_c;
    cnn_net *full = NULL, *suffix = NULL, *pre[2][2] = {{NULL, NULL}, {NULL, NULL}};
    float *clean = NULL, *crops = NULL, *maps = NULL, *logits = NULL;
    const int cols = p->cols.n, places = p->rows.n * cols;
    cnn_status st = CNN_OK;
    /* Sizes: the cut map, and the largest crop. */
    size_t cut_floats, crop_floats = 0, crops_all, maps_all;
    bool ok = cnn_mul_size((size_t)ch * (size_t)cw, (size_t)cc, &cut_floats);
    for (int kr = 0; kr < 2 && ok; kr++)
        for (int kc = 0; kc < 2 && ok; kc++) {
            size_t f;
            if (!p->pre[kr][kc]) continue;
            ok = cnn_mul_size((size_t)p->rows.size[kr] * (size_t)p->cols.size[kc], (size_t)c, &f);
            if (f > crop_floats) crop_floats = f;
        }
    ok = ok && cnn_mul_size(crop_floats, (size_t)r->batch, &crops_all) &&
         cnn_mul_size(cut_floats, (size_t)r->batch, &maps_all);
    if (!ok) return cnn_fail(CNN_ERR_LIMIT, "occlusion: the incremental passes' buffers overflow");
    clean = cnn_alloc(cut_floats, sizeof *clean);
    crops = clean ? cnn_alloc_aligned(crops_all, sizeof *crops) : NULL;
    maps = crops ? cnn_alloc_aligned(maps_all, sizeof *maps) : NULL;
    logits = maps ? cnn_alloc((size_t)r->batch, sizeof *logits) : NULL;
    if (!logits) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        goto done;
    }
    if ((st = cnn_net_create_like(p->pre_full, 1, r->net, true, &full)) != CNN_OK ||
        (st = cnn_net_create_like(p->suffix, r->batch, r->net, false, &suffix)) != CNN_OK)
        goto done;
    for (int kr = 0; kr < 2; kr++)
        for (int kc = 0; kc < 2; kc++)
            if (p->pre[kr][kc] &&
                (st = cnn_net_create_like(p->pre[kr][kc], r->batch, r->net, true,
                                          &pre[kr][kc])) != CNN_OK)
                goto done;

    cnn_tensor_view v;
    if ((st = cnn_net_forward_map(full, r->input, 1, &v)) != CNN_OK) goto done;
    if (v.h != ch || v.w != cw || v.c != cc) {
        st = cnn_fail(CNN_ERR_MODEL, "occlusion: the cut's map is %dx%dx%d, expected %dx%dx%d",
                      v.w, v.h, v.c, cw, ch, cc);
        goto done;
    }
    memcpy(clean, v.data, cut_floats * sizeof *clean);

    const int total = p->windows;
    int done_windows = total - p->changing; /* those that change nothing: drop 0 */
    for (int i = 0; i < p->rows.n; i++)
        for (int j = 0; j < p->cols.n; j++)
            if (p->rows.kind[i] < 0 || p->cols.kind[j] < 0)
                add_drop(r->sum, r->count, w, win, place(i, h, win, r->o->stride),
                         place(j, w, win, r->o->stride), 0.0);
    bool reported = false;
    for (int kr = 0; kr < 2; kr++)
        for (int kc = 0; kc < 2; kc++) {
            if (!pre[kr][kc]) continue;
            const int sh = p->rows.size[kr], sw = p->cols.size[kc];
            const size_t crop = (size_t)sh * (size_t)sw * (size_t)c;
            /* The windows of this kind, in row-major order, batch at a time
             * (batch <= 1024). */
            for (int k = 0;;) {
                int wy[1024], wx[1024], n = 0;
                for (; k < places && n < r->batch; k++) {
                    if (p->rows.kind[k / cols] != kr || p->cols.kind[k % cols] != kc) continue;
                    wy[n] = k / cols;
                    wx[n] = k % cols;
                    n++;
                }
                if (n == 0) break;
                for (int b = 0; b < n; b++) {
                    const int sy = p->rows.start[wy[b]], sx = p->cols.start[wx[b]];
                    const int y0 = place(wy[b], h, win, r->o->stride);
                    const int x0 = place(wx[b], w, win, r->o->stride);
                    float *dst = crops + (size_t)b * crop;
                    copy_box(r->input, w, c, sy, sx, sh, sw, dst);
                    /* The window, clipped to the crop (rows it loses reach no
                     * dirty cell). */
                    const int ya = y0 > sy ? y0 : sy, yb = y0 + win < sy + sh ? y0 + win : sy + sh;
                    const int xa = x0 > sx ? x0 : sx, xb = x0 + win < sx + sw ? x0 + win : sx + sw;
                    for (int y = ya; y < yb && xa < xb; y++)
                        memcpy(dst + ((size_t)(y - sy) * (size_t)sw + (size_t)(xa - sx)) * c,
                               r->fill + ((size_t)y * (size_t)w + (size_t)xa) * c,
                               (size_t)(xb - xa) * (size_t)c * sizeof *dst);
                }
                if ((st = cnn_net_forward_map(pre[kr][kc], crops, n, &v)) != CNN_OK) goto done;
                const size_t vimg = (size_t)v.h * (size_t)v.w * (size_t)v.c;
                for (int b = 0; b < n; b++) {
                    float *dst = maps + (size_t)b * cut_floats;
                    memcpy(dst, clean, cut_floats * sizeof *dst);
                    const int d0y = p->rows.d0[wy[b]], d1y = p->rows.d1[wy[b]];
                    const int d0x = p->cols.d0[wx[b]], d1x = p->cols.d1[wx[b]];
                    /* the crop's origin in the cut map */
                    const int cy = p->rows.start[wy[b]] / p->rows.factor;
                    const int cx = p->cols.start[wx[b]] / p->cols.factor;
                    for (int y = d0y; y < d1y; y++)
                        memcpy(dst + ((size_t)y * (size_t)cw + (size_t)d0x) * cc,
                               v.data + (size_t)b * vimg +
                                   ((size_t)(y - cy) * (size_t)v.w + (size_t)(d0x - cx)) * cc,
                               (size_t)(d1x - d0x) * (size_t)cc * sizeof *dst);
                }
                if ((st = cnn_net_forward(suffix, maps, n, logits)) != CNN_OK) goto done;
                for (int b = 0; b < n; b++)
                    add_drop(r->sum, r->count, w, win, place(wy[b], h, win, r->o->stride),
                             place(wx[b], w, win, r->o->stride),
                             r->sign * (r->base - (double)logits[b]));
                done_windows += n;
                if (r->o->progress) {
                    r->o->progress((double)done_windows / total, r->o->progress_data);
                    reported = done_windows == total;
                }
            }
        }
    if (r->o->progress && !reported) r->o->progress(1.0, r->o->progress_data);

done:
    for (int kr = 0; kr < 2; kr++)
        for (int kc = 0; kc < 2; kc++) cnn_net_free(pre[kr][kc]);
    cnn_net_free(suffix);
    cnn_net_free(full);
    free(logits);
    cnn_free_aligned(maps);
    cnn_free_aligned(crops);
    free(clean);
    return st;
}

/* Every occluded copy through the whole net, batch at a time. */
static cnn_status run_full(const occ_run *r, float *in, float *logits)
{
    const cnn_model *m = r->m;
    const int h = m->in_h, w = m->in_w, c = m->in_c, win = r->o->window;
    const size_t floats = (size_t)h * (size_t)w * (size_t)c;
    const int ny = cnn_occlusion_places(h, win, r->o->stride);
    const int nx = cnn_occlusion_places(w, win, r->o->stride);
    const int total = ny * nx;
    const size_t row = (size_t)w * (size_t)c, wrow = (size_t)win * (size_t)c;
    for (int first = 0; first < total; first += r->batch) {
        const int n = total - first < r->batch ? total - first : r->batch;
        for (int j = 0; j < n; j++) {
            const int y0 = place((first + j) / nx, h, win, r->o->stride);
            const int x0 = place((first + j) % nx, w, win, r->o->stride);
            float *dst = in + (size_t)j * floats;
            memcpy(dst, r->input, floats * sizeof *dst);
            for (int y = y0; y < y0 + win; y++) {
                const size_t at = (size_t)y * row + (size_t)x0 * (size_t)c;
                memcpy(dst + at, r->fill + at, wrow * sizeof *dst);
            }
        }
        cnn_status st = cnn_net_forward(r->net, in, n, logits);
        if (st != CNN_OK) return st;
        for (int j = 0; j < n; j++)
            add_drop(r->sum, r->count, w, win, place((first + j) / nx, h, win, r->o->stride),
                     place((first + j) % nx, w, win, r->o->stride),
                     r->sign * (r->base - (double)logits[j]));
        if (r->o->progress) r->o->progress((double)(first + n) / total, r->o->progress_data);
    }
    return CNN_OK;
}

cnn_status cnn_occlusion_map(cnn_net *net, int batch, const float *input,
                             const cnn_occlusion_options *o, float *map, size_t map_len,
                             float *logit)
{
    if (!net || !input || !o || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_occlusion_map: NULL argument");
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    if (map_len < pixels)
        return cnn_fail(CNN_ERR_ARG, "occlusion: map holds %zu floats, the input needs %zu",
                        map_len, pixels);
    if (batch < 1 || batch > 1024)
        return cnn_fail(CNN_ERR_ARG, "occlusion: batch %d is not in 1 .. 1024", batch);
    if ((st = check_options(m, o)) != CNN_OK) return st;

    occ_plan p;
    if ((st = plan_occlusion(m, o, &p)) != CNN_OK) return st;
    size_t batch_floats = 0;
    if (p.cut == 0 && !cnn_mul_size(floats, (size_t)batch, &batch_floats)) {
        occ_plan_free(&p);
        return cnn_fail(CNN_ERR_LIMIT, "occlusion: batch %d of %zu floats is too large", batch,
                        floats);
    }
    float *fill = cnn_alloc(floats, sizeof *fill);
    float *in = fill && p.cut == 0 ? cnn_alloc_aligned(batch_floats, sizeof *in) : NULL;
    float *logits = in ? cnn_alloc((size_t)batch, sizeof *logits) : NULL;
    double *sum = fill && (logits || p.cut > 0) ? cnn_alloc(pixels, sizeof *sum) : NULL;
    int *count = sum ? cnn_alloc(pixels, sizeof *count) : NULL;
    if (!count) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        goto done;
    }
    if ((st = cnn_fill_input(m, input, o->fill, o->window / 3.0, fill)) != CNN_OK) goto done;

    float base;
    if ((st = cnn_net_forward(net, input, 1, &base)) != CNN_OK) goto done;
    if (!isfinite(base)) {
        st = cnn_fail(CNN_ERR_MODEL, "occlusion: the network's logit is not finite");
        goto done;
    }
    const occ_run r = {net, m, input, fill, o, batch, base, base >= 0.0f ? 1.0 : -1.0, sum,
                       count};
    st = p.cut > 0 ? run_incremental(&r, &p) : run_full(&r, in, logits);
    if (st != CNN_OK) goto done;
    for (size_t q = 0; q < pixels; q++) map[q] = count[q] ? (float)(sum[q] / count[q]) : 0.0f;
    if (logit) *logit = base;

done:
    occ_plan_free(&p);
    free(count);
    free(sum);
    free(logits);
    cnn_free_aligned(in);
    free(fill);
    return st;
}

cnn_status cnn_map_resize(const float *src, int src_h, int src_w, float *dst, int dst_h,
                          int dst_w)
{
    if (!src || !dst) return cnn_fail(CNN_ERR_ARG, "cnn_map_resize: NULL argument");
    if (src_h < 1 || src_w < 1 || dst_h < 1 || dst_w < 1 || src_h > CNN_MAX_DIM ||
        src_w > CNN_MAX_DIM || dst_h > CNN_MAX_DIM || dst_w > CNN_MAX_DIM)
        return cnn_fail(CNN_ERR_ARG, "cnn_map_resize: %dx%d to %dx%d is not in 1 .. %d", src_w,
                        src_h, dst_w, dst_h, CNN_MAX_DIM);
    for (int y = 0; y < dst_h; y++) {
        const double fy = dst_h > 1 ? (double)y * (src_h - 1) / (dst_h - 1) : (src_h - 1) / 2.0;
        const int y0 = (int)fy, y1 = y0 + 1 < src_h ? y0 + 1 : y0;
        const double ty = fy - y0;
        for (int x = 0; x < dst_w; x++) {
            const double fx =
                dst_w > 1 ? (double)x * (src_w - 1) / (dst_w - 1) : (src_w - 1) / 2.0;
            const int x0 = (int)fx, x1 = x0 + 1 < src_w ? x0 + 1 : x0;
            const double tx = fx - x0;
            const double top = (1 - tx) * src[(size_t)y0 * src_w + x0] +
                               tx * src[(size_t)y0 * src_w + x1];
            const double bottom = (1 - tx) * src[(size_t)y1 * src_w + x0] +
                                  tx * src[(size_t)y1 * src_w + x1];
            dst[(size_t)y * dst_w + x] = (float)((1 - ty) * top + ty * bottom);
        }
    }
    return CNN_OK;
}

cnn_status cnn_explain_map(cnn_net *net, const cnn_explain_options *o, const float *input,
                           float *map, size_t map_len, float *logit)
{
    if (!net || !o || !input || !map)
        return cnn_fail(CNN_ERR_ARG, "cnn_explain_map: NULL argument");
    if (o->method == CNN_EXPLAIN_OCCLUSION)
        return cnn_occlusion_map(net, o->batch, input, &o->occlusion, map, map_len, logit);
    if (o->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS) {
        /* A backward pass planned per map: the trust checks' cascade
         * changes the model between maps. */
        cnn_grad_options go = {.layer = -1, .batch = o->batch, .threads = o->threads,
                               .precision = CNN_PRECISION_F32};
        cnn_grad *g = NULL;
        cnn_ig_result r;
        cnn_status st = cnn_grad_create(cnn_net_model(net), &go, &g);
        if (st == CNN_OK) st = cnn_integrated_gradients(g, input, &o->ig, NULL, map, map_len, &r);
        cnn_grad_free(g);
        if (st == CNN_OK && logit) *logit = (float)r.logit;
        return st;
    }
    if (o->method != CNN_EXPLAIN_GRADCAM)
        return cnn_fail(CNN_ERR_ARG, "unknown heat-map method %d", (int)o->method);
    const cnn_model *m = cnn_net_model(net);
    size_t pixels, floats;
    cnn_status st = input_size(m, &pixels, &floats);
    if (st != CNN_OK) return st;
    if (map_len < pixels)
        return cnn_fail(CNN_ERR_ARG, "Grad-CAM: map holds %zu floats, the input needs %zu",
                        map_len, pixels);
    float out;
    if ((st = cnn_net_forward(net, input, 1, &out)) != CNN_OK) return st;
    const int taps = cnn_net_tap_count(net);
    if (taps == 0) return cnn_fail(CNN_ERR_ARG, "Grad-CAM: the network has no conv layer");
    const int tap = o->tap < 0 ? taps - 1 : o->tap;
    cnn_tensor_view v;
    if ((st = cnn_net_tap(net, tap, &v, NULL)) != CNN_OK) return st;
    const size_t cells = (size_t)v.h * (size_t)v.w;
    float *cam = cnn_alloc(cells, sizeof *cam);
    if (!cam) return cnn_fail_prefix(CNN_ERR_NOMEM, "Grad-CAM");
    st = cnn_net_gradcam(net, 0, tap, cam, cells, NULL);
    if (st == CNN_OK) st = cnn_map_resize(cam, v.h, v.w, map, m->in_h, m->in_w);
    free(cam);
    if (st == CNN_OK && logit) *logit = out;
    return st;
}
