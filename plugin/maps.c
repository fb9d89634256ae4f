/* maps.c - feature maps as ordinary image layers.
 *
 * Every layer is made detached and handed to a CatdogPending (pending.c),
 * which puts them all into the image at once or deletes them.
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
 * picks:    (the "channels" argument) the channels style with only the
 *           picked channels of the picked layers, in network order, each
 *           layer's channels in the order given, named
 *           "conv3 - 2 of 128 maps, 18x18".
 * top = K:  in both styles only the K channels of highest mean activation
 *           of each conv layer, most active first (a mosaic tiles them in
 *           that order, as `catdog maps --top K` does; channel layers go
 *           from the top down), named "conv2 - top 3 of 64 maps, 72x72".
 *
 * Calls taps.c, pending.c, strips.c, scale.c and errors.c. */
#include "catdog-plugin.h"

typedef struct
{
  gint             index;      /* for cnn_net_tap() */
  const cnn_layer *layer;
  cnn_tensor_view  view;
  gint             factor;     /* channels style: integer enlargement */
  gint             n_channels; /* how many channels are shown */
  gint            *channels;   /* those, in order; NULL: all, 0 .. c-1 */
  gboolean         picked;     /* channels picked by hand, not the top */
} Tap;

static void
tap_clear (gpointer data)
{
  Tap *tap = data;

  g_clear_pointer (&tap->channels, g_free);
}

static gchar *
tap_title (const Tap *tap)
{
  /* Some of the channels: picked ones, or the most active. */
  if (tap->channels)
    return g_strdup_printf (
      tap->picked
      ? g_dngettext (GETTEXT_PACKAGE, "%s - %d of %d map, %dx%d",
                     "%s - %d of %d maps, %dx%d", (gulong) tap->view.c)
      : g_dngettext (GETTEXT_PACKAGE, "%s - top %d of %d map, %dx%d",
                     "%s - top %d of %d maps, %dx%d", (gulong) tap->view.c),
      tap->layer->name, tap->n_channels, tap->view.c, tap->view.w,
      tap->view.h);
  return g_strdup_printf (g_dngettext (GETTEXT_PACKAGE,
                                       "%s - %d map, %dx%d",
                                       "%s - %d maps, %dx%d",
                                       (gulong) tap->view.c),
                          tap->layer->name, tap->view.c,
                          tap->view.w, tap->view.h);
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
          const gchar *name = g_strstrip (names[i]);
          gint         tap  = -1;

          if (! *name)
            continue;
          if (cnn_model_find_conv (cnn_net_model (net), name, NULL,
                                   &tap) == CNN_OK)
            wanted[tap] = TRUE;
          else
            {
              catdog_set_no_layer_error (net, name, error);
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

/* The taps and channels of picks, in network order; a layer or channel
 * the model lacks is an error in CATDOG_CHANNELS_ERROR. */
static gboolean
select_picked_taps (const cnn_net  *net,
                    GPtrArray      *picks,
                    GArray         *taps,
                    GError        **error)
{
  gint   n_taps = cnn_net_tap_count (net);
  gint  *tap_of = g_new (gint, picks->len);

  for (guint i = 0; i < picks->len; i++)
    {
      const CatdogChannelPick *pick = picks->pdata[i];
      GError                  *unknown = NULL;

      const cnn_layer         *layer = NULL;
      cnn_tensor_view          view;

      tap_of[i] = -1;
      if (cnn_model_find_conv (cnn_net_model (net), pick->layer, NULL,
                               &tap_of[i]) == CNN_OK &&
          cnn_net_tap (net, tap_of[i], &view, &layer) == CNN_OK)
        {
          for (guint c = 0; c < pick->channels->len; c++)
            {
              gint channel = g_array_index (pick->channels, gint, c);

              if (channel >= view.c)
                {
                  g_set_error (error, CATDOG_CHANNELS_ERROR,
                               CATDOG_CHANNELS_ERROR_UNKNOWN,
                               _("The conv layer %s has no channel %d (its "
                                 "channels: 0 to %d)."),
                               layer->name, channel, view.c - 1);
                  g_free (tap_of);
                  return FALSE;
                }
            }
        }
      else
        tap_of[i] = -1;
      if (tap_of[i] < 0)
        {
          catdog_set_no_layer_error (net, pick->layer, &unknown);
          g_set_error_literal (error, CATDOG_CHANNELS_ERROR,
                               CATDOG_CHANNELS_ERROR_UNKNOWN,
                               unknown->message);
          g_error_free (unknown);
          g_free (tap_of);
          return FALSE;
        }
    }

  for (gint t = 0; t < n_taps; t++)
    for (guint i = 0; i < picks->len; i++)
      {
        const CatdogChannelPick *pick = picks->pdata[i];
        Tap                      tap  = { 0 };
        cnn_status               st;

        if (tap_of[i] != t || pick->channels->len == 0)
          continue;
        tap.index  = t;
        tap.picked = TRUE;
        st = cnn_net_tap (net, t, &tap.view, &tap.layer);
        if (st != CNN_OK)
          {
            catdog_set_core_error (error, st, _("Feature maps"));
            g_free (tap_of);
            return FALSE;
          }
        tap.n_channels = (gint) pick->channels->len;
        tap.channels   = g_memdup2 (pick->channels->data,
                                    sizeof (gint) * pick->channels->len);
        g_array_append_val (taps, tap);
      }
  g_free (tap_of);
  return TRUE;
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
  GimpLayer *layer = catdog_layer_new (image, name, width, height, type,
                                       100.0, error);

  if (layer)
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
      ! catdog_write_strips (layer,
                             &(CatdogPicture) { mosaic.pixels, mosaic.width,
                                                mosaic.height, mosaic.stride,
                                                mosaic.channels },
                             mosaic.channels, NULL, NULL, error))
    {
      gimp_item_delete (GIMP_ITEM (layer));
      layer = NULL;
    }
  g_free (name);
  cnn_image_free (&mosaic);
  return layer;
}

/* The strip writer's colour step for the viridis channel maps: a map
 * value becomes its colour. */
static void
colour_from_table (const guint8 *values,
                   gsize         n,
                   guint8       *out,
                   gpointer      table)
{
  const uint8_t (*colours)[3] = table;

  for (gsize i = 0; i < n; i++)
    memcpy (out + 3 * i, colours[values[i]], 3);
}

/* One layer per chosen channel of tap, in order, into the batch begun
 * last in pending. */
static gboolean
channel_layers (GimpImage      *image,
                const Tap      *tap,
                cnn_colormap    colormap,
                GimpImageType   type,
                CatdogPending  *pending,
                gdouble         progress,
                gdouble         progress_step,
                GError        **error)
{
  gint           channels   = (colormap == CNN_COLORMAP_GRAY) ? 1 : 3;
  gint           image_w    = gimp_image_get_width (image);
  gint           image_h    = gimp_image_get_height (image);
  gsize          n_pixels   = (gsize) tap->view.w * (gsize) tap->view.h;
  guint8        *map        = g_try_malloc (n_pixels);
  CatdogPicture  picture    = { map, tap->view.w, tap->view.h,
                                (gsize) tap->view.w, 1 };
  gboolean       ok         = TRUE;

  if (! map)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for the maps of %s."),
                   tap->layer->name);
      ok = FALSE;
    }

  for (gint k = 0; ok && k < tap->n_channels; k++)
    {
      gint          c      = tap->channels ? tap->channels[k] : k;
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

      name  = g_strdup_printf (_("%s #%d"), tap->layer->name, c);
      layer = new_layer (image, name,
                         tap->view.w * tap->factor, tap->view.h * tap->factor,
                         type, image_w, image_h, error);
      g_free (name);
      if (! layer)
        {
          ok = FALSE;
          break;
        }
      catdog_pending_add_to_group (pending, layer);
      /* The maps are only ever enlarged (nearest neighbour), so colouring
       * each strip gives the pixels colouring the map first would. */
      ok = catdog_write_strips (layer, &picture, channels,
                                channels == 3 ? colour_from_table : NULL,
                                (gpointer) cnn_colormap_table (colormap),
                                error);

      gimp_progress_update (progress +
                            progress_step * (k + 1) / tap->n_channels);
    }

  g_free (map);
  return ok;
}

gboolean
catdog_pending_add_feature_maps (CatdogPending         *pending,
                                 GimpImage             *image,
                                 const cnn_net         *net,
                                 const CatdogMapsSpec  *spec,
                                 GError               **error)
{
  cnn_colormap       colormap = spec->colormap;
  gboolean           picks  = (spec->picks && spec->picks->len > 0);
  CatdogMapsStyle    style  = picks ? CATDOG_MAPS_CHANNELS : spec->style;
  GimpImageBaseType  base   = gimp_image_get_base_type (image);
  gint               width  = gimp_image_get_width (image);
  gint               height = gimp_image_get_height (image);
  GArray            *taps;
  GimpImageType      type;
  gboolean           ok;

  g_return_val_if_fail (! catdog_pending_has_group (pending), FALSE);

  /* An indexed image's palette would distort the maps, a grayscale one
   * cannot hold viridis's colours. */
  if (base == GIMP_INDEXED ||
      (base == GIMP_GRAY && colormap != CNN_COLORMAP_GRAY))
    {
      g_set_error_literal (
        error, CATDOG_ERROR, 0,
        base == GIMP_INDEXED
        ? _("Feature maps cannot be added to an indexed image: its "
            "palette would distort them. Convert it to RGB "
            "(Image > Mode > RGB) or turn feature maps off.")
        : _("The viridis colormap needs an RGB image. Choose the "
            "gray colormap or convert the image to RGB."));
      return FALSE;
    }
  type = (base == GIMP_GRAY) ? GIMP_GRAY_IMAGE : GIMP_RGB_IMAGE;

  taps = g_array_new (FALSE, TRUE, sizeof (Tap));
  g_array_set_clear_func (taps, tap_clear);
  if (picks)
    ok = select_picked_taps (net, spec->picks, taps, error);
  else
    ok = select_taps (net, spec->layers, taps, error);

  if (ok && spec->top > 0 && ! picks)
    ok = select_top_channels (net, taps, spec->top, error);
  if (ok && style == CATDOG_MAPS_CHANNELS)
    {
      gint pixel_bytes = component_bytes (gimp_image_get_precision (image)) *
                         (base == GIMP_GRAY ? 1 : 3);

      ok = choose_factors (taps, width, height, pixel_bytes, error);
    }

  if (ok)
    catdog_pending_set_group (pending, spec->group_name);
  if (ok && style == CATDOG_MAPS_MOSAIC)
    catdog_pending_begin_batch (pending, NULL);

  for (guint t = 0; ok && t < taps->len; t++)
    {
      const Tap *tap  = &g_array_index (taps, Tap, t);
      gdouble    step = (spec->progress_end - spec->progress_start) /
                        taps->len;
      gdouble    at   = spec->progress_start + step * t;

      if (style == CATDOG_MAPS_MOSAIC)
        {
          GimpLayer *layer = mosaic_layer (image, tap, colormap, type,
                                           width, height, error);

          if (layer)
            catdog_pending_add_to_group (pending, layer);
          ok = (layer != NULL);
          gimp_progress_update (at + step);
        }
      else
        {
          gchar *title = tap_title (tap);

          catdog_pending_begin_batch (pending, title);
          g_free (title);
          ok = channel_layers (image, tap, colormap, type, pending,
                               at, step, error);
        }
    }

  g_array_unref (taps);
  return ok;
}
