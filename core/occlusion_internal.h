/* occlusion_internal.h - what occlusion.c and occlusion_incremental.c
 * share (cnn_occlusion_map's two paths); not installed. */
#ifndef CNN_OCCLUSION_INTERNAL_H
#define CNN_OCCLUSION_INTERNAL_H

#include "cnn_internal.h"

/* Place i of a side: i * stride, the last one flush with the edge. */
int cnn_occlusion_place(int i, int size, int window, int stride);

/* One occlusion map being computed: the net and its inputs, the input's
 * logit and the verdict's sign, the sums and counts of the drops. */
typedef struct {
    cnn_net *net;
    int batch;
    const float *input, *fill;
    const cnn_occlusion_options *o;
    double base, sign;
    double *sum;
    int *count;
} cnn_occ_run;

/* Adds drop to the pixels of the window at (y0, x0). */
void cnn_occ_add_drop(const cnn_occ_run *r, int y0, int x0, double drop);

/* The incremental passes (occlusion_incremental.c): *out is the plan for
 * m and o, or NULL where full passes are used (the path asked for, a
 * model the scheme does not understand, no saving). */
typedef struct cnn_occ_plan cnn_occ_plan;
cnn_status cnn_occ_plan_create(const cnn_model *m, const cnn_occlusion_options *o,
                               cnn_occ_plan **out);
/* Fills what the plan does into out (cleared by the caller). */
void cnn_occ_plan_describe(const cnn_occ_plan *p, const cnn_model *m, cnn_occlusion_info *out);
/* Adds every window's drop through cnn_occ_add_drop, reporting progress
 * per batch; plans the sub-nets and allocates the buffers once. */
cnn_status cnn_occ_plan_run(const cnn_occ_plan *p, const cnn_occ_run *r);
void cnn_occ_plan_free(cnn_occ_plan *p);

#endif
