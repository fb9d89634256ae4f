/* test_preview.c - the dialog's live preview (ui/catdog-preview.c) in the
 * panel, on a real (virtual) display, with the model the plug-in ships:
 * pixels of a 12-megapixel image handed over run the network in a worker
 * thread (the call returns at once, busy, a spinner) and the verdict
 * shows; the preview keeps a copy at preview size only; selecting a conv
 * layer shows its mosaic; top-K and colormap redraw without a run; the
 * keyboard moves the focus tile and marks channels, which become the
 * panel's "channels", the pointer shows a tile large and a click marks
 * it; the heat-map toggle changes the photo, and so does the heat map's
 * conv layer (a run); another
 * model runs again (marks it has room for kept, others dropped); a broken
 * model shows a message in the pane and keeps the settings.  Prints the
 * time from pixels handed over to verdict shown and the layer-switch
 * redraw time (targets 0.5 s and 50 ms on 2 cores; measured, not gated);
 * saves a screenshot.
 *   test_preview MODEL SCREENSHOT.png */
#include <string.h>

#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "catdog-panel.h"
#include "cnn.h"
#include "gcheck.h"

#define BIG_W 4000
#define BIG_H 3000

static void
pump_pending (void)
{
  while (gtk_events_pending ())
    gtk_main_iteration ();
}

/* Lets GTK draw what changed (drawing waits for the frame clock). */
static void
pump_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  do
    {
      pump_pending ();
      g_usleep (10000);
    }
  while (g_get_monotonic_time () < end);
}

/* Iterates until the preview is idle, at most timeout_s; the number of
 * main-loop iterations it took (the dialog kept answering). */
static gint
wait_idle (CatdogPreview *preview,
           gdouble        timeout_s)
{
  gint64   end = g_get_monotonic_time () + (gint64) (timeout_s * 1e6);
  gboolean busy = TRUE;
  gint     n = 0;

  while (g_get_monotonic_time () < end)
    {
      g_object_get (preview, "busy", &busy, NULL);
      if (! busy)
        break;
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
      n++;
    }
  pump_pending ();
  CHECKF (! busy, "the preview still runs after %.0f s", timeout_s);
  return n;
}

static gchar *
string_of (gpointer     object,
           const gchar *prop)
{
  gchar *s = NULL;

  g_object_get (object, prop, &s, NULL);
  return s;
}

/* The widget drawn into a new surface. */
static cairo_surface_t *
render (GtkWidget *widget)
{
  cairo_surface_t *surface = cairo_image_surface_create (
    CAIRO_FORMAT_RGB24, gtk_widget_get_allocated_width (widget),
    gtk_widget_get_allocated_height (widget));
  cairo_t *cr = cairo_create (surface);

  gtk_widget_draw (widget, cr);
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  return surface;
}

static gboolean
same_pixels (cairo_surface_t *a,
             cairo_surface_t *b)
{
  return cairo_image_surface_get_height (a) ==
           cairo_image_surface_get_height (b) &&
         cairo_image_surface_get_stride (a) ==
           cairo_image_surface_get_stride (b) &&
         ! memcmp (cairo_image_surface_get_data (a),
                   cairo_image_surface_get_data (b),
                   (gsize) cairo_image_surface_get_height (a) *
                   cairo_image_surface_get_stride (a));
}

static void
count_run (gint *runs)
{
  (*runs)++;
}

/* A key press delivered to widget (which has the focus), as GTK hands
 * it on from its window. */
static void
send_key (GtkWidget *widget,
          guint      keyval)
{
  GdkEvent *event = gdk_event_new (GDK_KEY_PRESS);
  GdkSeat  *seat  = gdk_display_get_default_seat (gdk_display_get_default ());

  event->key.window     = g_object_ref (gtk_widget_get_window (widget));
  event->key.send_event = TRUE;
  event->key.time       = GDK_CURRENT_TIME;
  event->key.keyval     = keyval;
  gdk_event_set_device (event, gdk_seat_get_keyboard (seat));
  CHECKF (gtk_widget_has_focus (widget), "the mosaic lacks the focus");
  CHECKF (gtk_widget_event (widget, event), "key %s not handled",
          gdk_keyval_name (keyval));
  gdk_event_free (event);
  pump_pending ();
}

/* A synthetic photo: smooth gradients and a few discs. */
static guint8 *
big_image (void)
{
  guint8 *px = g_malloc ((gsize) BIG_W * BIG_H * 3);

  for (gint y = 0; y < BIG_H; y++)
    for (gint x = 0; x < BIG_W; x++)
      {
        guint8 *p  = px + ((gsize) y * BIG_W + x) * 3;
        gint    dx = (x % 1000) - 500, dy = (y % 1000) - 500;
        gboolean disc = dx * dx + dy * dy < 300 * 300;

        p[0] = (guint8) (disc ? 220 : x * 255 / BIG_W);
        p[1] = (guint8) (disc ? 120 : y * 255 / BIG_H);
        p[2] = (guint8) ((x + y) & 0xff);
      }
  return px;
}

/* A screenshot of the window, saved; not blank. */
static void
check_screenshot_to (GtkWidget   *window,
                     const gchar *out)
{
  GdkWindow  *gw = gtk_widget_get_window (window);
  GdkPixbuf  *shot;
  GHashTable *colours = g_hash_table_new (g_direct_hash, g_direct_equal);
  GError     *error = NULL;

  pump_for (500);
  shot = gdk_pixbuf_get_from_window (gw, 0, 0, gdk_window_get_width (gw),
                                     gdk_window_get_height (gw));
  CHECK (shot != NULL);
  if (shot)
    {
      const guint8 *px = gdk_pixbuf_read_pixels (shot);
      gint          rs = gdk_pixbuf_get_rowstride (shot);
      gint          n  = gdk_pixbuf_get_n_channels (shot);

      CHECKF (gdk_pixbuf_save (shot, out, "png", &error, NULL), "%s",
              error ? error->message : "");
      g_clear_error (&error);
      for (gint y = 0; y < gdk_pixbuf_get_height (shot); y++)
        for (gint x = 0; x < gdk_pixbuf_get_width (shot); x++)
          {
            const guint8 *q = px + (gsize) y * rs + (gsize) x * n;

            g_hash_table_add (colours,
                              GUINT_TO_POINTER ((q[0] << 16) | (q[1] << 8) |
                                                q[2]));
          }
      /* The photo, the mosaic's colours, text: many colours. */
      CHECKF (g_hash_table_size (colours) >= 200, "%u colours",
              g_hash_table_size (colours));
      g_object_unref (shot);
    }
  g_hash_table_unref (colours);
}

/* The centre of tile `tile` of a mosaic of n tiles of w x h maps in
 * widget: the documented grid (cnn_mosaic_size(), 1-pixel gaps) scaled
 * to fit and centred. */
static void
tile_centre (GtkWidget *widget,
             gint       n,
             gint       w,
             gint       h,
             gint       tile,
             gdouble   *x,
             gdouble   *y)
{
  gint    cols, rows, mw, mh;
  gdouble aw = gtk_widget_get_allocated_width (widget);
  gdouble ah = gtk_widget_get_allocated_height (widget);
  gdouble scale;

  cnn_mosaic_size (n, w, h, &cols, &rows, &mw, &mh);
  scale = MIN (aw / mw, ah / mh);
  *x = (aw - mw * scale) / 2 + scale * ((tile % cols) * (w + 1) + w / 2.0);
  *y = (ah - mh * scale) / 2 + scale * ((tile / cols) * (h + 1) + h / 2.0);
}

/* A pointer event at (x, y) in widget: a move, or a press of button 1. */
static gboolean
send_pointer (GtkWidget    *widget,
              GdkEventType  type,
              gdouble       x,
              gdouble       y)
{
  GdkEvent *event = gdk_event_new (type);
  GdkSeat  *seat  = gdk_display_get_default_seat (gdk_display_get_default ());
  gboolean  handled;

  event->any.window     = g_object_ref (gtk_widget_get_window (widget));
  event->any.send_event = TRUE;
  if (type == GDK_BUTTON_PRESS)
    {
      event->button.x      = x;
      event->button.y      = y;
      event->button.button = GDK_BUTTON_PRIMARY;
      event->button.time   = GDK_CURRENT_TIME;
    }
  else
    {
      event->motion.x    = x;
      event->motion.y    = y;
      event->motion.time = GDK_CURRENT_TIME;
    }
  gdk_event_set_device (event, gdk_seat_get_pointer (seat));
  handled = gtk_widget_event (widget, event);
  gdk_event_free (event);
  pump_pending ();
  return handled;
}

/* The layer list's row for name selected. */
static gdouble
select_layer (GtkTreeView *view,
              gint         row)
{
  GtkTreePath *path = gtk_tree_path_new_from_indices (row, -1);
  gint64       t0   = g_get_monotonic_time ();

  gtk_tree_selection_select_path (gtk_tree_view_get_selection (view), path);
  pump_pending ();
  gtk_tree_path_free (path);
  return (g_get_monotonic_time () - t0) / 1000.0;
}

int
main (int    argc,
      char **argv)
{
  gchar         *dir, *other, *small, *broken, *channels, *text;
  GtkWidget     *window, *panel, *mosaic;
  CatdogPreview *preview;
  GtkTreeView   *lv;
  GError        *error = NULL;
  cnn_model     *m = NULL;
  const gchar   *label = NULL;
  gdouble        p = 0, switch_ms, first_ms;
  guint8        *pixels;
  gint64         t0;
  gint           w, h, iterations, a, b, c, runs = 0;
  gboolean       busy = FALSE;
  cairo_surface_t *before, *after;

  if (! gtk_init_check (&argc, &argv) || argc != 3)
    {
      g_print (argc != 3 ? "usage: test_preview MODEL SCREENSHOT.png\n"
                         : "SKIP: no display (run under xvfb-run)\n");
      return argc != 3 ? 2 : 77;
    }
  if (cnn_model_load (argv[1], &m) != CNN_OK)
    {
      printf ("SKIP: the shipped model does not load (%s)\n", cnn_last_error ());
      return 77;
    }
  cnn_model_free (m);

  dir    = g_dir_make_tmp ("catdog-preview-XXXXXX", &error);
  g_assert_no_error (error);
  other  = g_build_filename (dir, "other.safetensors", NULL);
  small  = g_build_filename (dir, "small.safetensors", NULL);
  broken = g_build_filename (dir, "broken.safetensors", NULL);
  m = NULL;
  CHECK_OK (cnn_model_from_spec ("article", &m));
  CHECK_OK (cnn_model_init (m, 9));
  CHECK_OK (cnn_model_save (m, other, CNN_DTYPE_F16, NULL));
  cnn_model_free (m);
  m = NULL;
  CHECK_OK (cnn_model_from_spec (
    "{\"schema\": 1, \"name\": \"small\", \"input\": [64, 64, 3],"
    " \"labels\": [\"cat\", \"dog\"], \"layers\": ["
    "  {\"type\": \"conv2d\", \"name\": \"c1\", \"filters\": 4, \"kernel\": 3,"
    "   \"stride\": 2, \"padding\": \"same\"}, {\"type\": \"relu\", \"name\": \"r1\"},"
    "  {\"type\": \"gap\", \"name\": \"gap\"},"
    "  {\"type\": \"dense\", \"name\": \"fc\", \"units\": 1},"
    "  {\"type\": \"sigmoid\", \"name\": \"prob\"}]}", &m));
  CHECK_OK (cnn_model_init (m, 4));
  CHECK_OK (cnn_model_save (m, small, CNN_DTYPE_F32, NULL));
  cnn_model_free (m);
  CHECK (g_file_set_contents (broken, "not a model", -1, NULL));

  {
    gchar *models = g_build_filename (dir, "models", NULL);

    panel = catdog_panel_new (models, argv[1]);
    g_free (models);
  }
  window = gtk_window_new (GTK_WINDOW_TOPLEVEL);
  gtk_container_add (GTK_CONTAINER (window), panel);
  gtk_container_set_border_width (GTK_CONTAINER (window), 12);
  /* As the plug-in shows it: not show_all (the result frame waits for a
   * result). */
  gtk_widget_show (panel);
  gtk_widget_show (window);
  pump_pending ();
  preview = catdog_panel_get_preview (CATDOG_PANEL (panel));
  lv      = catdog_panel_get_layer_view (CATDOG_PANEL (panel));
  mosaic  = catdog_preview_get_mosaic (preview);
  CHECK (! catdog_preview_get_verdict (preview, NULL, NULL));

  /* 12 megapixels handed over: the call returns while the network runs. */
  pixels = big_image ();
  t0 = g_get_monotonic_time ();
  catdog_panel_set_pixels (CATDOG_PANEL (panel), pixels, BIG_W, BIG_H,
                           (gsize) BIG_W * 3, 3);
  g_object_get (preview, "busy", &busy, NULL);
  CHECKF (busy, "set_pixels returned with the network done: not in a thread");
  g_free (pixels);
  iterations = wait_idle (preview, 60);
  first_ms = (g_get_monotonic_time () - t0) / 1000.0;
  CHECKF (catdog_preview_get_verdict (preview, &label, &p),
          "no verdict: %s", catdog_preview_get_error (preview));
  CHECKF (label && (! strcmp (label, "cat") || ! strcmp (label, "dog")) &&
          p >= 0.5 && p <= 1.0, "verdict %s %g", label, p);
  CHECKF (iterations > 0, "the main loop did not run during the run");
  catdog_preview_get_size (preview, &w, &h);
  CHECKF (w == CATDOG_PREVIEW_MAX_SIDE && h == CATDOG_PREVIEW_MAX_SIDE * 3 / 4,
          "preview copy %dx%d, expected %dx%d", w, h,
          CATDOG_PREVIEW_MAX_SIDE, CATDOG_PREVIEW_MAX_SIDE * 3 / 4);
  printf ("preview: %dx%d pixels handed over -> verdict shown (%s, %.1f%%): "
          "%.0f ms (in the preview: %.0f ms; target 500 ms on 2 cores)\n",
          BIG_W, BIG_H, label, 100 * p, first_ms,
          catdog_preview_get_verdict_time (preview) / 1000.0);

  /* The panel's "tta" runs the network again with flip averaging; off
   * again, the first verdict comes back exactly. */
  {
    gdouble p_tta = 0.0, p_again = 0.0;

    g_object_set (panel, "tta", TRUE, NULL);
    g_object_get (preview, "busy", &busy, NULL);
    CHECKF (busy, "tta on: the network did not run again");
    wait_idle (preview, 60);
    CHECKF (catdog_preview_get_verdict (preview, &label, &p_tta),
            "tta on: no verdict: %s", catdog_preview_get_error (preview));
    CHECKF (p_tta >= 0.5 && p_tta <= 1.0, "tta on: verdict %g", p_tta);
    g_object_set (panel, "tta", FALSE, NULL);
    g_object_get (preview, "busy", &busy, NULL);
    CHECKF (busy, "tta off: the network did not run again");
    wait_idle (preview, 60);
    CHECKF (catdog_preview_get_verdict (preview, &label, &p_again) && p_again == p,
            "tta off: verdict %g, first %g", p_again, p);
    printf ("preview: verdict %.4f, with test-time flip averaging %.4f\n", p, p_tta);
  }

  /* A conv layer: its mosaic, at once. */
  CHECK (catdog_preview_get_n_tiles (preview) == 0);
  switch_ms = select_layer (lv, 1);
  CHECKF (catdog_preview_get_n_tiles (preview) == 64, "conv2: %d tiles",
          catdog_preview_get_n_tiles (preview));
  printf ("preview: layer switch to conv2 (64 maps), mosaic built and "
          "drawn: %.1f ms (target 50 ms)\n", switch_ms);
  switch_ms = select_layer (lv, 0);
  CHECK (catdog_preview_get_n_tiles (preview) == 32);
  printf ("preview: layer switch to conv1 (32 maps of 150x150): %.1f ms\n",
          switch_ms);
  select_layer (lv, 2);
  CHECK (catdog_preview_get_n_tiles (preview) == 128);

  /* Top-K and colormap: redrawn, not run again. */
  g_signal_connect_swapped (preview, "notify::busy", G_CALLBACK (count_run),
                            &runs);
  g_object_set (panel, "top", 5, "colormap", "viridis", NULL);
  g_object_get (preview, "busy", &busy, NULL);
  CHECK (! busy);
  CHECKF (catdog_preview_get_n_tiles (preview) == 5, "top 5: %d tiles",
          catdog_preview_get_n_tiles (preview));
  printf ("preview: top 5 and viridis redrawn in %.1f ms, no run\n",
          catdog_preview_get_redraw_time (preview) / 1000.0);
  CHECKF (runs == 0, "top and colormap started %d runs", runs);

  /* Keyboard: focus tile moves, space marks. */
  gtk_widget_grab_focus (mosaic);
  pump_pending ();
  send_key (mosaic, GDK_KEY_Right);
  a = catdog_preview_get_focus_channel (preview);
  send_key (mosaic, GDK_KEY_space);
  send_key (mosaic, GDK_KEY_Right);
  send_key (mosaic, GDK_KEY_Right);
  b = catdog_preview_get_focus_channel (preview);
  send_key (mosaic, GDK_KEY_space);
  CHECKF (a >= 0 && b >= 0 && a != b, "focus channels %d, %d", a, b);
  text = g_strdup_printf ("conv3:%d,%d", a, b);
  CHECK_STRING (string_of (panel, "channels"), text);
  g_free (text);
  text = g_strdup_printf ("conv3 #%d, mean ", b);
  CHECKF (g_str_has_prefix (catdog_preview_get_channel_text (preview), text),
          "large channel: \"%s\"", catdog_preview_get_channel_text (preview));
  g_free (text);
  /* Space again unmarks; a mark again. */
  send_key (mosaic, GDK_KEY_space);
  text = g_strdup_printf ("conv3:%d", a);
  CHECK_STRING (string_of (panel, "channels"), text);
  g_free (text);
  send_key (mosaic, GDK_KEY_space);
  /* The pointer: over the third tile (b) it shows large; a click on the
   * fifth marks it, a click where a sixth would be marks nothing. */
  {
    gdouble x, y;

    tile_centre (mosaic, 5, 37, 37, 2, &x, &y);
    send_pointer (mosaic, GDK_MOTION_NOTIFY, x, y);
    text = g_strdup_printf ("conv3 #%d, mean ", b);
    CHECKF (g_str_has_prefix (catdog_preview_get_channel_text (preview), text),
            "pointing at tile 2: \"%s\"",
            catdog_preview_get_channel_text (preview));
    g_free (text);
    tile_centre (mosaic, 5, 37, 37, 4, &x, &y);
    CHECK (send_pointer (mosaic, GDK_BUTTON_PRESS, x, y));
    c = catdog_preview_get_focus_channel (preview);
    CHECKF (c >= 0 && c != a && c != b, "clicked channel %d", c);
    tile_centre (mosaic, 5, 37, 37, 5, &x, &y);
    CHECK (! send_pointer (mosaic, GDK_BUTTON_PRESS, x, y));
  }
  text = g_strdup_printf ("conv3:%d,%d,%d", a, b, c);
  CHECK_STRING (string_of (panel, "channels"), text);
  g_free (text);
  /* On another layer the marks add up, one entry per layer. */
  select_layer (lv, 1);
  gtk_widget_grab_focus (mosaic);
  send_key (mosaic, GDK_KEY_Home);
  send_key (mosaic, GDK_KEY_space);
  channels = string_of (panel, "channels");
  text = g_strdup_printf ("conv3:%d,%d,%d;conv2:%d", a, b, c,
                          catdog_preview_get_focus_channel (preview));
  CHECK_STRING (g_strdup (channels), text);
  g_free (text);
  g_free (channels);

  /* The heat map over the photo. */
  before = render (catdog_preview_get_photo (preview));
  gtk_toggle_button_set_active (catdog_preview_get_heat_toggle (preview),
                                TRUE);
  pump_pending ();
  after = render (catdog_preview_get_photo (preview));
  CHECK (! same_pixels (before, after));
  cairo_surface_destroy (before);
  /* At the heat map's conv layer: another run, another map. */
  g_object_set (panel, "heatmap-layer", "conv2", NULL);
  g_object_get (preview, "busy", &busy, NULL);
  CHECK (busy);
  wait_idle (preview, 60);
  before = render (catdog_preview_get_photo (preview));
  CHECK (! same_pixels (before, after));
  cairo_surface_destroy (before);
  cairo_surface_destroy (after);

  check_screenshot_to (window, argv[2]);

  /* Another model with the same layer names: runs again, marks kept. */
  {
    GFile *file = g_file_new_for_path (other);

    g_object_set (panel, "file", file, NULL);
    g_object_unref (file);
  }
  g_object_get (preview, "busy", &busy, NULL);
  CHECK (busy);
  wait_idle (preview, 60);
  CHECK (catdog_preview_get_verdict (preview, NULL, NULL));
  channels = string_of (panel, "channels");
  CHECKF (g_str_has_prefix (channels, "conv3:"), "marks after the model "
          "changed: \"%s\"", channels);
  g_free (channels);

  /* A model without those layers: the marks go. */
  {
    GFile *file = g_file_new_for_path (small);

    g_object_set (panel, "file", file, NULL);
    g_object_unref (file);
  }
  wait_idle (preview, 60);
  CHECK_STRING (string_of (panel, "channels"), "");

  /* A broken model: a message in the pane, the settings as they were. */
  {
    GFile *file = g_file_new_for_path (broken);
    gint   top = 0;

    g_object_set (panel, "file", file, NULL);
    g_object_unref (file);
    wait_idle (preview, 60);
    CHECKF (catdog_preview_get_error (preview) &&
            strstr (catdog_preview_get_error (preview), "broken.safetensors"),
            "error shown: %s", catdog_preview_get_error (preview));
    g_object_get (panel, "top", &top, NULL);
    CHECK (top == 5);
    CHECK_STRING (string_of (panel, "colormap"), "viridis");
  }

  /* Closing while a run is going: no crash. */
  {
    GFile *file = g_file_new_for_path (other);

    g_object_set (panel, "file", file, NULL);
    g_object_unref (file);
  }
  {
    gpointer alive = preview;
    gint64   end   = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

    g_object_add_weak_pointer (G_OBJECT (preview), &alive);
    gtk_widget_destroy (window);
    /* The run ends, its result is dropped, the preview goes. */
    while (alive && g_get_monotonic_time () < end)
      {
        g_main_context_iteration (NULL, FALSE);
        g_usleep (1000);
      }
    CHECK (alive == NULL);
  }

  g_remove (other);
  g_remove (small);
  g_remove (broken);
  g_rmdir (dir);
  g_free (other);
  g_free (small);
  g_free (broken);
  g_free (dir);
  return check_done ("test_preview");
}
