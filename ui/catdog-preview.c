/* catdog-preview.c - the dialog's live preview (catdog-preview.h): the
 * object, the run in a worker thread and the verdict.  The mosaic, the
 * large channel and the heat map are drawn by catdog-preview-draw.c
 * (catdog-preview-private.h). */
#include "catdog-preview-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

enum
{
  PROP_0,
  PROP_CHANNELS,
  PROP_BUSY,
  N_PROPS
};

static GParamSpec *props[N_PROPS];

G_DEFINE_TYPE (CatdogPreview, catdog_preview, GTK_TYPE_BOX)

/* What one run gets: a model file and the preview's pixels. */
typedef struct
{
  GBytes *pixels;     /* RGB, width * 3 bytes a row */
  gint    width;
  gint    height;
  gboolean tta;       /* test-time flip averaging */
  gchar  *heat_layer; /* in path's buffer, after it; "": the last one */
  gchar   path[];
} Job;

static void
job_free (gpointer data)
{
  g_bytes_unref (((Job *) data)->pixels);
  g_free (data);
}

void
catdog_preview_run_free (CatdogPreviewRun *run)
{
  if (run != NULL)
    {
      cnn_net_free (run->net);
      cnn_model_free (run->model);
      g_free (run->cam);
    }
  g_free (run);
}

gboolean
catdog_preview_take_string (gchar       **field,
                            const gchar  *value)
{
  if (! g_strcmp0 (*field, value))
    return FALSE;
  g_free (*field);
  *field = g_strdup (value);
  return TRUE;
}

/* The worker thread: load, classify, Grad-CAM at the last conv layer.
 * Touches nothing but the job and the new run. */
static void
run_thread (GTask        *task,
            gpointer      source,
            gpointer      data,
            GCancellable *cancellable)
{
  Job              *job   = data;
  CatdogPreviewRun *run   = g_new0 (CatdogPreviewRun, 1);
  gchar            *name  = g_filename_display_basename (job->path);
  gchar            *prefix = g_strdup_printf (_("Cannot use the model \"%s\""),
                                              name);
  float            *input = NULL;
  float             logit;
  cnn_status        st;
  gdouble           p;

  st = cnn_model_load (job->path, &run->model);
  if (st == CNN_OK)
    st = cnn_net_create (run->model, job->tta ? 2 : 1, &run->net);
  if (st == CNN_OK)
    st = cnn_net_set_threads (run->net, 0);
  if (st == CNN_OK &&
      ! (input = g_try_new (float, (gsize) run->model->in_w *
                                   run->model->in_h * run->model->in_c)))
    st = CNN_ERR_NOMEM;
  if (st == CNN_OK)
    {
      g_free (prefix);
      prefix = g_strdup (_("Cannot classify the image"));
      st = cnn_preprocess (run->model,
                           g_bytes_get_data (job->pixels, NULL),
                           job->width, job->height, (size_t) job->width * 3,
                           3, input);
    }
  /* Flip averaging: image 0 of the batch is the image as it is, which
   * the mosaic and the heat map below show. */
  if (st == CNN_OK)
    st = job->tta ? cnn_net_forward_flip (run->net, input, 1, &logit)
                  : cnn_net_forward (run->net, input, 1, &logit);
  g_free (input);
  if (st != CNN_OK)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s",
                               prefix, *cnn_last_error ()
                                       ? cnn_last_error ()
                                       : cnn_status_name (st));
      catdog_preview_run_free (run);
      g_free (prefix);
      g_free (name);
      return;
    }

  p = cnn_model_probability (run->model, logit);
  g_strlcpy (run->label, run->model->labels[cnn_verdict (p)],
             sizeof run->label);
  run->probability = cnn_verdict_confidence (p);

  /* The heat map is a bonus: without it the verdict still shows. */
  /* At the heat map's conv layer (the panel's choice), else the last. */
  {
    gint             tap = -1;
    cnn_tensor_view  view;
    const cnn_layer *layer;

    if (! *job->heat_layer ||
        cnn_model_find_conv (run->model, job->heat_layer, NULL, &tap) != CNN_OK)
      cnn_model_find_conv (run->model, NULL, NULL, &tap);
    if (tap >= 0 && cnn_net_tap (run->net, tap, &view, &layer) == CNN_OK)
      {
        run->cam   = g_new (float, (gsize) view.w * view.h);
        run->cam_w = view.w;
        run->cam_h = view.h;
        if (cnn_net_gradcam (run->net, 0, tap, run->cam,
                             (size_t) view.w * view.h, NULL) != CNN_OK)
          g_clear_pointer (&run->cam, g_free);
      }
  }
  g_free (prefix);
  g_free (name);
  g_task_return_pointer (task, run, (GDestroyNotify) catdog_preview_run_free);
}

static void
set_busy (CatdogPreview *preview,
          gboolean       busy)
{
  if (preview->busy == busy)
    return;
  preview->busy = busy;
  if (busy)
    gtk_spinner_start (GTK_SPINNER (preview->spinner));
  else
    gtk_spinner_stop (GTK_SPINNER (preview->spinner));
  gtk_widget_set_visible (preview->spinner, busy);
  g_object_notify_by_pspec (G_OBJECT (preview), props[PROP_BUSY]);
}

/* The status line: markup, or a plain message in the error style. */
static void
show_status (CatdogPreview *preview,
             const gchar   *text,
             gboolean       failure)
{
  GtkStyleContext *style = gtk_widget_get_style_context (preview->status);

  gtk_label_set_text (GTK_LABEL (preview->status), text);
  if (failure)
    gtk_style_context_add_class (style, GTK_STYLE_CLASS_ERROR);
  else
    gtk_style_context_remove_class (style, GTK_STYLE_CLASS_ERROR);
}

void
catdog_preview_set_error (CatdogPreview *preview,
                          const gchar   *message)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  g_free (preview->error);
  preview->error = g_strdup (message);
  show_status (preview, message, TRUE);
}

static void
run_done (GObject      *source,
          GAsyncResult *result,
          gpointer      data)
{
  CatdogPreview    *preview = CATDOG_PREVIEW (source);
  GTask            *task    = G_TASK (result);
  guint             generation = GPOINTER_TO_UINT (data);
  GError           *error   = NULL;
  CatdogPreviewRun *run     = g_task_propagate_pointer (task, &error);
  gchar            *text;

  /* A newer run was started, or the pane is going away. */
  if (generation != preview->generation || preview->disposed)
    {
      catdog_preview_run_free (run);
      g_clear_error (&error);
      return;
    }
  set_busy (preview, FALSE);
  /* Nothing of the previous run stays on show; the marks stay. */
  catdog_preview_run_free (preview->run);
  preview->run = run;
  g_clear_object (&preview->heat_pixbuf);
  if (! run)
    {
      catdog_preview_set_error (preview, error->message);
      g_error_free (error);
      catdog_preview_redraw (preview);
      return;
    }
  preview->verdict_us = g_get_monotonic_time () - preview->started_us;
  /* For the GUI test and timings: G_MESSAGES_DEBUG=catdog prints it. */
  g_debug ("preview: verdict %s %.4f, %.0f ms after the pixels or the "
           "model, at %" G_GINT64_FORMAT " us", run->label, run->probability,
           preview->verdict_us / 1e3, g_get_monotonic_time ());
  /* TRANSLATORS: the preview's verdict: "dog, 87.3% confidence" */
  text = g_strdup_printf (_("%s, %.1f%% confidence"), run->label,
                          100.0 * run->probability);
  show_status (preview, text, FALSE);
  g_free (text);
  catdog_preview_keep_marks (preview);
  catdog_preview_redraw (preview);
}

/* Runs the network on the pixels with the model, unless one is missing. */
static void
start_run (CatdogPreview *preview,
           gint64         t0)
{
  GTask *task;
  Job   *job;

  preview->generation++;
  if (! preview->pixels || ! preview->model_path)
    {
      set_busy (preview, FALSE);
      if (! preview->model_path && ! preview->error)
        catdog_preview_set_error (preview, _("No model to preview with."));
      return;
    }
  g_clear_pointer (&preview->error, g_free);
  job = g_malloc0 (sizeof *job + strlen (preview->model_path) + 1 +
                   strlen (preview->heat_layer ? preview->heat_layer : "") + 1);
  strcpy (job->path, preview->model_path);
  job->heat_layer = job->path + strlen (job->path) + 1;
  strcpy (job->heat_layer, preview->heat_layer ? preview->heat_layer : "");
  job->pixels = g_bytes_ref (preview->pixels);
  job->width  = preview->width;
  job->height = preview->height;
  job->tta    = preview->tta;
  preview->started_us = t0;
  set_busy (preview, TRUE);
  show_status (preview, _("Running the network..."), FALSE);
  task = g_task_new (preview, NULL, run_done,
                     GUINT_TO_POINTER (preview->generation));
  g_task_set_task_data (task, job, job_free);
  g_task_run_in_thread (task, run_thread);
  g_object_unref (task);
}

void
catdog_preview_set_pixels (CatdogPreview *preview,
                           const guint8  *pixels,
                           gint           width,
                           gint           height,
                           gsize          stride,
                           gint           channels)
{
  gint64     t0 = g_get_monotonic_time ();
  GdkPixbuf *source, *scaled, *rgb;
  gint       w, h;
  guint8    *copy;

  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  g_return_if_fail (pixels && width > 0 && height > 0);
  g_return_if_fail (channels == 3 || channels == 4);

  /* One scale for both sides, the longer one at most MAX_SIDE. */
  if (width >= height)
    {
      w = MIN (width, CATDOG_PREVIEW_MAX_SIDE);
      h = MAX (1, (gint) ((gint64) height * w / width));
    }
  else
    {
      h = MIN (height, CATDOG_PREVIEW_MAX_SIDE);
      w = MAX (1, (gint) ((gint64) width * h / height));
    }
  source = gdk_pixbuf_new_from_data (pixels, GDK_COLORSPACE_RGB,
                                     channels == 4, 8, width, height,
                                     (gint) stride, NULL, NULL);
  scaled = (w == width && h == height)
           ? g_object_ref (source)
           : gdk_pixbuf_scale_simple (source, w, h, GDK_INTERP_BILINEAR);
  g_object_unref (source);
  if (! scaled)
    {
      catdog_preview_set_error (preview,
                                _("Not enough memory for the network's "
                                  "input."));
      return;
    }
  /* Packed RGB: what the network and the photo view take.  Transparent
   * parts over white, as the plug-in's reading of the image does. */
  rgb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, w, h);
  if (channels == 4)
    {
      gdk_pixbuf_fill (rgb, 0xffffffff);
      gdk_pixbuf_composite (scaled, rgb, 0, 0, w, h, 0, 0, 1, 1,
                            GDK_INTERP_NEAREST, 255);
    }
  else
    gdk_pixbuf_copy_area (scaled, 0, 0, w, h, rgb, 0, 0);
  g_object_unref (scaled);
  copy = g_malloc ((gsize) w * h * 3);
  for (gint y = 0; y < h; y++)
    memcpy (copy + (gsize) y * w * 3,
            gdk_pixbuf_get_pixels (rgb) +
              (gsize) y * gdk_pixbuf_get_rowstride (rgb),
            (gsize) w * 3);
  g_object_unref (rgb);

  g_clear_pointer (&preview->pixels, g_bytes_unref);
  preview->pixels = g_bytes_new_take (copy, (gsize) w * h * 3);
  preview->width  = w;
  preview->height = h;
  catdog_preview_photo_changed (preview);
  start_run (preview, t0);
}

void
catdog_preview_set_model (CatdogPreview *preview,
                          const gchar   *path)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  if (catdog_preview_take_string (&preview->model_path, path))
    start_run (preview, g_get_monotonic_time ());
}

gboolean
catdog_preview_get_verdict (CatdogPreview  *preview,
                            const gchar   **label,
                            gdouble        *probability)
{
  g_return_val_if_fail (CATDOG_IS_PREVIEW (preview), FALSE);
  if (! preview->run || preview->busy)
    return FALSE;
  if (label)
    *label = preview->run->label;
  if (probability)
    *probability = preview->run->probability;
  return TRUE;
}

const gchar *
catdog_preview_get_error (CatdogPreview *preview)
{
  g_return_val_if_fail (CATDOG_IS_PREVIEW (preview), NULL);
  return preview->error;
}

gint64
catdog_preview_get_verdict_time (CatdogPreview *preview)
{
  return preview->verdict_us;
}

void
catdog_preview_get_size (CatdogPreview *preview,
                         gint          *width,
                         gint          *height)
{
  *width  = preview->pixels ? preview->width : 0;
  *height = preview->pixels ? preview->height : 0;
}

GtkWidget *
catdog_preview_get_mosaic (CatdogPreview *preview)
{
  return preview->mosaic;
}

GtkWidget *
catdog_preview_get_photo (CatdogPreview *preview)
{
  return preview->photo;
}

GtkToggleButton *
catdog_preview_get_heat_toggle (CatdogPreview *preview)
{
  return GTK_TOGGLE_BUTTON (preview->heat_check);
}

const gchar *
catdog_preview_get_channel_text (CatdogPreview *preview)
{
  return gtk_label_get_text (GTK_LABEL (preview->channel_label));
}

void
catdog_preview_notify_channels (CatdogPreview *preview)
{
  g_object_notify_by_pspec (G_OBJECT (preview), props[PROP_CHANNELS]);
}

/* ------------------------------------------------------------------ */
/* GObject                                                             */
/* ------------------------------------------------------------------ */

static void
catdog_preview_get_property (GObject    *object,
                             guint       prop_id,
                             GValue     *value,
                             GParamSpec *pspec)
{
  CatdogPreview *preview = CATDOG_PREVIEW (object);

  switch (prop_id)
    {
    case PROP_CHANNELS:
      g_value_take_string (value, catdog_channels_format (preview->marks));
      break;
    case PROP_BUSY:
      g_value_set_boolean (value, preview->busy);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

void
catdog_preview_set_colormap (CatdogPreview *preview,
                             const gchar   *colormap)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  preview->colormap = ! g_strcmp0 (colormap, "viridis")
                      ? CNN_COLORMAP_VIRIDIS : CNN_COLORMAP_GRAY;
  catdog_preview_redraw (preview);
}

void
catdog_preview_set_heat_layer (CatdogPreview *preview,
                               const gchar   *layer)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  if (catdog_preview_take_string (&preview->heat_layer,
                                  layer && *layer ? layer : NULL))
    start_run (preview, g_get_monotonic_time ());
}

void
catdog_preview_set_tta (CatdogPreview *preview,
                        gboolean       tta)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  if (preview->tta == ! ! tta)
    return;
  preview->tta = ! ! tta;
  start_run (preview, g_get_monotonic_time ());
}

void
catdog_preview_set_top (CatdogPreview *preview,
                        gint           top)
{
  g_return_if_fail (CATDOG_IS_PREVIEW (preview));
  preview->top = MAX (top, 0);
  catdog_preview_redraw (preview);
}

/* A run still going ends in run_done(), which then drops it: the task
 * holds a reference to the preview until then. */
static void
destroyed (CatdogPreview *preview)
{
  preview->disposed = TRUE;
}

static void
catdog_preview_finalize (GObject *object)
{
  CatdogPreview *preview = CATDOG_PREVIEW (object);

  catdog_preview_run_free (preview->run);
  catdog_preview_clear_pictures (preview);
  g_clear_pointer (&preview->pixels, g_bytes_unref);
  g_clear_pointer (&preview->marks, g_ptr_array_unref);
  g_free (preview->model_path);
  g_free (preview->layer);
  g_free (preview->heat_layer);
  g_free (preview->error);
  G_OBJECT_CLASS (catdog_preview_parent_class)->finalize (object);
}

static void
catdog_preview_class_init (CatdogPreviewClass *klass)
{
  G_OBJECT_CLASS (klass)->get_property = catdog_preview_get_property;
  G_OBJECT_CLASS (klass)->finalize     = catdog_preview_finalize;

  props[PROP_CHANNELS] =
    g_param_spec_string ("channels", NULL, NULL, "",
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  props[PROP_BUSY] =
    g_param_spec_boolean ("busy", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (G_OBJECT_CLASS (klass), N_PROPS, props);
}

static void
catdog_preview_init (CatdogPreview *preview)
{
  GtkWidget *row;

  preview->marks = g_ptr_array_new_with_free_func (
                     (GDestroyNotify) catdog_channel_pick_free);
  preview->focus = -1;
  preview->hover = -1;
  g_signal_connect (preview, "destroy", G_CALLBACK (destroyed), NULL);
  gtk_orientable_set_orientation (GTK_ORIENTABLE (preview),
                                  GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (GTK_BOX (preview), 6);

  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  preview->spinner = gtk_spinner_new ();
  preview->status  = gtk_label_new (_("No image to preview yet."));
  gtk_label_set_xalign (GTK_LABEL (preview->status), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (preview->status), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (preview->status), 50);
  gtk_box_pack_start (GTK_BOX (row), preview->spinner, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), preview->status, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (preview), row, FALSE, FALSE, 0);

  catdog_preview_build_views (preview);
  gtk_widget_show_all (GTK_WIDGET (preview));
  gtk_widget_set_no_show_all (preview->spinner, TRUE);
  gtk_widget_hide (preview->spinner);
}

GtkWidget *
catdog_preview_new (void)
{
  return g_object_new (CATDOG_TYPE_PREVIEW, NULL);
}
