/* catdog-plugin.h - pieces of the GIMP plug-in shared between its files.
 *
 * The plug-in is a thin adapter: GIMP images in, the CNN core (cnn.h) in
 * the middle, GIMP layers and PDB return values out.  Core failures become
 * GErrors in CATDOG_ERROR, and those become GIMP_PDB_EXECUTION_ERROR.
 *
 * Who calls whom: three layers, each calling only the ones below it, so
 * the graph has no cycle (every file includes only this header, which
 * brings ui/'s catdog-channels.h, the "channels" argument's parser;
 * catdog.c also includes ui/'s catdog-models.h and catdog-panel.h, whose
 * panel holds the preview, ui/catdog-preview.h).
 *
 *   procedures   catdog.c    the two PDB procedures, the dialog, classify
 *                   |
 *   features     maps.c      feature maps as layers
 *                heatmap.c   the heat map as a layer
 *                   |
 *   helpers      input.c     the pixels the network looks at
 *                taps.c      a model's conv layers by name
 *                pending.c   new layers: all into the image, or none
 *                strips.c    a layer filled strip by strip -> scale.c
 *                scale.c     resampling arithmetic (calls nothing)
 *                errors.c    GErrors from the core and the PDB
 *
 *   catdog.c  -> maps.c, heatmap.c, input.c, pending.c, errors.c
 *   maps.c    -> taps.c, pending.c, strips.c, scale.c, errors.c
 *   heatmap.c -> taps.c, pending.c, strips.c, scale.c, errors.c
 *   input.c, taps.c, pending.c -> errors.c
 *   strips.c  -> scale.c, errors.c
 *
 * The sections below go from the bottom of that graph up. */
#ifndef CATDOG_PLUGIN_H
#define CATDOG_PLUGIN_H

#include <string.h>

#include <libgimp/gimp.h>
#include <glib/gi18n-lib.h>

#include "cnn.h"
#include "catdog-channels.h"

#define CATDOG_PROC "plug-in-catdog-classify"

#define CATDOG_INSTALL_PROC "plug-in-catdog-install-weights"

#define CATDOG_FILTERS_PROC "plug-in-catdog-filters"

/* catdog.c: the model used when none is given (the models folder's
 * default, else the shipped one). */
GFile *catdog_default_model (void);

/* filters.c: plug-in-catdog-filters, what the filters look for. */
GimpProcedure *catdog_create_filters_procedure (GimpPlugIn  *plug_in,
                                                const gchar *name);

/* ------------------------------------------------------------------ */
/* errors.c: GErrors from the core and the PDB                         */
/* ------------------------------------------------------------------ */

#define CATDOG_ERROR (catdog_error_quark ())
GQuark catdog_error_quark (void);

/* Sets *error from the core's last failure: "prefix: core message". */
void catdog_set_core_error (GError    **error,
                            cnn_status  status,
                            const char *prefix);

/* GIMP's message for the PDB call that failed last. */
const gchar *catdog_pdb_error (void);

/* ------------------------------------------------------------------ */
/* scale.c: how a map or a mosaic is enlarged or reduced                */
/* ------------------------------------------------------------------ */

/* A u8 picture: `channels` bytes per pixel, rows `stride` bytes apart. */
typedef struct
{
  const guint8 *pixels;
  gint          width;
  gint          height;
  gsize         stride;
  gint          channels;
} CatdogPicture;

/* Size of a width x height picture scaled by one factor for both axes so
 * that it fits max_width x max_height and touches two opposite sides. */
void catdog_fit_size (gint  width,
                      gint  height,
                      gint  max_width,
                      gint  max_height,
                      gint *out_width,
                      gint *out_height);

/* Rows [row0, row1) of src resampled to dst_width x dst_height, into dst
 * (the first of those rows; rows dst_width * src->channels bytes apart).
 * Each axis on its own: nearest neighbour when it is enlarged
 * (destination pixel centre mapped back to the source), a box average
 * (rounded) when it is reduced. */
void catdog_resample_rows (const CatdogPicture *src,
                           gint                 dst_width,
                           gint                 dst_height,
                           gint                 row0,
                           gint                 row1,
                           guint8              *dst);

/* ------------------------------------------------------------------ */
/* strips.c: a layer filled from a small picture, strip by strip        */
/* ------------------------------------------------------------------ */

/* A colour step: n resampled pixels of the source's channels in values
 * become n pixels of the layer's channels in out. */
typedef void (*CatdogColourFunc) (const guint8 *values,
                                  gsize         n,
                                  guint8       *out,
                                  gpointer      data);

/* Fills the whole of layer (8-bit, perceptual: 1 channel Y', 2 Y'A, 3
 * R'G'B', 4 R'G'B'A) with src resampled to its size, a strip of rows at
 * a time, each strip passed through colour when it is not NULL (then
 * layer_channels may differ from src->channels). */
gboolean catdog_write_strips (GimpLayer            *layer,
                              const CatdogPicture  *src,
                              gint                  layer_channels,
                              CatdogColourFunc      colour,
                              gpointer              colour_data,
                              GError              **error);

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
 * (see input.c and docs/plugin.md, "What is classified"). */
gboolean catdog_read_visible (GimpImage     *image,
                              gint           input_width,
                              gint           input_height,
                              CatdogPixels  *out,
                              GError       **error);
void     catdog_pixels_clear (CatdogPixels  *pixels);

/* ------------------------------------------------------------------ */
/* taps.c: a model's conv layers by name                               */
/* ------------------------------------------------------------------ */

/* The feature-map tap of the conv layer called name; NULL or "" is the
 * last conv layer.  Sets *error naming the model's conv layers when
 * there is no such layer. */
gboolean catdog_find_tap           (const cnn_net  *net,
                                    const gchar    *name,
                                    gint           *index,
                                    GError        **error);

/* Sets *error: the model has no conv layer called name; names those it
 * has. */
void     catdog_set_no_layer_error (const cnn_net  *net,
                                    const gchar    *name,
                                    GError        **error);

/* ------------------------------------------------------------------ */
/* pending.c: new layers go into the image all at once, or not at all   */
/* ------------------------------------------------------------------ */

/* Layers made while still detached from the layer tree, put into the
 * image all at once (one undo group) or deleted: a failure anywhere on
 * the way leaves the image as it was. */
typedef struct _CatdogPending CatdogPending;

CatdogPending *catdog_pending_new   (void);
/* Deletes the layers that did not make it into the image. */
void           catdog_pending_free  (CatdogPending *pending);

/* Gives pending its one outer group, called group_name; it goes right
 * above the anchor layer, below the layers of catdog_pending_add_layer(). */
void     catdog_pending_set_group    (CatdogPending  *pending,
                                      const gchar    *group_name);
gboolean catdog_pending_has_group    (const CatdogPending *pending);

/* Begins the next part of the outer group: a sub-group called name, or
 * (NULL) layers straight in the outer group. */
void     catdog_pending_begin_batch  (CatdogPending  *pending,
                                      const gchar    *name);

/* Adds a detached layer under the ones added before it to the part begun
 * last; pending owns it from now on. */
void     catdog_pending_add_to_group (CatdogPending  *pending,
                                      GimpLayer      *layer);

/* Adds a detached layer that goes above everything added before it;
 * pending owns it from now on. */
void     catdog_pending_add_layer    (CatdogPending  *pending,
                                      GimpLayer      *layer);

/* Inserts what pending holds right above `above` (NULL: at the top of
 * the stack), inside one undo group.  On failure nothing stays in the
 * image. */
gboolean catdog_pending_insert       (CatdogPending  *pending,
                                      GimpImage      *image,
                                      GimpLayer      *above,
                                      GError        **error);

/* A new detached layer in normal mode; NULL with *error naming it and
 * GIMP's reason when GIMP cannot make it. */
GimpLayer *catdog_layer_new (GimpImage      *image,
                             const gchar    *name,
                             gint            width,
                             gint            height,
                             GimpImageType   type,
                             gdouble         opacity,
                             GError        **error);

/* ------------------------------------------------------------------ */
/* maps.c: feature maps as layers                                      */
/* ------------------------------------------------------------------ */

typedef enum
{
  CATDOG_MAPS_MOSAIC   = 0,
  CATDOG_MAPS_CHANNELS = 1
} CatdogMapsStyle;

/* The channels style never creates more layer pixels than this, in
 * bytes at the image's precision (1 GB). */
#define CATDOG_CHANNELS_BUDGET ((guint64) 1000 * 1000 * 1000)

/* Which feature maps, and how. */
typedef struct
{
  const gchar     *layers;     /* "all" (or empty) or a comma-separated
                                  list of conv layer names */
  CatdogMapsStyle  style;
  cnn_colormap     colormap;
  gint             top;        /* > 0: only each layer's `top` most active
                                  channels */
  const gchar     *group_name; /* the outer group holding them */
  gdouble          progress_start;
  gdouble          progress_end;
  /* Not NULL nor empty: exactly these channels (CatdogChannelPick, the
   * "channels" argument), in the channels style; layers, style and top
   * are then not used.  A layer or channel the model lacks is an error
   * in CATDOG_CHANNELS_ERROR (a calling error). */
  GPtrArray       *picks;
} CatdogMapsSpec;

/* Adds the feature maps of the last forward pass of net to pending (its
 * outer group; see maps.c).  Progress runs from spec->progress_start to
 * spec->progress_end. */
gboolean catdog_pending_add_feature_maps (CatdogPending         *pending,
                                          GimpImage             *image,
                                          const cnn_net         *net,
                                          const CatdogMapsSpec  *spec,
                                          GError               **error);

/* ------------------------------------------------------------------ */
/* heatmap.c: the heat map as a layer                                  */
/* ------------------------------------------------------------------ */

/* The heat map never gets more than this many pixels on a side before
 * it is enlarged to the layer (a Grad-CAM map has a few dozen). */
#define CATDOG_HEATMAP_MAX_SIDE 4096

/* Images per batch of the occlusion and integrated-gradients maps. */
#define CATDOG_HEATMAP_BATCH 16

/* Integrated gradients' cap on the core's steps as needed (32, 96, 288):
 * `catdog cam` goes on to 2592, but a dialog's map should take seconds,
 * and 288 steps are 290 gradients, about 3.6 s on 2 quiet cores; every
 * one of the 50 validation photos of the trust checks and of the six
 * sample photos is within 1% by 288 steps (docs/plugin.md). */
#define CATDOG_HEATMAP_IG_MAX_STEPS 288

/* Which heat map: the "heatmap-method" argument. */
typedef struct
{
  cnn_explain_method  method;
  const gchar        *layer_name;     /* Grad-CAM's conv layer; "" or NULL:
                                         the last one */
  const float        *input;          /* the network's input (occlusion,
                                         integrated gradients) */
  gdouble             progress_start; /* the slow methods' progress */
  gdouble             progress_end;
} CatdogHeatmap;

/* A detached layer covering the classified region of image (pixels'
 * region_*) showing where the last forward pass of net (built from model)
 * looked, by spec's method (Grad-CAM at spec's conv layer, or occlusion
 * or integrated gradients of spec's input), named after the method.  NULL
 * with *error set on failure. */
GimpLayer *catdog_heatmap_layer (GimpImage           *image,
                                 const cnn_model     *model,
                                 cnn_net             *net,
                                 const CatdogHeatmap *spec,
                                 const CatdogPixels  *pixels,
                                 GError             **error);

/* ------------------------------------------------------------------ */
/* catdog.c: the procedures                                            */
/* ------------------------------------------------------------------ */

/* The user's models folder, <GIMP profile>/catdog/models (gimp_directory()
 * honours GIMP3_DIRECTORY); catdog-models.h says what it holds.  Free
 * with g_free(). */
gchar *catdog_models_dir (void);

#endif /* CATDOG_PLUGIN_H */
