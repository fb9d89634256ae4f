/* catdog-preview-draw.c - what the preview shows: the photo with the
 * heat map over it, the mosaic of one conv layer's maps with the marked
 * channels framed, and one channel large; pointer and keys on the
 * mosaic.  All from the last run (catdog-preview.c); nothing here runs
 * the network. */
#include "catdog-preview-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#define PHOTO_SIDE   240
#define CHANNEL_SIDE 160
#define MOSAIC_W     400
#define MOSAIC_H     300

void
catdog_preview_clear_pictures (CatdogPreview *preview)
{
  g_clear_object (&preview->photo_pixbuf);
  g_clear_object (&preview->heat_pixbuf);
  g_clear_object (&preview->mosaic_pixbuf);
  g_clear_object (&preview->channel_pixbuf);
  g_clear_pointer (&preview->order, g_free);
  g_clear_pointer (&preview->means, g_free);
  preview->n_tiles = 0;
}

/* values (n bytes) through the colormap into an RGB pixbuf's rows. */
static GdkPixbuf *
coloured (const guint8 *values,
          gint          width,
          gint          height,
          cnn_colormap  colormap)
{
  const uint8_t (*table)[3] = cnn_colormap_table (colormap);
  GdkPixbuf    *pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8,
                                         width, height);
  guint8       *out    = gdk_pixbuf_get_pixels (pixbuf);
  gint          stride = gdk_pixbuf_get_rowstride (pixbuf);

  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      memcpy (out + (gsize) y * stride + 3 * x,
              table[values[(gsize) y * width + x]], 3);
  return pixbuf;
}

/* The tap of the conv layer called name in the last run, or -1. */
static gint
find_tap (CatdogPreview   *preview,
          const gchar     *name,
          cnn_tensor_view *view)
{
  const cnn_layer *layer = NULL;
  gint             tap   = -1;

  if (! preview->run || ! name ||
      cnn_model_find_conv (preview->run->model, name, NULL, &tap) != CNN_OK ||
      cnn_net_tap (preview->run->net, tap, view, &layer) != CNN_OK)
    return -1;
  return tap;
}

static CatdogChannelPick *
marks_of (CatdogPreview *preview,
          const gchar   *layer)
{
  for (guint i = 0; i < preview->marks->len; i++)
    {
      CatdogChannelPick *pick = preview->marks->pdata[i];

      if (! strcmp (pick->layer, layer))
        return pick;
    }
  return NULL;
}

static gboolean
is_marked (CatdogPreview *preview,
           gint           channel)
{
  CatdogChannelPick *pick = preview->layer ? marks_of (preview,
                                                       preview->layer)
                                           : NULL;

  for (guint i = 0; pick && i < pick->channels->len; i++)
    if (g_array_index (pick->channels, gint, i) == channel)
      return TRUE;
  return FALSE;
}

/* The large channel: the hovered tile, else the focus tile. */
static void
update_channel (CatdogPreview *preview)
{
  gint            tile = preview->hover >= 0 ? preview->hover : preview->focus;
  cnn_tensor_view view;
  guint8         *map;
  gchar          *text;
  gint            c;

  g_clear_object (&preview->channel_pixbuf);
  if (tile < 0 || tile >= preview->n_tiles ||
      find_tap (preview, preview->layer, &view) < 0)
    {
      gtk_label_set_text (GTK_LABEL (preview->channel_label), "");
      gtk_widget_queue_draw (preview->channel);
      return;
    }
  c   = preview->order[tile];
  map = g_malloc ((gsize) view.w * view.h);
  if (cnn_map_normalize (&view, 0, c, map, (size_t) view.w) == CNN_OK)
    preview->channel_pixbuf = coloured (map, view.w, view.h,
                                        preview->colormap);
  g_free (map);
  /* TRANSLATORS: under the large channel: "conv3 #17, mean 0.412" */
  text = g_strdup_printf (_("%s #%d, mean %.3f"), preview->layer, c,
                          preview->means[c]);
  gtk_label_set_text (GTK_LABEL (preview->channel_label), text);
  g_free (text);
  gtk_widget_queue_draw (preview->channel);
}

/* The mosaic of preview->layer: its channels (or its `top` most active
 * ones, most active first), each normalised on its own, 1-pixel gaps. */
static void
build_mosaic (CatdogPreview *preview)
{
  cnn_tensor_view view;
  gint           *sorted;
  gfloat         *sorted_means;
  gint            count = 0, rows, width, height;
  guint8         *values;

  g_clear_object (&preview->mosaic_pixbuf);
  g_clear_pointer (&preview->order, g_free);
  g_clear_pointer (&preview->means, g_free);
  preview->n_tiles = 0;
  preview->tap = find_tap (preview, preview->layer, &view);
  if (preview->tap < 0)
    return;

  sorted       = g_new (gint, view.c);
  sorted_means = g_new (gfloat, view.c);
  if (cnn_net_top_channels (preview->run->net, preview->tap, 0, view.c,
                            sorted, sorted_means, &count) != CNN_OK ||
      count != view.c)
    {
      g_free (sorted);
      g_free (sorted_means);
      return;
    }
  preview->means = g_new (gfloat, view.c);
  for (gint i = 0; i < view.c; i++)
    preview->means[sorted[i]] = sorted_means[i];
  g_free (sorted_means);
  /* Top K: the most active first; all: in channel order. */
  preview->order   = sorted;
  preview->n_tiles = preview->top > 0 ? MIN (preview->top, view.c) : view.c;
  if (preview->top <= 0)
    for (gint i = 0; i < view.c; i++)
      preview->order[i] = i;

  cnn_mosaic_size (preview->n_tiles, view.w, view.h, &preview->cols, &rows,
                   &width, &height);
  preview->tile_w = view.w;
  preview->tile_h = view.h;
  values = g_malloc0 ((gsize) width * height);
  for (gint i = 0; i < preview->n_tiles; i++)
    {
      gsize x = (gsize) (i % preview->cols) * (view.w + 1);
      gsize y = (gsize) (i / preview->cols) * (view.h + 1);

      cnn_map_normalize (&view, 0, preview->order[i],
                         values + y * width + x, (size_t) width);
    }
  preview->mosaic_pixbuf = coloured (values, width, height, preview->colormap);
  g_free (values);
  if (preview->focus >= preview->n_tiles)
    preview->focus = preview->n_tiles - 1;
  preview->hover = -1;
}

/* The heat map over the photo: red to yellow with its own strength as
 * opacity (the heat-map layer's colours). */
static void
build_heat (CatdogPreview *preview)
{
  guint8 *map, *out;
  gint    w = preview->width, h = preview->height, stride;

  g_clear_object (&preview->heat_pixbuf);
  if (! preview->run || ! preview->run->cam || ! preview->pixels)
    return;
  map = g_malloc ((gsize) w * h);
  if (cnn_cam_render (preview->run->model, preview->run->cam,
                      preview->run->cam_h, preview->run->cam_w, w, h, map,
                      (size_t) w) == CNN_OK)
    {
      preview->heat_pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8,
                                             w, h);
      out    = gdk_pixbuf_get_pixels (preview->heat_pixbuf);
      stride = gdk_pixbuf_get_rowstride (preview->heat_pixbuf);
      for (gint y = 0; y < h; y++)
        for (gint x = 0; x < w; x++)
          {
            guint8 *px = out + (gsize) y * stride + 4 * x;
            guint8  v  = map[(gsize) y * w + x];

            px[0] = 255;
            px[1] = v;
            px[2] = 0;
            px[3] = v;
          }
    }
  g_free (map);
}

void
catdog_preview_photo_changed (CatdogPreview *preview)
{
  g_clear_object (&preview->photo_pixbuf);
  g_clear_object (&preview->heat_pixbuf);
  if (preview->pixels)
    preview->photo_pixbuf =
      gdk_pixbuf_new_from_bytes (preview->pixels, GDK_COLORSPACE_RGB, FALSE,
                                 8, preview->width, preview->height,
                                 preview->width * 3);
  gtk_widget_queue_draw (preview->photo);
}

void
catdog_preview_redraw (CatdogPreview *preview)
{
  gint64 t0 = g_get_monotonic_time ();

  if (! preview->heat_pixbuf)
    build_heat (preview);
  build_mosaic (preview);
  update_channel (preview);
  preview->redraw_us = g_get_monotonic_time () - t0;
  gtk_widget_queue_draw (preview->photo);
  gtk_widget_queue_draw (preview->mosaic);
}

void
catdog_preview_set_layer (CatdogPreview *preview,
                          const gchar   *layer)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  if (! catdog_preview_take_string (&preview->layer, layer))
    return;
  preview->focus = -1;
  build_mosaic (preview);
  update_channel (preview);
  preview->redraw_us = 0;
  gtk_widget_queue_draw (preview->mosaic);
}

gint64
catdog_preview_get_redraw_time (CatdogPreview *preview)
{
  return preview->redraw_us;
}

gint
catdog_preview_get_n_tiles (CatdogPreview *preview)
{
  return preview->n_tiles;
}

gint
catdog_preview_get_focus_channel (CatdogPreview *preview)
{
  return preview->focus >= 0 && preview->focus < preview->n_tiles
         ? preview->order[preview->focus] : -1;
}

void
catdog_preview_clear_marks (CatdogPreview *preview)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  if (preview->marks->len == 0)
    return;
  g_ptr_array_set_size (preview->marks, 0);
  gtk_widget_queue_draw (preview->mosaic);
  catdog_preview_notify_channels (preview);
}

void
catdog_preview_keep_marks (CatdogPreview *preview)
{
  gboolean changed = FALSE;

  for (guint i = preview->marks->len; i-- > 0;)
    {
      CatdogChannelPick *pick = preview->marks->pdata[i];
      cnn_tensor_view    view;

      if (find_tap (preview, pick->layer, &view) < 0)
        {
          g_ptr_array_remove_index (preview->marks, i);
          changed = TRUE;
          continue;
        }
      for (guint c = pick->channels->len; c-- > 0;)
        if (g_array_index (pick->channels, gint, c) >= view.c)
          {
            g_array_remove_index (pick->channels, c);
            changed = TRUE;
          }
      if (pick->channels->len == 0)
        g_ptr_array_remove_index (preview->marks, i);
    }
  if (changed)
    catdog_preview_notify_channels (preview);
}

/* Marks the tile's channel, or unmarks it. */
static void
toggle_tile (CatdogPreview *preview,
             gint           tile)
{
  CatdogChannelPick *pick;
  gint               c;

  if (tile < 0 || tile >= preview->n_tiles || ! preview->layer)
    return;
  c    = preview->order[tile];
  pick = marks_of (preview, preview->layer);
  if (! pick)
    {
      pick = catdog_channel_pick_new (preview->layer);
      g_ptr_array_add (preview->marks, pick);
    }
  for (guint i = 0; i < pick->channels->len; i++)
    if (g_array_index (pick->channels, gint, i) == c)
      {
        g_array_remove_index (pick->channels, i);
        if (pick->channels->len == 0)
          g_ptr_array_remove (preview->marks, pick);
        c = -1;
        break;
      }
  if (c >= 0)
    g_array_append_val (pick->channels, c);
  gtk_widget_queue_draw (preview->mosaic);
  catdog_preview_notify_channels (preview);
}

/* ------------------------------------------------------------------ */
/* Drawing and events                                                  */
/* ------------------------------------------------------------------ */

/* Where pixbuf goes in widget, scaled to fit and centred. */
static gdouble
fit (GtkWidget *widget,
     GdkPixbuf *pixbuf,
     gdouble   *x,
     gdouble   *y)
{
  gdouble aw = gtk_widget_get_allocated_width (widget);
  gdouble ah = gtk_widget_get_allocated_height (widget);
  gdouble pw = gdk_pixbuf_get_width (pixbuf);
  gdouble ph = gdk_pixbuf_get_height (pixbuf);
  gdouble scale = MIN (aw / pw, ah / ph);

  *x = (aw - pw * scale) / 2;
  *y = (ah - ph * scale) / 2;
  return scale;
}

static void
paint (cairo_t        *cr,
       GtkWidget      *widget,
       GdkPixbuf      *pixbuf,
       GdkPixbuf      *over,
       cairo_filter_t  filter)
{
  gdouble x, y, scale = fit (widget, pixbuf, &x, &y);

  cairo_save (cr);
  cairo_translate (cr, x, y);
  cairo_scale (cr, scale, scale);
  gdk_cairo_set_source_pixbuf (cr, pixbuf, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), filter);
  cairo_paint (cr);
  if (over)
    {
      gdk_cairo_set_source_pixbuf (cr, over, 0, 0);
      cairo_pattern_set_filter (cairo_get_source (cr), filter);
      cairo_paint_with_alpha (cr, 0.75);
    }
  cairo_restore (cr);
}

static gboolean
draw_photo (GtkWidget     *widget,
            cairo_t       *cr,
            CatdogPreview *preview)
{
  gboolean heat = gtk_toggle_button_get_active (
                    GTK_TOGGLE_BUTTON (preview->heat_check));

  if (preview->photo_pixbuf)
    paint (cr, widget, preview->photo_pixbuf,
           heat ? preview->heat_pixbuf : NULL, CAIRO_FILTER_GOOD);
  return TRUE;
}

static gboolean
draw_channel (GtkWidget     *widget,
              cairo_t       *cr,
              CatdogPreview *preview)
{
  if (preview->channel_pixbuf)
    paint (cr, widget, preview->channel_pixbuf, NULL, CAIRO_FILTER_NEAREST);
  return TRUE;
}

/* A tile's rectangle in the widget. */
static void
tile_rect (CatdogPreview *preview,
           gint           tile,
           gdouble        scale,
           gdouble        x0,
           gdouble        y0,
           gdouble       *rect)
{
  rect[0] = x0 + scale * (tile % preview->cols) * (preview->tile_w + 1);
  rect[1] = y0 + scale * (tile / preview->cols) * (preview->tile_h + 1);
  rect[2] = scale * preview->tile_w;
  rect[3] = scale * preview->tile_h;
}

static gboolean
draw_mosaic (GtkWidget     *widget,
             cairo_t       *cr,
             CatdogPreview *preview)
{
  gdouble x0, y0, scale, r[4];

  if (! preview->mosaic_pixbuf)
    {
      if (gtk_widget_has_focus (widget))
        gtk_render_focus (gtk_widget_get_style_context (widget), cr, 0, 0,
                          gtk_widget_get_allocated_width (widget),
                          gtk_widget_get_allocated_height (widget));
      return TRUE;
    }
  paint (cr, widget, preview->mosaic_pixbuf, NULL, CAIRO_FILTER_NEAREST);
  scale = fit (widget, preview->mosaic_pixbuf, &x0, &y0);
  cairo_set_line_width (cr, 2.0);
  /* Marked: red frames. */
  cairo_set_source_rgb (cr, 0.9, 0.1, 0.1);
  for (gint i = 0; i < preview->n_tiles; i++)
    if (is_marked (preview, preview->order[i]))
      {
        tile_rect (preview, i, scale, x0, y0, r);
        cairo_rectangle (cr, r[0] + 1, r[1] + 1, MAX (r[2] - 2, 1),
                         MAX (r[3] - 2, 1));
        cairo_stroke (cr);
      }
  /* The focus tile, when the mosaic has the keyboard: dashed yellow. */
  if (gtk_widget_has_focus (widget) && preview->focus >= 0)
    {
      static const gdouble dash[] = { 3.0, 2.0 };

      tile_rect (preview, preview->focus, scale, x0, y0, r);
      cairo_set_source_rgb (cr, 1.0, 0.85, 0.0);
      cairo_set_dash (cr, dash, 2, 0);
      cairo_rectangle (cr, r[0] - 1, r[1] - 1, r[2] + 2, r[3] + 2);
      cairo_stroke (cr);
    }
  return TRUE;
}

/* The tile under widget point (x, y), or -1. */
static gint
tile_at (CatdogPreview *preview,
         gdouble        x,
         gdouble        y)
{
  gdouble x0, y0, scale;
  gint    mx, my, tile;

  if (! preview->mosaic_pixbuf)
    return -1;
  scale = fit (preview->mosaic, preview->mosaic_pixbuf, &x0, &y0);
  if (scale <= 0 || x < x0 || y < y0)
    return -1;
  mx = (gint) ((x - x0) / scale);
  my = (gint) ((y - y0) / scale);
  if (mx % (preview->tile_w + 1) >= preview->tile_w ||
      my % (preview->tile_h + 1) >= preview->tile_h ||
      mx / (preview->tile_w + 1) >= preview->cols)
    return -1;
  tile = (my / (preview->tile_h + 1)) * preview->cols +
         mx / (preview->tile_w + 1);
  return tile < preview->n_tiles ? tile : -1;
}

static gboolean
mosaic_motion (GtkWidget      *widget,
               GdkEventMotion *event,
               CatdogPreview  *preview)
{
  gint tile = tile_at (preview, event->x, event->y);

  if (tile != preview->hover)
    {
      preview->hover = tile;
      update_channel (preview);
    }
  return FALSE;
}

static gboolean
mosaic_leave (GtkWidget        *widget,
              GdkEventCrossing *event,
              CatdogPreview    *preview)
{
  preview->hover = -1;
  update_channel (preview);
  return FALSE;
}

static gboolean
mosaic_press (GtkWidget      *widget,
              GdkEventButton *event,
              CatdogPreview  *preview)
{
  gint tile = tile_at (preview, event->x, event->y);

  gtk_widget_grab_focus (widget);
  if (event->button != GDK_BUTTON_PRIMARY || tile < 0)
    return FALSE;
  preview->focus = tile;
  toggle_tile (preview, tile);
  update_channel (preview);
  return TRUE;
}

static gboolean
mosaic_key (GtkWidget     *widget,
            GdkEventKey   *event,
            CatdogPreview *preview)
{
  gint n = preview->n_tiles, focus = preview->focus, cols = preview->cols;

  if (n == 0 || (event->state & (GDK_CONTROL_MASK | GDK_MOD1_MASK)))
    return FALSE;
  switch (event->keyval)
    {
    case GDK_KEY_Left:  case GDK_KEY_KP_Left:  focus--;       break;
    case GDK_KEY_Right: case GDK_KEY_KP_Right: focus++;       break;
    case GDK_KEY_Up:    case GDK_KEY_KP_Up:    focus -= cols; break;
    case GDK_KEY_Down:  case GDK_KEY_KP_Down:  focus += cols; break;
    case GDK_KEY_Home:                         focus = 0;     break;
    case GDK_KEY_End:                          focus = n - 1; break;
    case GDK_KEY_space: case GDK_KEY_KP_Space:
      if (focus < 0)
        focus = 0;
      preview->focus = focus;
      toggle_tile (preview, focus);
      update_channel (preview);
      return TRUE;
    default:
      return FALSE;
    }
  if (preview->focus < 0)
    focus = 0;
  preview->focus = CLAMP (focus, 0, n - 1);
  preview->hover = -1;
  update_channel (preview);
  gtk_widget_queue_draw (widget);
  return TRUE;
}

static void
heat_toggled (GtkToggleButton *check,
              CatdogPreview   *preview)
{
  gtk_widget_queue_draw (preview->photo);
}

static void
focus_changed (GtkWidget     *widget,
               GdkEvent      *event,
               CatdogPreview *preview)
{
  gtk_widget_queue_draw (widget);
}

/* What the mosaic answers to. */
static const struct
{
  const gchar *name;
  GCallback    handler;
} mosaic_signals[] = {
  { "draw",                G_CALLBACK (draw_mosaic) },
  { "motion-notify-event", G_CALLBACK (mosaic_motion) },
  { "leave-notify-event",  G_CALLBACK (mosaic_leave) },
  { "button-press-event",  G_CALLBACK (mosaic_press) },
  { "key-press-event",     G_CALLBACK (mosaic_key) },
  { "focus-in-event",      G_CALLBACK (focus_changed) },
  { "focus-out-event",     G_CALLBACK (focus_changed) },
};

void
catdog_preview_build_views (CatdogPreview *preview)
{
  GtkWidget *row, *side, *label;

  row  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  side = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  preview->photo = gtk_drawing_area_new ();
  gtk_widget_set_size_request (preview->photo, PHOTO_SIDE, PHOTO_SIDE * 3 / 4);
  g_signal_connect (preview->photo, "draw", G_CALLBACK (draw_photo), preview);
  preview->heat_check =
    gtk_check_button_new_with_mnemonic (_("Heat map o_ver the photo"));
  g_signal_connect (preview->heat_check, "toggled",
                    G_CALLBACK (heat_toggled), preview);
  gtk_box_pack_start (GTK_BOX (side), preview->photo, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (side), preview->heat_check, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), side, TRUE, TRUE, 0);

  side = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  preview->channel = gtk_drawing_area_new ();
  gtk_widget_set_size_request (preview->channel, CHANNEL_SIDE, CHANNEL_SIDE);
  g_signal_connect (preview->channel, "draw", G_CALLBACK (draw_channel),
                    preview);
  preview->channel_label = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (preview->channel_label), 0.0);
  gtk_box_pack_start (GTK_BOX (side), preview->channel, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (side), preview->channel_label, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), side, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (preview), row, FALSE, FALSE, 0);

  label = gtk_label_new_with_mnemonic (
            _("Mar_k channels (click, or arrow keys and space); OK adds "
              "them as layers:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (label), 50);
  preview->mosaic = gtk_drawing_area_new ();
  gtk_widget_set_size_request (preview->mosaic, MOSAIC_W, MOSAIC_H);
  gtk_widget_set_can_focus (preview->mosaic, TRUE);
  gtk_widget_add_events (preview->mosaic,
                         GDK_BUTTON_PRESS_MASK | GDK_POINTER_MOTION_MASK |
                         GDK_LEAVE_NOTIFY_MASK | GDK_KEY_PRESS_MASK |
                         GDK_FOCUS_CHANGE_MASK);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), preview->mosaic);
  for (gsize i = 0; i < G_N_ELEMENTS (mosaic_signals); i++)
    g_signal_connect (preview->mosaic, mosaic_signals[i].name,
                      mosaic_signals[i].handler, preview);
  gtk_box_pack_start (GTK_BOX (preview), label, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (preview), preview->mosaic, TRUE, TRUE, 0);
}
