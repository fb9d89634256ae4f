/* maps.c - feature maps as ordinary image layers, and how new layers get
 * into the image.
 *
 * Every layer is created and filled while it is still detached from the
 * layer tree (a CatdogPending holds it); only when all pixels are written
 * are the groups and layers inserted, inside one undo group.  A failure
 * on the way (a bad layer name, no memory, a heat map that cannot be
 * computed) therefore deletes the detached layers and leaves the image
 * as it was.
 *
 * mosaic:   one group "Feature maps ..." holding one layer per conv layer,
 *           "conv2 - 64 maps, 72x72", the cnn_mosaic_render() picture (the
 *           same as `catdog maps`) scaled to fit the canvas and centred:
 *           at most one image-sized layer per conv layer.
 * channels: the same outer group holding one group per conv layer, named
 *           as above, holding one layer per channel, "conv2 #17" (channel
 *           17 counting from 0), each map enlarged by an integer factor
 *           (pixel blocks) and centred.  The factor is the largest that
 *           fits the canvas, lowered where needed so that all layers stay
 *           under CATDOG_CHANNELS_BUDGET bytes; if even factor 1 is over
 *           the budget the style is refused.
 * top = K:  in both styles only the K channels of highest mean activation
 *           of each conv layer, most active first (a mosaic tiles them in
 *           that order, as `catdog maps --top K` does; channel layers go
 *           from the top down), named "conv2 - top 3 of 64 maps, 72x72". */
#include "catdog-plugin.h"

/* Rows written per gegl_buffer_set(): bounded memory for huge layers. */
#define CATDOG_STRIP_ROWS 64

typedef struct
{
  gint             index;      /* for cnn_net_tap() */
  const cnn_layer *layer;
  cnn_tensor_view  view;
  gint             factor;     /* channels style: integer enlargement */
  gint             n_channels; /* how many channels are shown */
  gint            *channels;   /* those, in order; NULL: all, 0 .. c-1 */
} Tap;

typedef struct
{
  gchar     *name;     /* sub-group name; NULL: straight into the outer group */
  GPtrArray *layers;   /* GimpLayer *, detached until inserted */
  guint      inserted; /* how many of layers are in the image */
} Batch;

struct _CatdogPending
{
  gchar     *group_name; /* the feature maps' outer group; NULL: none */
  GPtrArray *batches;    /* Batch *, the outer group's contents */
  GPtrArray *above;      /* GimpLayer *, top-level, above the group; the
                            last added goes on top */
  guint      above_inserted;
};

static void
tap_clear (gpointer data)
{
  Tap *tap = data;

  g_clear_pointer (&tap->channels, g_free);
}

static void
batch_free (gpointer data)
{
  Batch *batch = data;

  g_free (batch->name);
  g_ptr_array_unref (batch->layers);
  g_free (batch);
}

static Batch *
batch_new (gchar *name)
{
  Batch *batch = g_new0 (Batch, 1);

  batch->name   = name;
  batch->layers = g_ptr_array_new ();
  return batch;
}

CatdogPending *
catdog_pending_new (void)
{
  CatdogPending *pending = g_new0 (CatdogPending, 1);

  pending->batches = g_ptr_array_new_with_free_func (batch_free);
  pending->above   = g_ptr_array_new ();
  return pending;
}

/* Deletes the layers that never made it into the image. */
void
catdog_pending_free (CatdogPending *pending)
{
  if (! pending)
    return;
  for (guint b = 0; b < pending->batches->len; b++)
    {
      Batch *batch = g_ptr_array_index (pending->batches, b);

      for (guint i = batch->inserted; i < batch->layers->len; i++)
        gimp_item_delete (GIMP_ITEM (g_ptr_array_index (batch->layers, i)));
    }
  for (guint i = pending->above_inserted; i < pending->above->len; i++)
    gimp_item_delete (GIMP_ITEM (g_ptr_array_index (pending->above, i)));
  g_ptr_array_unref (pending->batches);
  g_ptr_array_unref (pending->above);
  g_free (pending->group_name);
  g_free (pending);
}

void
catdog_pending_add_layer (CatdogPending *pending,
                          GimpLayer     *layer)
{
  g_ptr_array_add (pending->above, layer);
}

static gchar *
tap_title (const Tap *tap)
{
  if (tap->channels)
    return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                         "%s - top %d of %d map, %dx%d",
                                         "%s - top %d of %d maps, %dx%d",
                                         (gulong) tap->view.c),
                            tap->layer->name, tap->n_channels, tap->view.c,
                            tap->view.w, tap->view.h);
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                       "%s - %d map, %dx%d",
                                       "%s - %d maps, %dx%d",
                                       (gulong) tap->view.c),
                          tap->layer->name, tap->view.c,
                          tap->view.w, tap->view.h);
}

static void
set_no_layer_error (const cnn_net  *net,
                    const gchar    *name,
                    GError        **error)
{
  char *known = NULL; /* "conv1, conv2, conv3" */

  cnn_model_conv_names (cnn_net_model (net), ", ", &known);
  g_set_error (error, CATDOG_ERROR, 0,
               _("The model has no conv layer called \"%s\" (its conv "
                 "layers: %s)."), name, known ? known : "");
  free (known);
}

gboolean
catdog_find_tap (const cnn_net  *net,
                 const gchar    *name,
                 gint           *index,
                 GError        **error)
{
  gint n_taps = cnn_net_tap_count (net);

  if (n_taps <= 0)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The model has no conv layer."));
      return FALSE;
    }
  /* No name: the last conv layer. */
  if (cnn_model_find_conv (cnn_net_model (net), (name && *name) ? name : NULL,
                           NULL, index) == CNN_OK)
    return TRUE;
  set_no_layer_error (net, name, error);
  return FALSE;
}

/* The taps named in spec ("all", empty, or "conv1, conv3"), in network
 * order. */
static gboolean
select_taps (const cnn_net  *net,
             const gchar    *spec,
             GArray         *taps,
             GError        **error)
{
  gint      n_taps = cnn_net_tap_count (net);
  gboolean *wanted = g_new0 (gboolean, MAX (n_taps, 1));
  gchar    *trimmed = g_strstrip (g_strdup (spec ? spec : ""));
  gboolean  all     = (! *trimmed || ! g_ascii_strcasecmp (trimmed, "all"));
  gboolean  ok      = TRUE;

  g_free (trimmed);

  if (! all)
    {
      gchar **names = g_strsplit (spec, ",", -1);

      for (gint i = 0; ok && names[i]; i++)
        {
          const gchar *name  = g_strstrip (names[i]);
          gboolean     found = FALSE;

          if (! *name)
            continue;
          for (gint t = 0; t < n_taps; t++)
            {
              const cnn_layer *layer = NULL;
              cnn_tensor_view  view;

              if (cnn_net_tap (net, t, &view, &layer) == CNN_OK &&
                  ! strcmp (layer->name, name))
                {
                  wanted[t] = TRUE;
                  found     = TRUE;
                }
            }
          if (! found)
            {
              set_no_layer_error (net, name, error);
              ok = FALSE;
            }
        }
      g_strfreev (names);
    }

  for (gint t = 0; ok && t < n_taps; t++)
    {
      Tap        tap = { 0 };
      cnn_status st;

      if (! all && ! wanted[t])
        continue;
      tap.index = t;
      st = cnn_net_tap (net, t, &tap.view, &tap.layer);
      tap.n_channels = tap.view.c;
      if (st != CNN_OK)
        {
          catdog_set_core_error (error, st, _("Feature maps"));
          ok = FALSE;
        }
      else
        g_array_append_val (taps, tap);
    }

  if (ok && taps->len == 0)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("No conv layer selected for feature maps."));
      ok = FALSE;
    }
  g_free (wanted);
  return ok;
}

/* Keeps only each tap's `top` channels of highest mean activation. */
static gboolean
select_top_channels (const cnn_net  *net,
                     GArray         *taps,
                     gint            top,
                     GError        **error)
{
  for (guint t = 0; t < taps->len; t++)
    {
      Tap        *tap = &g_array_index (taps, Tap, t);
      gint        n   = MIN (top, tap->view.c);
      gint        count = 0;
      cnn_status  st;

      tap->channels = g_new (gint, n);
      st = cnn_net_top_channels (net, tap->index, 0, n, tap->channels, NULL,
                                 &count);
      if (st != CNN_OK)
        {
          catdog_set_core_error (error, st, tap->layer->name);
          return FALSE;
        }
      tap->n_channels = count;
    }
  return TRUE;
}

static gint
component_bytes (GimpPrecision precision)
{
  switch (precision)
    {
    case GIMP_PRECISION_U8_LINEAR:
    case GIMP_PRECISION_U8_NON_LINEAR:
    case GIMP_PRECISION_U8_PERCEPTUAL:
      return 1;
    case GIMP_PRECISION_U16_LINEAR:
    case GIMP_PRECISION_U16_NON_LINEAR:
    case GIMP_PRECISION_U16_PERCEPTUAL:
    case GIMP_PRECISION_HALF_LINEAR:
    case GIMP_PRECISION_HALF_NON_LINEAR:
    case GIMP_PRECISION_HALF_PERCEPTUAL:
      return 2;
    case GIMP_PRECISION_U32_LINEAR:
    case GIMP_PRECISION_U32_NON_LINEAR:
    case GIMP_PRECISION_U32_PERCEPTUAL:
    case GIMP_PRECISION_FLOAT_LINEAR:
    case GIMP_PRECISION_FLOAT_NON_LINEAR:
    case GIMP_PRECISION_FLOAT_PERCEPTUAL:
      return 4;
    default:
      return 8;
    }
}

static guint64
tap_bytes (const Tap *tap,
           gint       factor,
           gint       pixel_bytes)
{
  return (guint64) tap->n_channels *
         (guint64) tap->view.w * (guint64) factor *
         (guint64) tap->view.h * (guint64) factor *
         (guint64) pixel_bytes;
}

/* Integer factors for the channels style: as large as the canvas allows,
 * then lowered, biggest consumer first, until the budget is met. */
static gboolean
choose_factors (GArray   *taps,
                gint      image_width,
                gint      image_height,
                gint      pixel_bytes,
                GError  **error)
{
  guint64 total = 0;

  for (guint t = 0; t < taps->len; t++)
    {
      Tap *tap = &g_array_index (taps, Tap, t);

      tap->factor = MAX (1, MIN (image_width / tap->view.w,
                                 image_height / tap->view.h));
      total += tap_bytes (tap, tap->factor, pixel_bytes);
    }

  while (total > CATDOG_CHANNELS_BUDGET)
    {
      Tap     *biggest = NULL;
      guint64  most    = 0;

      for (guint t = 0; t < taps->len; t++)
        {
          Tap    *tap   = &g_array_index (taps, Tap, t);
          guint64 bytes = tap_bytes (tap, tap->factor, pixel_bytes);

          if (tap->factor > 1 && bytes > most)
            {
              biggest = tap;
              most    = bytes;
            }
        }
      if (! biggest)
        {
          /* In MB on both sides: rounded "1.1 GB" and "1.0 GB" would hide
           * how far over the limit it is. */
          g_set_error (error, CATDOG_ERROR, 0,
                       _("The channels style would add %.0f MB of layers even "
                         "at the maps' own size, more than the limit of "
                         "%.0f MB. Choose fewer conv layers, or the mosaic "
                         "style."),
                       total / 1e6, CATDOG_CHANNELS_BUDGET / 1e6);
          return FALSE;
        }
      total -= most;
      biggest->factor--;
      total += tap_bytes (biggest, biggest->factor, pixel_bytes);
    }
  return TRUE;
}

/* Writes a u8 picture (1 channel: gray, 3: RGB) resampled to the whole
 * layer, a strip of rows at a time. */
static gboolean
write_resampled (GimpLayer     *layer,
                 const guint8  *src,
                 gint           src_width,
                 gint           src_height,
                 gsize          src_stride,
                 gint           channels,
                 GError       **error)
{
  gint        width  = gimp_drawable_get_width (GIMP_DRAWABLE (layer));
  gint        height = gimp_drawable_get_height (GIMP_DRAWABLE (layer));
  const Babl *format = babl_format (channels == 1 ? "Y' u8" : "R'G'B' u8");
  GeglBuffer *buffer;
  guint8     *strip;
  gsize       stride;
  gsize       size;

  if (! g_size_checked_mul (&stride, (gsize) width, (gsize) channels) ||
      ! g_size_checked_mul (&size, stride, CATDOG_STRIP_ROWS) ||
      ! (strip = g_try_malloc (size)))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for a %d pixels wide layer."), width);
      return FALSE;
    }

  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));
  for (gint row = 0; row < height; row += CATDOG_STRIP_ROWS)
    {
      gint rows = MIN (CATDOG_STRIP_ROWS, height - row);

      catdog_resample_rows (src, src_width, src_height, src_stride, channels,
                            width, height, row, row + rows, strip, stride);
      gegl_buffer_set (buffer, GEGL_RECTANGLE (0, row, width, rows), 0,
                       format, strip, stride);
    }
  g_object_unref (buffer);
  g_free (strip);
  return TRUE;
}

static GimpLayer *
new_layer (GimpImage      *image,
           const gchar    *name,
           gint            width,
           gint            height,
           GimpImageType   type,
           gint            image_width,
           gint            image_height,
           GError        **error)
{
  GimpLayer *layer = gimp_layer_new (image, name, width, height, type,
                                     100.0, GIMP_LAYER_MODE_NORMAL);

  if (! layer)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Could not create the layer \"%s\" (%d x %d): %s"),
                   name, width, height,
                   gimp_pdb_get_last_error (gimp_get_pdb ()));
      return NULL;
    }
  gimp_layer_set_offsets (layer, (image_width - width) / 2,
                          (image_height - height) / 2);
  return layer;
}

static GimpLayer *
mosaic_layer (GimpImage      *image,
              const Tap      *tap,
              cnn_colormap    colormap,
              GimpImageType   type,
              gint            image_width,
              gint            image_height,
              GError        **error)
{
  cnn_image        mosaic = { 0 };
  cnn_tensor_view  view   = tap->view;
  gfloat          *chosen = NULL;
  GimpLayer       *layer  = NULL;
  cnn_status       st;
  gchar           *name;
  gint             width, height;

  /* Only the chosen channels, in their order: the maps of a tap of its
   * own, as `catdog maps --top` renders them. */
  if (tap->channels)
    {
      gsize cells = (gsize) view.h * (gsize) view.w;

      chosen = g_try_new (gfloat, cells * (gsize) tap->n_channels);
      if (! chosen)
        {
          g_set_error (error, CATDOG_ERROR, 0,
                       _("Not enough memory for the maps of %s."),
                       tap->layer->name);
          return NULL;
        }
      for (gsize p = 0; p < cells; p++)
        for (gint i = 0; i < tap->n_channels; i++)
          chosen[p * tap->n_channels + i] =
            tap->view.data[p * tap->view.c + tap->channels[i]];
      view.data = chosen;
      view.c    = tap->n_channels;
    }
  st = cnn_mosaic_render (&view, 0, colormap, &mosaic);
  g_free (chosen);
  if (st != CNN_OK)
    {
      catdog_set_core_error (error, st, tap->layer->name);
      return NULL;
    }

  catdog_fit_size (mosaic.width, mosaic.height, image_width, image_height,
                   &width, &height);
  name  = tap_title (tap);
  layer = new_layer (image, name, width, height, type,
                     image_width, image_height, error);
  if (layer &&
      ! write_resampled (layer, mosaic.pixels, mosaic.width, mosaic.height,
                         mosaic.stride, mosaic.channels, error))
    {
      gimp_item_delete (GIMP_ITEM (layer));
      layer = NULL;
    }
  g_free (name);
  cnn_image_free (&mosaic);
  return layer;
}

/* One layer per chosen channel of tap, in order, appended to
 * batch->layers. */
static gboolean
channel_layers (GimpImage      *image,
                const Tap      *tap,
                cnn_colormap    colormap,
                GimpImageType   type,
                gint            image_width,
                gint            image_height,
                Batch          *batch,
                gdouble         progress,
                gdouble         progress_step,
                GError        **error)
{
  const uint8_t (*table)[3] = cnn_colormap_table (colormap);
  gint           channels   = (colormap == CNN_COLORMAP_GRAY) ? 1 : 3;
  gsize          n_pixels   = (gsize) tap->view.w * (gsize) tap->view.h;
  guint8        *map        = g_try_malloc (n_pixels);
  guint8        *rgb        = NULL;
  gboolean       ok         = TRUE;

  if (channels == 3)
    rgb = g_try_malloc (n_pixels * 3);
  if (! map || (channels == 3 && ! rgb))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for the maps of %s."),
                   tap->layer->name);
      ok = FALSE;
    }

  for (gint k = 0; ok && k < tap->n_channels; k++)
    {
      gint          c      = tap->channels ? tap->channels[k] : k;
      const guint8 *pixels = map;
      GimpLayer    *layer;
      cnn_status    st;
      gchar        *name;

      st = cnn_map_normalize (&tap->view, 0, c, map, (size_t) tap->view.w);
      if (st != CNN_OK)
        {
          catdog_set_core_error (error, st, tap->layer->name);
          ok = FALSE;
          break;
        }
      if (channels == 3)
        {
          for (gsize i = 0; i < n_pixels; i++)
            memcpy (rgb + 3 * i, table[map[i]], 3);
          pixels = rgb;
        }

      name  = g_strdup_printf (_("%s #%d"), tap->layer->name, c);
      layer = new_layer (image, name,
                         tap->view.w * tap->factor, tap->view.h * tap->factor,
                         type, image_width, image_height, error);
      g_free (name);
      if (! layer)
        {
          ok = FALSE;
          break;
        }
      g_ptr_array_add (batch->layers, layer);
      ok = write_resampled (layer, pixels, tap->view.w, tap->view.h,
                            (gsize) tap->view.w * channels, channels, error);

      gimp_progress_update (progress +
                            progress_step * (k + 1) / tap->n_channels);
    }

  g_free (map);
  g_free (rgb);
  return ok;
}

/* Puts the outer group and the sub-groups and layers it holds into the
 * image at (parent, position), in network and channel order, top to
 * bottom.  *outer gets the group once it is in the image. */
static gboolean
insert_group (CatdogPending  *pending,
              GimpImage      *image,
              GimpLayer      *parent,
              gint            position,
              GimpLayer     **outer)
{
  GimpLayer *group = GIMP_LAYER (gimp_group_layer_new (image,
                                                       pending->group_name));
  gboolean   ok    = FALSE;

  *outer = NULL;
  if (group && gimp_image_insert_layer (image, group, parent, position))
    {
      *outer = group;
      ok     = TRUE;
    }
  else if (group)
    {
      gimp_item_delete (GIMP_ITEM (group));
    }

  for (guint b = 0; ok && b < pending->batches->len; b++)
    {
      Batch     *batch = g_ptr_array_index (pending->batches, b);
      GimpLayer *into  = group;

      if (batch->name)
        {
          into = GIMP_LAYER (gimp_group_layer_new (image, batch->name));
          ok   = into && gimp_image_insert_layer (image, into, group, (gint) b);
          if (! ok && into)
            gimp_item_delete (GIMP_ITEM (into));
        }
      for (guint i = 0; ok && i < batch->layers->len; i++)
        {
          ok = gimp_image_insert_layer (image,
                                        g_ptr_array_index (batch->layers, i),
                                        into, (gint) i);
          if (ok)
            batch->inserted = i + 1;
        }
    }
  return ok;
}

gboolean
catdog_pending_insert (CatdogPending  *pending,
                       GimpImage      *image,
                       GimpLayer      *above,
                       GError        **error)
{
  GimpLayer *parent   = NULL;
  GimpLayer *outer    = NULL;
  gint       position = 0;
  gboolean   ok       = TRUE;

  if (above)
    {
      parent   = GIMP_LAYER (gimp_item_get_parent (GIMP_ITEM (above)));
      position = gimp_image_get_item_position (image, GIMP_ITEM (above));
    }

  gimp_image_undo_group_start (image);
  gimp_image_freeze_layers (image);

  /* From the bottom up, each new item at `position` pushes the earlier
   * ones down: the group right above `above`, the other layers above it,
   * the last added on top. */
  if (pending->group_name)
    ok = insert_group (pending, image, parent, position, &outer);
  for (guint i = 0; ok && i < pending->above->len; i++)
    {
      ok = gimp_image_insert_layer (image,
                                    g_ptr_array_index (pending->above, i),
                                    parent, position);
      if (ok)
        pending->above_inserted = i + 1;
    }

  if (! ok)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Could not add the new layers: %s"),
                   gimp_pdb_get_last_error (gimp_get_pdb ()));
      /* Removing the group takes whatever was already inserted with it;
       * catdog_pending_free() deletes the rest. */
      if (outer)
        gimp_image_remove_layer (image, outer);
      for (guint i = 0; i < pending->above_inserted; i++)
        gimp_image_remove_layer (image, g_ptr_array_index (pending->above, i));
      g_ptr_array_remove_range (pending->above, 0, pending->above_inserted);
      pending->above_inserted = 0;
    }

  gimp_image_thaw_layers (image);
  gimp_image_undo_group_end (image);
  return ok;
}

gboolean
catdog_pending_add_feature_maps (CatdogPending    *pending,
                                 GimpImage        *image,
                                 const cnn_net    *net,
                                 const gchar      *layers,
                                 CatdogMapsStyle   style,
                                 cnn_colormap      colormap,
                                 gint              top,
                                 const gchar      *group_name,
                                 gdouble           progress_start,
                                 gdouble           progress_end,
                                 GError          **error)
{
  GimpImageBaseType  base   = gimp_image_get_base_type (image);
  gint               width  = gimp_image_get_width (image);
  gint               height = gimp_image_get_height (image);
  GArray            *taps;
  GimpImageType      type;
  gboolean           ok;

  g_return_val_if_fail (pending->group_name == NULL, FALSE);

  if (base == GIMP_INDEXED)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Feature maps cannot be added to an indexed image: its "
                     "palette would distort them. Convert it to RGB "
                     "(Image > Mode > RGB) or turn feature maps off."));
      return FALSE;
    }
  if (base == GIMP_GRAY && colormap != CNN_COLORMAP_GRAY)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The viridis colormap needs an RGB image. Choose the "
                     "gray colormap or convert the image to RGB."));
      return FALSE;
    }
  type = (base == GIMP_GRAY) ? GIMP_GRAY_IMAGE : GIMP_RGB_IMAGE;

  taps = g_array_new (FALSE, TRUE, sizeof (Tap));
  g_array_set_clear_func (taps, tap_clear);
  ok   = select_taps (net, layers, taps, error);

  if (ok && top > 0)
    ok = select_top_channels (net, taps, top, error);
  if (ok && style == CATDOG_MAPS_CHANNELS)
    {
      gint pixel_bytes = component_bytes (gimp_image_get_precision (image)) *
                         (base == GIMP_GRAY ? 1 : 3);

      ok = choose_factors (taps, width, height, pixel_bytes, error);
    }

  if (ok)
    pending->group_name = g_strdup (group_name);
  if (ok && style == CATDOG_MAPS_MOSAIC)
    g_ptr_array_add (pending->batches, batch_new (NULL));

  for (guint t = 0; ok && t < taps->len; t++)
    {
      const Tap *tap  = &g_array_index (taps, Tap, t);
      gdouble    step = (progress_end - progress_start) / taps->len;
      gdouble    at   = progress_start + step * t;

      if (style == CATDOG_MAPS_MOSAIC)
        {
          GimpLayer *layer = mosaic_layer (image, tap, colormap, type,
                                           width, height, error);

          if (layer)
            g_ptr_array_add (((Batch *) g_ptr_array_index (pending->batches,
                                                           0))->layers,
                             layer);
          ok = (layer != NULL);
          gimp_progress_update (at + step);
        }
      else
        {
          Batch *batch = batch_new (tap_title (tap));

          g_ptr_array_add (pending->batches, batch);
          ok = channel_layers (image, tap, colormap, type, width, height,
                               batch, at, step, error);
        }
    }

  g_array_unref (taps);
  return ok;
}
