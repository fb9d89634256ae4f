/* heatmap.c - where the network looked, as a layer (Grad-CAM).
 *
 * cnn_net_gradcam() gives a map the size of one conv layer's output (9x9
 * for the last conv layer of the shipped model) with values in [0, 1],
 * computed on the logit; cnn_cam_render() stretches it bilinearly over
 * the part of the classified region the network sees (all of it, or the
 * centred crop of a "crop" model), 0 elsewhere, and scales it so that its
 * hottest pixel is 255: the same map as `catdog cam --out` writes for a
 * photo.  The layer covers exactly the classified region
 * (the canvas, or the selection's bounding box) and shows the value v as
 * colour and opacity at once: transparent where the
 * network did not look, through red and orange to yellow where it looked
 * most (R = 255, G = v, B = 0, alpha = v), at CATDOG_HEATMAP_OPACITY in
 * normal mode, so the photo shows through everywhere and stays untouched
 * where the map is 0.  A grayscale image cannot hold colours: there the
 * layer is white with the same alpha.
 *
 * The map is rendered at the region's size, or at most
 * CATDOG_HEATMAP_MAX_SIDE on a side and then enlarged with nearest
 * neighbour a strip at a time: it is smooth at that scale already, and a
 * huge image never needs a full-size buffer. */
#include "catdog-plugin.h"

#define CATDOG_HEATMAP_OPACITY 75.0

/* Bytes of layer pixels written per gegl_buffer_set(). */
#define CATDOG_HEATMAP_STRIP_BYTES (4 << 20)

static void
colorize (const guint8 *values,
          gsize         n,
          gboolean      rgb,
          guint8       *out)
{
  for (gsize i = 0; i < n; i++)
    {
      guint8 v = values[i];

      if (rgb)
        {
          out[0] = 255;
          out[1] = v;
          out[2] = 0;
          out[3] = v;
          out += 4;
        }
      else
        {
          out[0] = 255;
          out[1] = v;
          out += 2;
        }
    }
}

/* Fills layer (width x height) from map (map_width x map_height), strip
 * by strip. */
static gboolean
write_heatmap (GimpLayer     *layer,
               const guint8  *map,
               gint           map_width,
               gint           map_height,
               gboolean       rgb,
               GError       **error)
{
  gint        width    = gimp_drawable_get_width (GIMP_DRAWABLE (layer));
  gint        height   = gimp_drawable_get_height (GIMP_DRAWABLE (layer));
  gint        channels = rgb ? 4 : 2;
  const Babl *format   = babl_format (rgb ? "R'G'B'A u8" : "Y'A u8");
  gint        rows     = (gint) CLAMP (CATDOG_HEATMAP_STRIP_BYTES /
                                       ((gint64) width * channels), 1, height);
  guint8     *values   = NULL;
  guint8     *strip    = NULL;
  gsize       n_values, n_strip;
  GeglBuffer *buffer;

  if (! g_size_checked_mul (&n_values, (gsize) width, (gsize) rows) ||
      ! g_size_checked_mul (&n_strip, n_values, (gsize) channels) ||
      ! (values = g_try_malloc (n_values)) ||
      ! (strip = g_try_malloc (n_strip)))
    {
      g_free (values);
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for a %d pixels wide layer."), width);
      return FALSE;
    }

  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));
  for (gint row = 0; row < height; row += rows)
    {
      gint n = MIN (rows, height - row);

      catdog_resample_rows (map, map_width, map_height, (gsize) map_width, 1,
                            width, height, row, row + n, values,
                            (gsize) width);
      colorize (values, (gsize) width * n, rgb, strip);
      gegl_buffer_set (buffer, GEGL_RECTANGLE (0, row, width, n), 0, format,
                       strip, (gsize) width * channels);
    }
  g_object_unref (buffer);
  g_free (strip);
  g_free (values);
  return TRUE;
}

GimpLayer *
catdog_heatmap_layer (GimpImage           *image,
                      const cnn_model     *model,
                      cnn_net             *net,
                      const gchar         *layer_name,
                      const CatdogPixels  *pixels,
                      GError             **error)
{
  GimpImageBaseType  base   = gimp_image_get_base_type (image);
  gboolean           rgb    = (base == GIMP_RGB);
  gint               width  = pixels->region_width;
  gint               height = pixels->region_height;
  const cnn_layer   *conv   = NULL;
  cnn_tensor_view    view;
  GimpLayer         *layer  = NULL;
  gfloat            *cam    = NULL;
  guint8            *map    = NULL;
  gint               tap, map_width, map_height;
  gsize              n_cam;
  cnn_status         st;
  gchar             *name;

  if (base == GIMP_INDEXED)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("A heat map cannot be added to an indexed image: its "
                     "palette would distort it. Convert it to RGB "
                     "(Image > Mode > RGB) or turn the heat map off."));
      return NULL;
    }
  if (! catdog_find_tap (net, layer_name, &tap, error))
    return NULL;
  st = cnn_net_tap (net, tap, &view, &conv);
  if (st != CNN_OK)
    {
      catdog_set_core_error (error, st, _("Heat map"));
      return NULL;
    }

  if (width <= CATDOG_HEATMAP_MAX_SIDE && height <= CATDOG_HEATMAP_MAX_SIDE)
    {
      map_width  = width;
      map_height = height;
    }
  else
    {
      catdog_fit_size (width, height, CATDOG_HEATMAP_MAX_SIDE,
                       CATDOG_HEATMAP_MAX_SIDE, &map_width, &map_height);
    }

  /* The map sizes come from the loaded (validated) model and the bound
   * above: no overflow. */
  n_cam = (gsize) view.w * (gsize) view.h;
  if (! (cam = g_try_new (gfloat, n_cam)) ||
      ! (map = g_try_malloc0 ((gsize) map_width * (gsize) map_height)))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for the heat map."));
      goto out;
    }

  st = cnn_net_gradcam (net, 0, tap, cam, n_cam, NULL);
  if (st == CNN_OK)
    st = cnn_cam_render (model, cam, view.h, view.w, map_width, map_height,
                         map, (size_t) map_width);
  if (st != CNN_OK)
    {
      gchar *prefix = g_strdup_printf (_("Cannot compute the heat map at %s"),
                                       conv->name);

      catdog_set_core_error (error, st, prefix);
      g_free (prefix);
      goto out;
    }

  /* TRANSLATORS: name of the heat-map layer; %s is a conv layer, "conv5" */
  name  = g_strdup_printf (_("Grad-CAM (%s)"), conv->name);
  layer = gimp_layer_new (image, name, width, height,
                          rgb ? GIMP_RGBA_IMAGE : GIMP_GRAYA_IMAGE,
                          CATDOG_HEATMAP_OPACITY, GIMP_LAYER_MODE_NORMAL);
  if (! layer)
    g_set_error (error, CATDOG_ERROR, 0,
                 _("Could not create the layer \"%s\" (%d x %d): %s"),
                 name, width, height,
                 gimp_pdb_get_last_error (gimp_get_pdb ()));
  g_free (name);
  if (! layer)
    goto out;

  gimp_layer_set_offsets (layer, pixels->region_x, pixels->region_y);
  if (! write_heatmap (layer, map, map_width, map_height, rgb, error))
    {
      gimp_item_delete (GIMP_ITEM (layer));
      layer = NULL;
    }

out:
  g_free (map);
  g_free (cam);
  return layer;
}
