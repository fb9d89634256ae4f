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
 * huge image never needs a full-size buffer.
 *
 * Calls taps.c, pending.c, strips.c, scale.c and errors.c. */
#include "catdog-plugin.h"

#define CATDOG_HEATMAP_OPACITY 75.0

/* The strip writer's colour step: a map value v becomes (255, v, 0, v),
 * or on a grayscale image (255, v). */
static void
colorize (const guint8 *values,
          gsize         n,
          guint8       *out,
          gpointer      rgb)
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
  layer = catdog_layer_new (image, name, width, height,
                            rgb ? GIMP_RGBA_IMAGE : GIMP_GRAYA_IMAGE,
                            CATDOG_HEATMAP_OPACITY, error);
  g_free (name);
  if (! layer)
    goto out;

  gimp_layer_set_offsets (layer, pixels->region_x, pixels->region_y);
  if (! catdog_write_strips (layer,
                             &(CatdogPicture) { map, map_width, map_height,
                                                (gsize) map_width, 1 },
                             rgb ? 4 : 2, colorize, GINT_TO_POINTER (rgb),
                             error))
    {
      gimp_item_delete (GIMP_ITEM (layer));
      layer = NULL;
    }

out:
  g_free (map);
  g_free (cam);
  return layer;
}
