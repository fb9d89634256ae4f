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
/* maps.c: feature maps as layers                                       */
/* ------------------------------------------------------------------ */

typedef enum
{
  CATDOG_MAPS_MOSAIC   = 0,
  CATDOG_MAPS_CHANNELS = 1
} CatdogMapsStyle;

/* The channels style never creates more layer pixels than this, in
 * bytes at the image's precision (1 GB). */
#define CATDOG_CHANNELS_BUDGET ((guint64) 1000 * 1000 * 1000)

/* Adds the feature maps of the last forward pass of net as layers above
 * `above` (NULL: at the top of the stack), all inside one undo group.
 * layers is "all" (or empty) or a comma-separated list of conv layer
 * names.  On failure the image is left as it was. */
gboolean catdog_add_feature_maps (GimpImage        *image,
                                  GimpLayer        *above,
                                  const cnn_net    *net,
                                  const gchar      *layers,
                                  CatdogMapsStyle   style,
                                  cnn_colormap      colormap,
                                  const gchar      *group_name,
                                  gdouble           progress_start,
                                  GError          **error);

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
