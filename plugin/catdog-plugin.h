/* catdog-plugin.h - pieces of the GIMP plug-in shared between its files.
 *
 * The plug-in is a thin adapter: GIMP images in, the CNN core (cnn.h) in
 * the middle, GIMP layers and PDB return values out.  Core failures become
 * GErrors in CATDOG_ERROR, and those become GIMP_PDB_EXECUTION_ERROR. */
#ifndef CATDOG_PLUGIN_H
#define CATDOG_PLUGIN_H

#include <string.h>

#include <libgimp/gimp.h>
#include <glib/gi18n-lib.h>

#include "cnn.h"

#define CATDOG_PROC "plug-in-catdog-classify"

#define CATDOG_ERROR (catdog_error_quark ())
GQuark catdog_error_quark (void);

#define CATDOG_INSTALL_PROC "plug-in-catdog-install-weights"

/* The user's models folder, <GIMP profile>/catdog/models (gimp_directory()
 * honours GIMP3_DIRECTORY); catdog-models.h says what it holds.  Free
 * with g_free(). */
gchar *catdog_models_dir (void);

/* Sets *error from the core's last failure: "prefix: core message". */
void catdog_set_core_error (GError    **error,
                            cnn_status  status,
                            const char *prefix);

/* ------------------------------------------------------------------ */
/* input.c: the pixels the network looks at                            */
/* ------------------------------------------------------------------ */

/* 8-bit sRGB pixels, 3 (RGB) or 4 (RGBA, not premultiplied) channels. */
typedef struct
{
  guint8 *pixels;
  gint    width;
  gint    height;
  gint    channels;
  gsize   stride;
  gint    reduction;    /* the image was read at 1/reduction of its size */
  /* The region read, in image coordinates at full size: the canvas, or
   * the selection's bounding box. */
  gint    region_x;
  gint    region_y;
  gint    region_width;
  gint    region_height;
} CatdogPixels;

/* Reads what the user sees: the visible layers composited, restricted to
 * the bounding box of the selection when there is one, already reduced
 * by a power of two that keeps it well above the network's input size
 * (see input.c and README, "What is classified"). */
gboolean catdog_read_visible (GimpImage     *image,
                              gint           input_width,
                              gint           input_height,
                              CatdogPixels  *out,
                              GError       **error);
void     catdog_pixels_clear (CatdogPixels  *pixels);

/* ------------------------------------------------------------------ */
/* maps.c: feature maps as layers, and putting new layers in the image */
/* ------------------------------------------------------------------ */

typedef enum
{
  CATDOG_MAPS_MOSAIC   = 0,
  CATDOG_MAPS_CHANNELS = 1
} CatdogMapsStyle;

/* The channels style never creates more layer pixels than this, in
 * bytes at the image's precision (1 GB). */
#define CATDOG_CHANNELS_BUDGET ((guint64) 1000 * 1000 * 1000)

/* Layers made while still detached from the layer tree, put into the
 * image all at once (one undo group) or deleted: a failure anywhere on
 * the way leaves the image as it was. */
typedef struct _CatdogPending CatdogPending;

CatdogPending *catdog_pending_new   (void);
/* Deletes the layers that did not make it into the image. */
void           catdog_pending_free  (CatdogPending *pending);

/* Adds the feature maps of the last forward pass of net: a group
 * group_name holding them (see maps.c).  layers is "all" (or empty) or a
 * comma-separated list of conv layer names.  top > 0 keeps only each
 * layer's `top` most active channels.  Progress runs from progress_start
 * to progress_end. */
gboolean catdog_pending_add_feature_maps (CatdogPending    *pending,
                                          GimpImage        *image,
                                          const cnn_net    *net,
                                          const gchar      *layers,
                                          CatdogMapsStyle   style,
                                          cnn_colormap      colormap,
                                          gint              top,
                                          const gchar      *group_name,
                                          gdouble           progress_start,
                                          gdouble           progress_end,
                                          GError          **error);

/* Adds a detached layer that goes above everything added before it;
 * pending owns it from now on. */
void     catdog_pending_add_layer  (CatdogPending  *pending,
                                    GimpLayer      *layer);

/* Inserts what pending holds right above `above` (NULL: at the top of
 * the stack), inside one undo group.  On failure nothing stays in the
 * image. */
gboolean catdog_pending_insert     (CatdogPending  *pending,
                                    GimpImage      *image,
                                    GimpLayer      *above,
                                    GError        **error);

/* The feature-map tap of the conv layer called name; NULL or "" is the
 * last conv layer.  Sets *error naming the model's conv layers when
 * there is no such layer. */
gboolean catdog_find_tap           (const cnn_net  *net,
                                    const gchar    *name,
                                    gint           *index,
                                    GError        **error);

/* ------------------------------------------------------------------ */
/* heatmap.c: Grad-CAM as a layer                                      */
/* ------------------------------------------------------------------ */

/* The heat map never gets more than this many pixels on a side before
 * it is enlarged to the layer (a Grad-CAM map has a few dozen). */
#define CATDOG_HEATMAP_MAX_SIDE 4096

/* A detached layer covering the classified region of image (pixels'
 * region_*) showing where the last forward pass of net (built from model)
 * looked, by Grad-CAM at the conv layer called layer_name ("" or NULL:
 * the last one).  NULL with *error set on failure. */
GimpLayer *catdog_heatmap_layer (GimpImage           *image,
                                 const cnn_model     *model,
                                 cnn_net             *net,
                                 const gchar         *layer_name,
                                 const CatdogPixels  *pixels,
                                 GError             **error);

/* ------------------------------------------------------------------ */
/* scale.c: how a map or a mosaic is enlarged or reduced                */
/* ------------------------------------------------------------------ */

/* Size of a width x height picture scaled by one factor for both axes so
 * that it fits max_width x max_height and touches two opposite sides. */
void catdog_fit_size (gint  width,
                      gint  height,
                      gint  max_width,
                      gint  max_height,
                      gint *out_width,
                      gint *out_height);

/* Rows [row0, row1) of src (src_width x src_height, `channels` bytes per
 * pixel) resampled to dst_width x dst_height.  Each axis on its own:
 * nearest neighbour when it is enlarged (destination pixel centre mapped
 * back to the source), a box average (rounded) when it is reduced.  dst
 * points at the first of those rows. */
void catdog_resample_rows (const guint8 *src,
                           gint          src_width,
                           gint          src_height,
                           gsize         src_stride,
                           gint          channels,
                           gint          dst_width,
                           gint          dst_height,
                           gint          row0,
                           gint          row1,
                           guint8       *dst,
                           gsize         dst_stride);

#endif /* CATDOG_PLUGIN_H */
