/* strips.c - filling a layer from a small u8 picture, a strip at a time.
 *
 * The picture (a mosaic, one channel's map, a heat map) is resampled to
 * the layer's size (scale.c) a strip of rows at a time, optionally turned
 * into the layer's pixels by a colour step, and written with
 * gegl_buffer_set(): memory stays bounded however large the layer is, and
 * no full-size copy is ever made.  Calls scale.c and errors.c. */
#include "catdog-plugin.h"

/* Bytes of layer pixels written per gegl_buffer_set(). */
#define CATDOG_STRIP_BYTES (4 << 20)

static const Babl *
u8_format (gint channels)
{
  switch (channels)
    {
    case 1:  return babl_format ("Y' u8");
    case 2:  return babl_format ("Y'A u8");
    case 3:  return babl_format ("R'G'B' u8");
    default: return babl_format ("R'G'B'A u8");
    }
}

gboolean
catdog_write_strips (GimpLayer            *layer,
                     const CatdogPicture  *src,
                     gint                  layer_channels,
                     CatdogColourFunc      colour,
                     gpointer              colour_data,
                     GError              **error)
{
  gint        width  = gimp_drawable_get_width (GIMP_DRAWABLE (layer));
  gint        height = gimp_drawable_get_height (GIMP_DRAWABLE (layer));
  gint        rows   = (gint) CLAMP (CATDOG_STRIP_BYTES /
                                     ((gint64) width * layer_channels),
                                     1, height);
  guint8     *values = NULL;
  guint8     *strip  = NULL;
  gsize       n_pixels, n_values, n_strip;
  GeglBuffer *buffer;

  g_return_val_if_fail (colour || layer_channels == src->channels, FALSE);

  if (! g_size_checked_mul (&n_pixels, (gsize) width, (gsize) rows) ||
      ! g_size_checked_mul (&n_values, n_pixels, (gsize) src->channels) ||
      ! g_size_checked_mul (&n_strip, n_pixels, (gsize) layer_channels) ||
      ! (values = g_try_malloc (n_values)) ||
      (colour && ! (strip = g_try_malloc (n_strip))))
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

      catdog_resample_rows (src, width, height, row, row + n, values);
      if (colour)
        colour (values, (gsize) width * n, strip, colour_data);
      gegl_buffer_set (buffer, GEGL_RECTANGLE (0, row, width, n), 0,
                       u8_format (layer_channels), colour ? strip : values,
                       (gsize) width * layer_channels);
    }
  g_object_unref (buffer);
  g_free (strip);
  g_free (values);
  return TRUE;
}
