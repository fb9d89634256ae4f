/* input.c - the pixels the network looks at: what the user sees.
 *
 * The region is the whole canvas, or the bounding box of the selection.
 * It is read already reduced by a power of two (GEGL's mipmap levels are
 * 2x2 box averages), by the largest one that keeps the region at least
 * CATDOG_READ_OVERSAMPLE times the network's input size; cnn_preprocess()
 * then does the rest with its antialiased triangle filter, as `catdog
 * classify` does after libjpeg's scaled decoding.  Reducing only down to
 * 4x the input keeps the result close to that filter on the full image:
 * a 2x2 box reduction right down to the input size blurs more than
 * libjpeg's DCT scaling does (on the test photos the 150x150 input then
 * differs from catdog's by 3.4 levels on average instead of 1.9).
 *
 * Two ways to get there, both without a full-size copy anywhere:
 * - the usual photo (one visible plain layer): that layer's buffer is
 *   read with a scale factor on gegl_buffer_get();
 * - anything else (several layers, groups, modes, masks, filters): a
 *   duplicate of the image (GIMP shares its tiles, nothing is copied) is
 *   scaled down by GIMP, its visible layers are merged at that small size,
 *   and the merged layer is read.  Compositing after the reduction is what
 *   GIMP's own zoomed-out view does; with non-linear blend modes or finely
 *   detailed masks it differs a little from compositing at full size.
 *
 * Calls only errors.c. */
#include "catdog-plugin.h"

#define CATDOG_READ_OVERSAMPLE 4

/* A very long strip of an image must not be read at nearly full size just
 * because its short side is close to the input size. */
#define CATDOG_MAX_READ_PIXELS ((guint64) 16 * 1024 * 1024)

void
catdog_pixels_clear (CatdogPixels *pixels)
{
  g_clear_pointer (&pixels->pixels, g_free);
  memset (pixels, 0, sizeof *pixels);
}

static gint
choose_reduction (gint width,
                  gint height,
                  gint input_width,
                  gint input_height)
{
  gint64 keep_w = (gint64) CATDOG_READ_OVERSAMPLE * input_width;
  gint64 keep_h = (gint64) CATDOG_READ_OVERSAMPLE * input_height;
  gint   d      = 1;

  while (d < (1 << 20))
    {
      gboolean stays_big = (width / (2 * d) >= keep_w &&
                            height / (2 * d) >= keep_h);
      gboolean too_many  = ((guint64) (width / d) * (guint64) (height / d) >
                            CATDOG_MAX_READ_PIXELS);

      if (! stays_big && ! too_many)
        break;
      d *= 2;
    }
  return d;
}

static gint
floor_div (gint a,
           gint b)
{
  return (a >= 0) ? a / b : -((-a + b - 1) / b);
}

/* The one visible top-level layer when it is drawn exactly as its pixels
 * are (normal mode, fully opaque, no active mask or filter), else NULL. */
static GimpLayer *
plain_single_layer (GimpImage *image,
                    gint      *n_visible)
{
  GimpLayer **layers = gimp_image_get_layers (image);
  GimpLayer  *only   = NULL;
  gboolean    plain;

  *n_visible = 0;
  for (gint i = 0; layers && layers[i]; i++)
    {
      if (gimp_item_get_visible (GIMP_ITEM (layers[i])))
        {
          only = layers[i];
          (*n_visible)++;
        }
    }
  g_free (layers);

  if (*n_visible != 1 || gimp_item_is_group (GIMP_ITEM (only)))
    return NULL;

  plain = ((gimp_layer_get_mode (only) == GIMP_LAYER_MODE_NORMAL ||
            gimp_layer_get_mode (only) == GIMP_LAYER_MODE_NORMAL_LEGACY) &&
           gimp_layer_get_opacity (only) >= 100.0 &&
           ! (gimp_layer_get_mask (only) && gimp_layer_get_apply_mask (only)));

  if (plain)
    {
      GimpDrawableFilter **filters;

      filters = gimp_drawable_get_filters (GIMP_DRAWABLE (only));
      for (gint i = 0; filters && filters[i]; i++)
        if (gimp_drawable_filter_get_visible (filters[i]))
          plain = FALSE;
      g_free (filters);
    }

  return plain ? only : NULL;
}

/* Reads the region (x, y, width, height) of drawable, given in image
 * coordinates at full size, from a buffer that is 1/reduction of full
 * size (scale: the factor still to apply while reading). */
static gboolean
read_drawable (GimpDrawable  *drawable,
               gint           x,
               gint           y,
               gint           width,
               gint           height,
               gint           reduction,
               gdouble        scale,
               CatdogPixels  *out,
               GError       **error)
{
  GeglBuffer    *buffer;
  GeglRectangle  rect;
  const Babl    *format;
  gint           off_x, off_y;
  gint           layer_w, layer_h;
  gboolean       alpha;
  gsize          size;

  gimp_drawable_get_offsets (drawable, &off_x, &off_y);
  layer_w = gimp_drawable_get_width (drawable);
  layer_h = gimp_drawable_get_height (drawable);

  /* Pixels outside the layer are transparent, as on the canvas. */
  alpha = (gimp_drawable_has_alpha (drawable) ||
           x < off_x || y < off_y ||
           x + width > off_x + layer_w || y + height > off_y + layer_h);

  rect.x      = floor_div (x - off_x, reduction);
  rect.y      = floor_div (y - off_y, reduction);
  rect.width  = MAX (width / reduction, 1);
  rect.height = MAX (height / reduction, 1);

  out->channels  = alpha ? 4 : 3;
  out->width     = rect.width;
  out->height    = rect.height;
  out->reduction = reduction;
  if (! g_size_checked_mul (&out->stride, (gsize) rect.width,
                            (gsize) out->channels) ||
      ! g_size_checked_mul (&size, out->stride, (gsize) rect.height) ||
      ! (out->pixels = g_try_malloc (size)))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory to read %d x %d pixels of the image."),
                   rect.width, rect.height);
      return FALSE;
    }

  /* Explicit 8-bit sRGB: babl converts any precision, gray, indexed
   * (palette lookup) and any colour profile to what the network was
   * trained on. */
  format = babl_format (alpha ? "R'G'B'A u8" : "R'G'B' u8");
  buffer = gimp_drawable_get_buffer (drawable);
  gegl_buffer_get (buffer, &rect, scale, format, out->pixels,
                   out->stride, GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  return TRUE;
}

/* Hidden top-level layers would only cost time when the duplicate is
 * scaled; merging leaves them out anyway. */
static void
remove_hidden_layers (GimpImage *image)
{
  GimpLayer **layers = gimp_image_get_layers (image);

  for (gint i = 0; layers && layers[i]; i++)
    if (! gimp_item_get_visible (GIMP_ITEM (layers[i])))
      gimp_image_remove_layer (image, layers[i]);
  g_free (layers);
}

/* The visible layers merged in a reduced duplicate of the image. */
static gboolean
read_merged (GimpImage     *image,
             gint           x,
             gint           y,
             gint           width,
             gint           height,
             gint           reduction,
             CatdogPixels  *out,
             GError       **error)
{
  GimpImage *dup = gimp_image_duplicate (image);
  GimpLayer *merged;
  gboolean   ok  = FALSE;

  if (! dup)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Could not duplicate the image to merge its layers."));
      return FALSE;
    }
  /* The duplicate is thrown away: keeping undo steps would hold the
   * full-size layers alive. */
  gimp_image_undo_disable (dup);
  remove_hidden_layers (dup);

  if (reduction > 1)
    {
      gint w = MAX (gimp_image_get_width (dup) / reduction, 1);
      gint h = MAX (gimp_image_get_height (dup) / reduction, 1);

      /* GEGL's linear sampler averages over the whole footprint of a
       * destination pixel when reducing strongly (box filtering). */
      gimp_context_push ();
      gimp_context_set_interpolation (GIMP_INTERPOLATION_LINEAR);
      gimp_image_scale (dup, w, h);
      gimp_context_pop ();
    }

  merged = gimp_image_merge_visible_layers (dup, GIMP_CLIP_TO_IMAGE);
  if (! merged)
    g_set_error (error, CATDOG_ERROR, 0,
                 _("Could not merge the visible layers: %s"),
                 catdog_pdb_error ());
  else
    ok = read_drawable (GIMP_DRAWABLE (merged),
                        floor_div (x, reduction), floor_div (y, reduction),
                        MAX (width / reduction, 1), MAX (height / reduction, 1),
                        1, 1.0, out, error);

  gimp_image_delete (dup);
  if (ok)
    out->reduction = reduction;
  return ok;
}

gboolean
catdog_read_visible (GimpImage     *image,
                     gint           input_width,
                     gint           input_height,
                     CatdogPixels  *out,
                     GError       **error)
{
  GimpLayer *single;
  gboolean   has_selection = FALSE;
  gint       x1, y1, x2, y2;
  gint       n_visible;
  gint       reduction;

  memset (out, 0, sizeof *out);

  /* An empty selection counts as none, as for GIMP's own filters: the
   * whole canvas is classified. */
  if (! gimp_selection_bounds (image, &has_selection, &x1, &y1, &x2, &y2) ||
      ! has_selection)
    {
      x1 = 0;
      y1 = 0;
      x2 = gimp_image_get_width (image);
      y2 = gimp_image_get_height (image);
    }
  if (x2 <= x1 || y2 <= y1)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The selection does not cover any pixel of the image."));
      return FALSE;
    }

  single = plain_single_layer (image, &n_visible);
  if (n_visible == 0)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The image has no visible layer to classify."));
      return FALSE;
    }

  reduction = choose_reduction (x2 - x1, y2 - y1, input_width, input_height);
  out->region_x      = x1;
  out->region_y      = y1;
  out->region_width  = x2 - x1;
  out->region_height = y2 - y1;

  if (single)
    return read_drawable (GIMP_DRAWABLE (single), x1, y1, x2 - x1, y2 - y1,
                          reduction, 1.0 / reduction, out, error);

  return read_merged (image, x1, y1, x2 - x1, y2 - y1, reduction, out, error);
}
