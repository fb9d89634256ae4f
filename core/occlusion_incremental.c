/* occlusion_incremental.c - occlusion maps by incremental passes
 * (cnn_occlusion_map's automatic path; occlusion_internal.h).
 *
 * A window changes only a small region of the early feature maps.  The
 * layers the scheme understands come first: stride-1 convolutions with an
 * odd kernel padded by k/2 on every side ('same'), pointwise layers
 * (batch-norm, ReLU, dropout) and max pools whose window equals their
 * stride; the first layer of another kind ends that prefix.  It is split
 * into stages, one before each conv (and one at the prefix's end), up to
 * a cut; the layers after the cut are the suffix.
 *
 * Along each axis a window's rows [a, b) change ("dirty") cells [d0, d1)
 * of each stage's output: a conv widens them by k/2 on each side
 * (clipped to the map), a pool of stride s maps [a, b) to
 * [a/s, (b-1)/s] (clipped: floor pooling drops the last rows); a window
 * whose cells all fall in dropped rows changes nothing (its drop is 0, as
 * in a full pass).  Stage k then runs, per window, on a crop of its input
 * map that holds exactly the cells its dirty output cells depend on:
 * the clean picture's map there with the window's dirty cells of stage
 * k-1 pasted in (for stage 1, the input with the window filled), and
 * zeros where the crop lies outside the map.  The crop's sub-net runs
 * its conv without padding, so it computes only cells whose whole window
 * lies in the crop; those zeros are the padding the full pass adds (a
 * stage's conv is its first layer: stages start before each conv), and
 * no cell is computed only to be thrown away at a crop edge.  A crop
 * starts where its pooling grid is the full map's and has one size per
 * stage and axis (the widest window's; the others' crops hold some
 * extra, equally right, cells).  Stage k's dirty cells come from its
 * crop's output; the last stage's are pasted into the clean picture's
 * map at the cut and the suffix runs on batches of those maps.  Every
 * cell is computed from the same values by the same layers as in a full
 * pass, so the map is that of the full passes up to float rounding.
 *
 * The cut (or none) is the one with the fewest multiply-adds, counted
 * from the slices' shapes: the input's own pass, the clean picture's pass
 * through the prefix, and per window the crops' stages and the suffix. */
#include "layers.h"
#include "occlusion_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this share of the full passes' multiply-adds the incremental
 * passes pay for their extra work (planning the sub-nets, copying maps). */
#define INCREMENTAL_SHARE 0.75

/* What a layer of the prefix does to an axis: a conv of radius r (pool
 * 0), a max pool of stride pool (r 0), or nothing (both 0). */
typedef struct {
    int r, pool;
} axis_op;

/* Whether the scheme understands layer L; *op: what it does to an axis. */
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
        return L->kernel == L->stride && L->out_h == L->in_h / L->stride &&
               L->out_w == L->in_w / L->stride;
    case CNN_STEP_AFFINE:
    case CNN_STEP_RELU:
        return same_shape && L->out_c == L->in_c;
    default:
        /* dropout, the identity (a flatten changes the shape) */
        return (ops->flags & CNN_LOP_FREE_AT_INFERENCE) && same_shape && L->out_c == L->in_c;
    }
}

/* A stage: layers [first, end), the axis ops [op0, op1) they make, its
 * pooling factor, and its slices of the model (crop: at the crop size;
 * full: at the clean map's size). */
typedef struct {
    int first, end, op0, op1, factor;
    cnn_model *crop, *full;
} stage;

/* One axis: per stage k and place i, the crop's first cell start and the
 * dirty output cells [d0, d1) (index k * n + i); live[i]: whether place
 * i changes anything. */
typedef struct {
    int n;                         /* places */
    int live;                      /* places that change something */
    int size[CNN_MAX_LAYERS];      /* crop size per stage */
    int in[CNN_MAX_LAYERS + 1];    /* map size at each stage's input; [K]: the cut */
    int dmax[CNN_MAX_LAYERS];      /* widest dirty output per stage */
    int *start, *d0, *d1;          /* [K * n] each, one block at start */
    int *o0;                       /* [K * n]: the full map's cell at the crop's output (0, 0) */
    unsigned char *changes;        /* [n], in the same block */
} axis_plan;

struct cnn_occ_plan {
    int cut;                       /* first layer of the suffix */
    int n_stages;
    stage st[CNN_MAX_LAYERS];
    axis_plan rows, cols;
    cnn_model *suffix;
    int windows, changing;
    double macs, macs_full;
};

static void axis_free(axis_plan *a)
{
    free(a->start);
    memset(a, 0, sizeof *a);
}

void cnn_occ_plan_free(cnn_occ_plan *p)
{
    if (!p) return;
    axis_free(&p->rows);
    axis_free(&p->cols);
    for (int k = 0; k < p->n_stages; k++) {
        cnn_model_slice_free(p->st[k].crop);
        cnn_model_slice_free(p->st[k].full);
    }
    cnn_model_slice_free(p->suffix);
    free(p);
}

/* Where a crop from cell `lo` of stage s's input lands: false unless
 * every pool of the stage sees its input from a multiple of its stride
 * (the full map's pooling grid); *o: the stage output's first cell, in
 * the full map's coordinates (a conv run without padding starts r cells
 * in). */
static bool crop_origin(const axis_op *ops, const stage *s, long long lo, long long *o)
{
    for (int j = s->op0; j < s->op1; j++) {
        lo += ops[j].r;
        if (ops[j].pool) {
            if (lo % ops[j].pool != 0) return false;
            lo /= ops[j].pool;
        }
    }
    *o = lo;
    return true;
}

/* Plans one axis of `size` pixels: false when the cut cannot be used
 * along it (a map of no cells, a crop beyond the size limit or whose
 * output would miss a dirty cell);
 * *st is CNN_ERR_NOMEM or CNN_OK. */
static bool plan_axis(const axis_op *ops, const stage *sts, int n_stages, int size, int window,
                      int stride, axis_plan *a, cnn_status *st)
{
    *st = CNN_OK;
    const int n_ops = sts[n_stages - 1].op1;
    int lev[CNN_MAX_LAYERS + 1]; /* the map's size before op i */
    lev[0] = size;
    for (int i = 0; i < n_ops; i++) {
        lev[i + 1] = ops[i].pool ? lev[i] / ops[i].pool : lev[i];
        if (lev[i + 1] < 1) return false;
    }
    const int n = cnn_occlusion_places(size, window, stride);
    if (n < 1) return false;
    size_t cells;
    if (!cnn_mul_size((size_t)n, (size_t)n_stages * 4 + 1, &cells)) return false;
    a->n = n;
    a->start = cnn_alloc(cells, sizeof *a->start);
    if (!a->start) {
        *st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        return false;
    }
    a->d0 = a->start + (size_t)n_stages * n;
    a->d1 = a->d0 + (size_t)n_stages * n;
    a->o0 = a->d1 + (size_t)n_stages * n;
    a->changes = (unsigned char *)(a->o0 + (size_t)n_stages * n);
    for (int k = 0; k < n_stages; k++) a->in[k] = lev[sts[k].op0];
    a->in[n_stages] = lev[n_ops];

    /* The dirty cells after each stage (forward). */
    for (int i = 0; i < n; i++) {
        long long d0 = cnn_occlusion_place(i, size, window, stride), d1 = d0 + window;
        for (int k = 0; k < n_stages; k++) {
            for (int j = sts[k].op0; j < sts[k].op1 && d0 < d1; j++) {
                if (ops[j].r) {
                    d0 = d0 - ops[j].r < 0 ? 0 : d0 - ops[j].r;
                    d1 = d1 + ops[j].r > lev[j] ? lev[j] : d1 + ops[j].r;
                } else if (ops[j].pool) {
                    d1 = (d1 - 1) / ops[j].pool + 1;
                    d0 /= ops[j].pool;
                    if (d1 > lev[j + 1]) d1 = lev[j + 1];
                }
            }
            a->d0[(size_t)k * n + i] = (int)d0;
            a->d1[(size_t)k * n + i] = (int)(d1 > d0 ? d1 : d0);
        }
        a->changes[i] = d0 < d1;
        a->live += a->changes[i];
    }
    /* Per stage: the crop each window needs (the inverse of its dirty
     * output, run without padding), from the last start at or before it
     * whose pooling grid is the full map's; one size for all. */
    for (int k = 0; k < n_stages; k++) {
        const stage *s = &sts[k];
        long long need = 0;
        int *start = a->start + (size_t)k * n, *out0 = a->o0 + (size_t)k * n;
        for (int i = 0; i < n; i++) {
            if (!a->changes[i]) continue;
            long long q0 = a->d0[(size_t)k * n + i], q1 = a->d1[(size_t)k * n + i];
            const int d = (int)(q1 - q0);
            if (d > a->dmax[k]) a->dmax[k] = d;
            for (int j = s->op1 - 1; j >= s->op0; j--) {
                if (ops[j].pool) {
                    q0 *= ops[j].pool;
                    q1 *= ops[j].pool;
                }
                q0 -= ops[j].r;
                q1 += ops[j].r;
            }
            long long lo = q0, o = 0;
            for (int tries = 0; !crop_origin(ops, s, lo, &o); tries++, lo--)
                if (tries >= s->factor) {
                    axis_free(a);
                    return false;
                }
            start[i] = (int)lo;
            out0[i] = (int)o;
            if (q1 - lo > need) need = q1 - lo;
        }
        if (a->live == 0) need = a->in[k];
        if (need > CNN_MAX_DIM) {
            axis_free(a);
            return false;
        }
        a->size[k] = (int)need;
        /* The crop's output: every cell of it is right (cells outside the
         * map are the padding's zeros), and it holds the dirty cells. */
        long long out = need;
        for (int j = s->op0; j < s->op1; j++)
            out = ops[j].pool ? out / ops[j].pool : out - 2 * ops[j].r;
        for (int i = 0; i < n; i++) {
            if (!a->changes[i]) continue;
            const long long d0 = a->d0[(size_t)k * n + i], d1 = a->d1[(size_t)k * n + i];
            if (!(out0[i] <= d0 && d1 <= out0[i] + out)) {
                axis_free(a);
                return false;
            }
        }
    }
    return true;
}

/* A slice whose shapes fail (a crop too small for a layer) only rules
 * the cut out; out of memory fails. */
static cnn_status slice(const cnn_model *m, int first, int end, int h, int w, bool unpadded,
                        cnn_model **out, bool *ok)
{
    cnn_status st = cnn_model_slice(m, first, end, h, w, unpadded, out);
    if (st != CNN_OK) *ok = false;
    return st == CNN_ERR_NOMEM ? st : CNN_OK;
}

/* Plans the cut before layer `cut` with stages ending at ends[0 ..
 * n_stages-1] (the last is cut); *p is NULL when it cannot be used. */
static cnn_status plan_cut(const cnn_model *m, const cnn_occlusion_options *o,
                           const axis_op *ops, const int *op_at, const int *ends, int n_stages,
                           cnn_occ_plan **out)
{
    *out = NULL;
    cnn_occ_plan *p = cnn_alloc(1, sizeof *p);
    if (!p) return cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
    p->cut = ends[n_stages - 1];
    p->n_stages = n_stages;
    for (int k = 0; k < n_stages; k++) {
        stage *s = &p->st[k];
        s->first = k ? ends[k - 1] : 0;
        s->end = ends[k];
        s->op0 = op_at[s->first];
        s->op1 = op_at[s->end];
        s->factor = 1;
        for (int j = s->op0; j < s->op1; j++) s->factor *= ops[j].pool ? ops[j].pool : 1;
    }
    cnn_status st;
    bool ok = plan_axis(ops, p->st, n_stages, m->in_h, o->window, o->stride, &p->rows, &st) &&
              plan_axis(ops, p->st, n_stages, m->in_w, o->window, o->stride, &p->cols, &st);
    p->windows = p->rows.n * p->cols.n;
    p->changing = p->rows.live * p->cols.live;
    double per_window = 0, once = (double)m->macs;
    for (int k = 0; ok && st == CNN_OK && k < n_stages; k++) {
        stage *s = &p->st[k];
        st = slice(m, s->first, s->end, p->rows.size[k], p->cols.size[k], true, &s->crop, &ok);
        if (ok && st == CNN_OK)
            st = slice(m, s->first, s->end, p->rows.in[k], p->cols.in[k], false, &s->full, &ok);
        if (!ok || st != CNN_OK) break;
        const cnn_layer *last = &s->full->layers[s->end - s->first - 1];
        ok = last->out_h == p->rows.in[k + 1] && last->out_w == p->cols.in[k + 1];
        per_window += (double)s->crop->macs;
        once += (double)s->full->macs;
    }
    if (ok && st == CNN_OK)
        st = slice(m, p->cut, m->n_layers, p->rows.in[n_stages], p->cols.in[n_stages], false,
                   &p->suffix, &ok);
    if (!ok || st != CNN_OK) {
        cnn_occ_plan_free(p);
        return st;
    }
    p->macs_full = (double)(p->windows + 1) * (double)m->macs;
    p->macs = once + (double)p->changing * (per_window + (double)p->suffix->macs);
    *out = p;
    return CNN_OK;
}

cnn_status cnn_occ_plan_create(const cnn_model *m, const cnn_occlusion_options *o,
                               cnn_occ_plan **out)
{
    *out = NULL;
    if (o->path == CNN_OCCLUSION_FULL) return CNN_OK;
    const double full = (double)(cnn_occlusion_places(m->in_h, o->window, o->stride) *
                                 cnn_occlusion_places(m->in_w, o->window, o->stride) + 1) *
                        (double)m->macs;
    axis_op ops[CNN_MAX_LAYERS];
    int op_at[CNN_MAX_LAYERS + 1]; /* ops before layer i */
    int ends[CNN_MAX_LAYERS], n_ends = 0, n_ops = 0, u = 0;
    for (; u < m->n_layers - 1; u++) {
        axis_op op;
        op_at[u] = n_ops;
        if (!understood(&m->layers[u], &op)) break;
        /* A stage ends before each conv after the first layer. */
        if (u > 0 && op.r && (n_ends == 0 || ends[n_ends - 1] != u)) ends[n_ends++] = u;
        if (op.r || op.pool) ops[n_ops++] = op;
    }
    op_at[u] = n_ops;
    if (u > 0 && (n_ends == 0 || ends[n_ends - 1] != u)) ends[n_ends++] = u;
    /* Every cut, stages at every boundary before it: the cheapest. */
    for (int k = 1; k <= n_ends; k++) {
        cnn_occ_plan *c = NULL;
        cnn_status st = plan_cut(m, o, ops, op_at, ends, k, &c);
        if (st != CNN_OK) {
            cnn_occ_plan_free(*out);
            *out = NULL;
            return st;
        }
        if (c && c->macs < INCREMENTAL_SHARE * full && (!*out || c->macs < (*out)->macs)) {
            cnn_occ_plan_free(*out);
            *out = c;
        } else {
            cnn_occ_plan_free(c);
        }
    }
    return CNN_OK;
}

void cnn_occ_plan_describe(const cnn_occ_plan *p, const cnn_model *m, cnn_occlusion_info *out)
{
    out->incremental = true;
    snprintf(out->cut, sizeof out->cut, "%s", m->layers[p->cut - 1].name);
    out->stages = p->n_stages;
    out->crop_h = p->rows.size[0];
    out->crop_w = p->cols.size[0];
    out->macs = p->macs;
    out->macs_full = p->macs_full;
}

/* Rows [y0, y0 + rows) x columns [x0, x0 + cols) of a map w cells wide
 * with c channels, packed into dst. */
static void copy_rows(const float *src, int w, int c, int y0, int x0, int rows, int cols,
                      float *dst)
{
    const size_t len = (size_t)cols * (size_t)c;
    for (int y = 0; y < rows; y++)
        memcpy(dst + (size_t)y * len, src + ((size_t)(y0 + y) * (size_t)w + (size_t)x0) * c,
               len * sizeof *dst);
}

/* Where dirty cells come from: rows [y0, y1) x columns [x0, x1) of a map
 * whose cell (y, x) is at data + ((y - oy) * row + (x - ox) * c). */
typedef struct {
    const float *data;
    int oy, ox;
    size_t row;
    int y0, y1, x0, x1;
} patch;

/* A box of the map src (h x w cells, c channels) from (y, x), rows x
 * cols, into dst: zeros where it lies outside the map (the padding the
 * conv that reads it would add), with the cells of pt inside it
 * replaced. */
static void crop_box(const float *src, int h, int w, int c, int y, int x, int rows, int cols,
                     const patch *pt, float *dst)
{
    const size_t len = (size_t)cols * (size_t)c;
    const int xa0 = x > 0 ? x : 0, xb0 = x + cols < w ? x + cols : w;
    for (int i = 0; i < rows; i++) {
        float *row = dst + (size_t)i * len;
        if (y + i < 0 || y + i >= h || xa0 >= xb0) {
            memset(row, 0, len * sizeof *row);
            continue;
        }
        if (xa0 > x) memset(row, 0, (size_t)(xa0 - x) * (size_t)c * sizeof *row);
        memcpy(row + (size_t)(xa0 - x) * c, src + ((size_t)(y + i) * (size_t)w + (size_t)xa0) * c,
               (size_t)(xb0 - xa0) * (size_t)c * sizeof *row);
        if (xb0 < x + cols)
            memset(row + (size_t)(xb0 - x) * c, 0,
                   (size_t)(x + cols - xb0) * (size_t)c * sizeof *row);
    }
    const int ya = pt->y0 > y ? pt->y0 : y, yb = pt->y1 < y + rows ? pt->y1 : y + rows;
    const int xa = pt->x0 > x ? pt->x0 : x, xb = pt->x1 < x + cols ? pt->x1 : x + cols;
    for (int yy = ya; yy < yb && xa < xb; yy++)
        memcpy(dst + ((size_t)(yy - y) * (size_t)cols + (size_t)(xa - x)) * c,
               pt->data + (size_t)(yy - pt->oy) * pt->row + (size_t)(xa - pt->ox) * c,
               (size_t)(xb - xa) * (size_t)c * sizeof *dst);
}

cnn_status cnn_occ_plan_run(const cnn_occ_plan *p, const cnn_occ_run *r)
{
    const cnn_model *m = cnn_net_model(r->net);
    const int h = m->in_h, w = m->in_w, win = r->o->window, K = p->n_stages;
    const axis_plan *ar = &p->rows, *ac = &p->cols;
    cnn_net *full[CNN_MAX_LAYERS] = {0}, *crop[CNN_MAX_LAYERS] = {0}, *suffix = NULL;
    float *crops = NULL, *patches[2] = {NULL, NULL}, *maps = NULL, *logits = NULL;
    const float *clean[CNN_MAX_LAYERS + 1];
    int *wy = NULL, *wx = NULL;
    /* Buffers for a batch: crops, dirty patches (two: the last stage's
     * and this one's), the suffix's inputs. */
    size_t crop_floats = 0, patch_floats = 0, cut_floats = 0, all[3];
    bool ok = true;
    for (int k = 0; k < K && ok; k++) {
        const cnn_layer *L0 = &p->st[k].full->layers[0];
        const cnn_layer *L1 = &p->st[k].full->layers[p->st[k].end - p->st[k].first - 1];
        size_t a, b;
        ok = cnn_mul_size((size_t)ar->size[k] * (size_t)ac->size[k], (size_t)L0->in_c, &a) &&
             cnn_mul_size((size_t)ar->dmax[k] * (size_t)ac->dmax[k], (size_t)L1->out_c, &b);
        if (a > crop_floats) crop_floats = a;
        if (b > patch_floats) patch_floats = b;
    }
    const int cc = p->suffix->in_c;
    ok = ok && cnn_mul_size((size_t)ar->in[K] * (size_t)ac->in[K], (size_t)cc, &cut_floats) &&
         cnn_mul_size(crop_floats, (size_t)r->batch, &all[0]) &&
         cnn_mul_size(patch_floats, (size_t)r->batch, &all[1]) &&
         cnn_mul_size(cut_floats, (size_t)r->batch, &all[2]);
    if (!ok) return cnn_fail(CNN_ERR_LIMIT, "occlusion: the incremental passes' buffers overflow");
    cnn_status st = CNN_OK;
    crops = cnn_alloc_aligned(all[0], sizeof *crops);
    patches[0] = crops ? cnn_alloc_aligned(all[1], sizeof(float)) : NULL;
    patches[1] = patches[0] ? cnn_alloc_aligned(all[1], sizeof(float)) : NULL;
    maps = patches[1] ? cnn_alloc_aligned(all[2], sizeof *maps) : NULL;
    logits = maps ? cnn_alloc((size_t)r->batch, sizeof *logits) : NULL;
    wy = logits ? cnn_alloc((size_t)r->batch * 2, sizeof *wy) : NULL;
    if (!wy) {
        st = cnn_fail_prefix(CNN_ERR_NOMEM, "occlusion");
        goto done;
    }
    wx = wy + r->batch;
    /* The sub-nets, and the clean picture's map at every stage. */
    clean[0] = r->input;
    for (int k = 0; k < K && st == CNN_OK; k++) {
        cnn_tensor_view v;
        st = cnn_net_create_like(p->st[k].full, 1, r->net, true, &full[k]);
        if (st == CNN_OK) st = cnn_net_create_like(p->st[k].crop, r->batch, r->net, true, &crop[k]);
        /* Each full net runs once: its output stays until it is freed. */
        if (st == CNN_OK) st = cnn_net_forward_map(full[k], clean[k], 1, &v);
        if (st == CNN_OK) clean[k + 1] = v.data;
    }
    if (st == CNN_OK) st = cnn_net_create_like(p->suffix, r->batch, r->net, false, &suffix);
    if (st != CNN_OK) goto done;

    /* Windows that change nothing at the cut: a drop of 0. */
    int done_windows = 0;
    for (int i = 0; i < ar->n; i++)
        for (int j = 0; j < ac->n; j++)
            if (!ar->changes[i] || !ac->changes[j]) {
                cnn_occ_add_drop(r, cnn_occlusion_place(i, h, win, r->o->stride),
                                 cnn_occlusion_place(j, w, win, r->o->stride), 0.0);
                done_windows++;
            }
    for (int next = 0; next < p->windows;) {
        int n = 0;
        for (; next < p->windows && n < r->batch; next++) {
            const int i = next / ac->n, j = next % ac->n;
            if (!ar->changes[i] || !ac->changes[j]) continue;
            wy[n] = i;
            wx[n++] = j;
        }
        if (n == 0) break;
        float *prev = patches[0], *cur = patches[1];
        for (int k = 0; k < K; k++) {
            const int sh = ar->size[k], sw = ac->size[k], hk = ar->in[k], wk = ac->in[k];
            const int cin = p->st[k].full->in_c;
            const size_t crop_img = (size_t)sh * (size_t)sw * (size_t)cin;
            for (int b = 0; b < n; b++) {
                const size_t ri = (size_t)wy[b], ci = (size_t)wx[b];
                patch pt;
                if (k == 0) {
                    const int y0 = cnn_occlusion_place(wy[b], h, win, r->o->stride);
                    const int x0 = cnn_occlusion_place(wx[b], w, win, r->o->stride);
                    pt = (patch){r->fill, 0, 0, (size_t)w * (size_t)cin, y0, y0 + win, x0,
                                 x0 + win};
                } else {
                    const size_t at = (size_t)(k - 1) * (size_t)ar->n + ri;
                    const size_t atc = (size_t)(k - 1) * (size_t)ac->n + ci;
                    pt = (patch){prev + (size_t)b * patch_floats, ar->d0[at], ac->d0[atc],
                                 (size_t)(ac->d1[atc] - ac->d0[atc]) * (size_t)cin,
                                 ar->d0[at], ar->d1[at], ac->d0[atc], ac->d1[atc]};
                }
                crop_box(clean[k], hk, wk, cin, ar->start[(size_t)k * ar->n + ri],
                         ac->start[(size_t)k * ac->n + ci], sh, sw, &pt,
                         crops + (size_t)b * crop_img);
            }
            cnn_tensor_view v;
            if ((st = cnn_net_forward_map(crop[k], crops, n, &v)) != CNN_OK) goto done;
            const size_t vimg = (size_t)v.h * (size_t)v.w * (size_t)v.c;
            for (int b = 0; b < n; b++) {
                const size_t at = (size_t)k * (size_t)ar->n + (size_t)wy[b];
                const size_t atc = (size_t)k * (size_t)ac->n + (size_t)wx[b];
                const int y0 = ar->d0[at] - ar->o0[at], x0 = ac->d0[atc] - ac->o0[atc];
                copy_rows(v.data + (size_t)b * vimg, v.w, v.c, y0, x0, ar->d1[at] - ar->d0[at],
                          ac->d1[atc] - ac->d0[atc], cur + (size_t)b * patch_floats);
            }
            float *t = prev;
            prev = cur;
            cur = t;
        }
        /* The last stage's cells into the clean map at the cut. */
        for (int b = 0; b < n; b++) {
            const size_t at = (size_t)(K - 1) * (size_t)ar->n + (size_t)wy[b];
            const size_t atc = (size_t)(K - 1) * (size_t)ac->n + (size_t)wx[b];
            const patch pt = {prev + (size_t)b * patch_floats, ar->d0[at], ac->d0[atc],
                              (size_t)(ac->d1[atc] - ac->d0[atc]) * (size_t)cc,
                              ar->d0[at], ar->d1[at], ac->d0[atc], ac->d1[atc]};
            crop_box(clean[K], ar->in[K], ac->in[K], cc, 0, 0, ar->in[K], ac->in[K], &pt,
                     maps + (size_t)b * cut_floats);
        }
        if ((st = cnn_net_forward(suffix, maps, n, logits)) != CNN_OK) goto done;
        for (int b = 0; b < n; b++)
            cnn_occ_add_drop(r, cnn_occlusion_place(wy[b], h, win, r->o->stride),
                             cnn_occlusion_place(wx[b], w, win, r->o->stride),
                             r->sign * (r->base - (double)logits[b]));
        done_windows += n;
        if (r->o->progress && done_windows < p->windows)
            r->o->progress((double)done_windows / p->windows, r->o->progress_data);
    }
    if (r->o->progress) r->o->progress(1.0, r->o->progress_data);

done:
    for (int k = 0; k < K; k++) {
        cnn_net_free(crop[k]);
        cnn_net_free(full[k]);
    }
    cnn_net_free(suffix);
    free(wy);
    free(logits);
    cnn_free_aligned(maps);
    cnn_free_aligned(patches[1]);
    cnn_free_aligned(patches[0]);
    cnn_free_aligned(crops);
    return st;
}
