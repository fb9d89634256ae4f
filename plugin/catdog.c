/* catdog.c - the GIMP 3 plug-in: Filters > Classify > Cat or Dog...
 *
 * Registers plug-in-catdog-classify, reads what the user sees (input.c),
 * runs the CNN core, returns label and probabilities, and optionally adds
 * the feature maps (maps.c) and a Grad-CAM heat map (heatmap.c) as
 * layers.  In batch mode nothing but return values comes out;
 * interactively a dialog (ui/catdog-panel.c inside a GimpProcedureDialog)
 * asks for the arguments and then shows the result.
 * Also registers plug-in-catdog-install-weights (ui/catdog-models.c).
 * The top of the plug-in's call graph (catdog-plugin.h draws it). */
#include <libgimp/gimpui.h>

#include "catdog-plugin.h"
#include "catdog-models.h"
#include "catdog-panel.h"

#define PLUG_IN_BINARY "catdog"
#define PLUG_IN_ROLE   "gimp-catdog"

/* GEGL's tile cache in the plug-in process. */
#define CATDOG_TILE_CACHE_BYTES (32 << 20)

/* The model shipped with the plug-in, installed next to its binary. */
#define CATDOG_SHIPPED_MODEL "catdog.safetensors"

/* Where the plug-in's binary lives (argv[0] as GIMP starts it). */
static gchar *catdog_plug_in_dir = NULL;

#define CATDOG_TYPE_PLUG_IN (catdog_plug_in_get_type ())
G_DECLARE_FINAL_TYPE (CatdogPlugIn, catdog_plug_in, CATDOG, PLUG_IN, GimpPlugIn)

struct _CatdogPlugIn
{
  GimpPlugIn parent_instance;
};

G_DEFINE_TYPE (CatdogPlugIn, catdog_plug_in, GIMP_TYPE_PLUG_IN)

/* What to add besides the verdict: the procedure's arguments. */
typedef struct
{
  gboolean         feature_maps;
  gchar           *layers;
  CatdogMapsStyle  style;
  cnn_colormap     colormap;
  gint             top;
  gboolean         heatmap;
  gchar           *heatmap_layer;
  cnn_explain_method heatmap_method;
  GPtrArray       *picks;          /* "channels", parsed; may be empty */
  gboolean         tta;            /* test-time flip averaging */
} CatdogOptions;

typedef struct
{
  gchar   label[32];
  gdouble probability;      /* of label */
  gdouble dog_probability;
} CatdogResult;

gchar *
catdog_models_dir (void)
{
  return g_build_filename (gimp_directory (), "catdog", "models", NULL);
}

static gchar *
catdog_shipped_model_path (void)
{
  return g_build_filename (catdog_plug_in_dir, CATDOG_SHIPPED_MODEL, NULL);
}

/* The model the user made the default in the models folder if there is
 * one, else the shipped one (which may be missing: loading it then
 * reports the path). */
GFile *
catdog_default_model (void)
{
  gchar       *dir       = catdog_models_dir ();
  gchar       *shipped   = catdog_shipped_model_path ();
  const char  *fallback[] = { shipped };
  char        *path      = NULL;
  GFile       *file;

  /* cnn_default_model () fails only when out of memory. */
  cnn_default_model (NULL, dir, fallback, 1, &path);
  file = g_file_new_for_path (path ? path : shipped);
  free (path);
  g_free (shipped);
  g_free (dir);
  return file;
}

/* Probability of "dog" whichever order the model lists its labels in;
 * a model without a "dog" label reports its positive class. */
static gdouble
dog_probability (const cnn_model *model,
                 gdouble          p_positive)
{
  if (! strcmp (model->labels[0], "dog") && strcmp (model->labels[1], "dog"))
    return 1.0 - p_positive;
  return p_positive;
}

/* The layers the options ask for, made detached, then put into the
 * image together (one undo group): all or nothing. */
static gboolean
catdog_add_layers (GimpImage            *image,
                   GimpLayer            *above,
                   const cnn_model      *model,
                   cnn_net              *net,
                   const float          *input,
                   const CatdogPixels   *pixels,
                   const CatdogOptions  *options,
                   const CatdogResult   *result,
                   GError              **error)
{
  CatdogPending *pending = catdog_pending_new ();
  gboolean       ok      = TRUE;
  /* The slow heat maps get the larger share of the progress bar. */
  gdouble        maps_end = ! options->heatmap ? 1.0
                            : options->heatmap_method == CNN_EXPLAIN_GRADCAM ? 0.9
                            : 0.6;

  if (options->feature_maps || options->picks->len > 0)
    {
      gchar          *group_name;
      CatdogMapsSpec  spec;

      gimp_progress_set_text (_("Cat or Dog: adding feature maps"));
      group_name = g_strdup_printf (_("Feature maps - %s %.1f%%"),
                                    result->label,
                                    100.0 * result->probability);
      spec = (CatdogMapsSpec) { options->layers, options->style,
                                options->colormap, options->top, group_name,
                                0.5, maps_end,
                                options->picks };
      ok = catdog_pending_add_feature_maps (pending, image, net, &spec,
                                            error);
      g_free (group_name);
    }
  if (ok && options->heatmap)
    {
      GimpLayer     *heatmap;
      CatdogHeatmap  spec = { options->heatmap_method, options->heatmap_layer,
                              input,
                              options->feature_maps || options->picks->len > 0
                              ? maps_end : 0.5, 1.0 };

      gimp_progress_set_text (_("Cat or Dog: computing the heat map"));
      heatmap = catdog_heatmap_layer (image, model, net, &spec, pixels, error);
      if (heatmap)
        catdog_pending_add_layer (pending, heatmap);
      ok = (heatmap != NULL);
    }
  if (ok)
    ok = catdog_pending_insert (pending, image, above, error);
  catdog_pending_free (pending);
  return ok;
}

static gboolean
catdog_classify (GimpImage            *image,
                 GimpLayer            *above,
                 GFile                *model_file,
                 const CatdogOptions  *options,
                 CatdogResult         *result,
                 GError              **error)
{
  const gchar  *model_name = gimp_file_get_utf8_name (model_file);
  gchar        *path       = g_file_get_path (model_file);
  cnn_model    *model      = NULL;
  cnn_net      *net        = NULL;
  CatdogPixels  pixels     = { 0 };
  float        *input      = NULL;
  gsize         n_input;
  float         logit;
  cnn_status    st;
  gboolean      ok         = FALSE;
  gchar        *prefix;
  gdouble       p;

  if (! path)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The model \"%s\" is not a local file."), model_name);
      return FALSE;
    }

  prefix = g_strdup_printf (_("Cannot use the model \"%s\""), model_name);
  st = cnn_model_load (path, &model);
  if (st != CNN_OK)
    {
      catdog_set_core_error (error, st, prefix);
      goto out;
    }
  gimp_progress_update (0.05);

  if (! catdog_read_visible (image, model->in_w, model->in_h, &pixels, error))
    goto out;
  gimp_progress_set_text (_("Cat or Dog: running the network"));
  gimp_progress_update (0.25);

  if (! g_size_checked_mul (&n_input, (gsize) model->in_w * model->in_h,
                            (gsize) model->in_c * sizeof (float)) ||
      ! (input = g_try_malloc (n_input)))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for the network's input."));
      goto out;
    }
  /* With flip averaging the image and its mirror run as a batch of 2;
   * the maps and the heat map show image 0, the image as it is. */
  st = cnn_net_create (model, options->tta ? 2 : 1, &net);
  if (st == CNN_OK)
    st = cnn_net_set_threads (net, 0);
  if (st != CNN_OK)
    {
      catdog_set_core_error (error, st, prefix);
      goto out;
    }
  st = cnn_preprocess (model, pixels.pixels, pixels.width, pixels.height,
                       pixels.stride, pixels.channels, input);
  if (st == CNN_OK)
    st = options->tta ? cnn_net_forward_flip (net, input, 1, &logit)
                      : cnn_net_forward (net, input, 1, &logit);
  if (st != CNN_OK)
    {
      catdog_set_core_error (error, st, _("Cannot classify the image"));
      goto out;
    }

  p = cnn_model_probability (model, logit);
  g_strlcpy (result->label, model->labels[cnn_verdict (p)],
             sizeof result->label);
  result->probability     = cnn_verdict_confidence (p);
  result->dog_probability = dog_probability (model, p);
  gimp_progress_update (0.5);

  if (options->feature_maps || options->picks->len > 0 || options->heatmap)
    ok = catdog_add_layers (image, above, model, net, input, &pixels,
                            options, result, error);
  else
    ok = TRUE;
  gimp_progress_update (1.0);

out:
  g_free (input);
  catdog_pixels_clear (&pixels);
  cnn_net_free (net);
  cnn_model_free (model);
  g_free (prefix);
  g_free (path);
  return ok;
}

/* The preview's pixels: what a run reads (input.c), reduced for a network
 * input of CATDOG_PREVIEW_INPUT pixels a side, then by the preview to its
 * own size; or why there are none. */
#define CATDOG_PREVIEW_INPUT 256

static gboolean
catdog_dialog_preview (gpointer data)
{
  GtkWidget    *panel  = data;
  GimpImage    *image  = g_object_get_data (G_OBJECT (panel), "catdog-image");
  CatdogPixels  pixels = { 0 };
  GError       *error  = NULL;
  gint64        t0     = g_get_monotonic_time ();

  if (catdog_read_visible (image, CATDOG_PREVIEW_INPUT, CATDOG_PREVIEW_INPUT,
                           &pixels, &error))
    catdog_panel_set_pixels (CATDOG_PANEL (panel), pixels.pixels,
                             pixels.width, pixels.height, pixels.stride,
                             pixels.channels);
  else
    catdog_panel_set_preview_error (CATDOG_PANEL (panel), error->message);
  /* The GIMP part of the preview's time (G_MESSAGES_DEBUG=catdog). */
  g_debug ("preview: image read in %.0f ms",
           (g_get_monotonic_time () - t0) / 1e3);
  g_clear_error (&error);
  catdog_pixels_clear (&pixels);
  return G_SOURCE_REMOVE;
}

/* When the dialog is on screen, for the preview's timing
 * (G_MESSAGES_DEBUG=catdog; the verdict's line has the same clock). */
static gboolean
catdog_dialog_mapped (GtkWidget *dialog,
                      GdkEvent  *event,
                      gpointer   data)
{
  g_debug ("preview: dialog shown at %" G_GINT64_FORMAT " us",
           g_get_monotonic_time ());
  return FALSE;
}

/* OK makes no sense with feature maps wanted and no layer checked. */
static void
catdog_dialog_update_ok (GObject    *panel,
                         GParamSpec *pspec,
                         GtkDialog  *dialog)
{
  gboolean maps;
  gint     n_checked;

  g_object_get (panel, "feature-maps", &maps, "n-checked", &n_checked, NULL);
  gtk_dialog_set_response_sensitive (dialog, GTK_RESPONSE_OK,
                                     ! maps || n_checked > 0);
}

/* Shows the dialog; returns it when the user chose OK (the caller runs
 * the procedure, then catdog_dialog_finish()), NULL when cancelled. */
static GtkWidget *
catdog_dialog (GimpProcedure       *procedure,
               GimpProcedureConfig *config,
               GimpImage           *image)
{
  GtkWidget *dialog;
  GtkWidget *panel;
  GtkWidget *content;
  gchar     *models_dir = catdog_models_dir ();
  gchar     *shipped    = catdog_shipped_model_path ();
  const gchar *names[] = { "model", "layers", "feature-maps", "maps-style",
                           "colormap", "top", "heatmap", "heatmap-layer",
                           "channels", "tta",
                           "heatmap-method" };
  const gchar *props[] = { "file", "layers", "feature-maps", "maps-style",
                           "colormap", "top", "heatmap", "heatmap-layer",
                           "channels", "tta",
                           "heatmap-method" };
  GList     *bindings = NULL;
  gsize      i;

  gimp_ui_init (PLUG_IN_BINARY);
  dialog = gimp_procedure_dialog_new (procedure, config, _("Cat or Dog"));
  gtk_window_set_default_size (GTK_WINDOW (dialog), 720, -1);

  panel = catdog_panel_new (models_dir, shipped);
  gtk_container_set_border_width (GTK_CONTAINER (panel), 12);
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));
  gtk_box_pack_start (GTK_BOX (content), panel, TRUE, TRUE, 0);
  /* The panel edits the procedure's arguments: GimpProcedureConfig
   * remembers them across runs and GIMP sessions. */
  for (i = 0; i < G_N_ELEMENTS (names); i++)
    bindings = g_list_prepend (bindings,
      g_object_bind_property (config, names[i], panel, props[i],
                              G_BINDING_BIDIRECTIONAL | G_BINDING_SYNC_CREATE));
  g_object_set_data_full (G_OBJECT (dialog), "catdog-bindings", bindings,
                          (GDestroyNotify) g_list_free);
  g_signal_connect (panel, "notify::n-checked",
                    G_CALLBACK (catdog_dialog_update_ok), dialog);
  g_signal_connect (panel, "notify::feature-maps",
                    G_CALLBACK (catdog_dialog_update_ok), dialog);
  g_object_set_data (G_OBJECT (dialog), "catdog-panel", panel);
  g_signal_connect (dialog, "map-event",
                    G_CALLBACK (catdog_dialog_mapped), NULL);
  gtk_widget_show (panel);
  /* Once the dialog is on screen: reading the image takes a moment. */
  g_object_set_data_full (G_OBJECT (panel), "catdog-image",
                          g_object_ref (image), g_object_unref);
  g_idle_add_full (G_PRIORITY_LOW, catdog_dialog_preview,
                   g_object_ref (panel), g_object_unref);

  g_free (shipped);
  g_free (models_dir);
  if (! gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog)))
    {
      gtk_widget_destroy (dialog);
      return NULL;
    }
  /* Nothing to change while the network runs. */
  gtk_widget_set_sensitive (panel, FALSE);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (dialog), GTK_RESPONSE_OK,
                                     FALSE);
  while (gtk_events_pending ())
    gtk_main_iteration ();
  return dialog;
}

/* "Cat or Dog: dog (87.3% confidence)" (g_free). */
static gchar *
catdog_verdict (const CatdogResult *result)
{
  return g_strdup_printf (_("Cat or Dog: %s (%.1f%% confidence)"),
                          result->label, 100.0 * result->probability);
}

/* The verdict in the dialog, with a confidence bar, until it is closed;
 * the title says it too, where a glance at the window list finds it. */
static void
catdog_dialog_finish (GtkWidget          *dialog,
                      const CatdogResult *result)
{
  GtkWidget *panel = g_object_get_data (G_OBJECT (dialog), "catdog-panel");
  GList     *bindings = g_object_get_data (G_OBJECT (dialog),
                                          "catdog-bindings");
  gchar     *title = catdog_verdict (result);
  GtkWidget *close;
  GList     *children, *l;

  gtk_window_set_title (GTK_WINDOW (dialog), title);
  g_free (title);

  /* The values that ran are the ones GIMP remembers: changes made now
   * must not reach the config. */
  for (l = bindings; l; l = l->next)
    g_binding_unbind (l->data);
  gtk_widget_set_sensitive (panel, TRUE);
  catdog_panel_show_result (CATDOG_PANEL (panel), result->label,
                            result->probability);
  /* Only Close (and Help) remain: the run is done. */
  children = gtk_container_get_children (GTK_CONTAINER (gtk_widget_get_parent (
    gtk_dialog_get_widget_for_response (GTK_DIALOG (dialog),
                                        GTK_RESPONSE_OK))));
  for (l = children; l; l = l->next)
    {
      gint response = gtk_dialog_get_response_for_widget (GTK_DIALOG (dialog),
                                                          l->data);

      if (response != GTK_RESPONSE_HELP)
        gtk_widget_hide (l->data);
    }
  g_list_free (children);
  close = gtk_dialog_add_button (GTK_DIALOG (dialog), _("_Close"),
                                 GTK_RESPONSE_CLOSE);
  gtk_widget_grab_default (close);
  gtk_widget_grab_focus (close);
  gtk_dialog_run (GTK_DIALOG (dialog));
  gtk_widget_destroy (dialog);
}

/* The layer the maps go above: the selected one, else the top. */
static GimpLayer *
catdog_anchor_layer (GimpImage     *image,
                     GimpDrawable **drawables)
{
  GimpLayer **selected;
  GimpLayer  *layer = NULL;

  if (drawables && drawables[0] && GIMP_IS_LAYER (drawables[0]) &&
      ! GIMP_IS_LAYER_MASK (drawables[0]))
    return GIMP_LAYER (drawables[0]);

  selected = gimp_image_get_selected_layers (image);
  if (selected && selected[0])
    layer = selected[0];
  g_free (selected);
  return layer;
}

static GimpValueArray *
catdog_run (GimpProcedure        *procedure,
            GimpRunMode           run_mode,
            GimpImage            *image,
            GimpDrawable        **drawables,
            GimpProcedureConfig  *config,
            gpointer              run_data)
{
  GimpValueArray *values;
  CatdogResult    result       = { { 0 }, 0.0, 0.0 };
  CatdogOptions   options      = { 0 };
  GFile          *model_file   = NULL;
  GError         *error        = NULL;
  GtkWidget      *dialog       = NULL;
  gchar          *channels     = NULL;
  gboolean        ok;

  g_debug ("run started at %" G_GINT64_FORMAT " us", g_get_monotonic_time ());
  gegl_init (NULL, NULL);
  /* Channels are picked anew in the dialog: an earlier run's pick is not
   * shown there, so it must not come back unseen. */
  if (run_mode == GIMP_RUN_INTERACTIVE)
    g_object_set (config, "channels", NULL, NULL);
  /* Reading a huge image through its mipmaps streams every full-size tile
   * through the plug-in once; a small cache keeps only a few at a time. */
  g_object_set (gegl_config (), "tile-cache-size",
                (guint64) CATDOG_TILE_CACHE_BYTES, NULL);

  if (run_mode == GIMP_RUN_INTERACTIVE &&
      ! (dialog = catdog_dialog (procedure, config, image)))
    {
      gegl_exit ();
      return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                               NULL);
    }

  g_object_get (config,
                "model",         &model_file,
                "feature-maps",  &options.feature_maps,
                "layers",        &options.layers,
                "top",           &options.top,
                "heatmap",       &options.heatmap,
                "heatmap-layer", &options.heatmap_layer,
                "channels",      &channels,
                "tta",           &options.tta,
                NULL);
  options.style    = gimp_procedure_config_get_choice_id (config,
                                                          "maps-style");
  options.colormap = gimp_procedure_config_get_choice_id (config,
                                                          "colormap");
  options.heatmap_method = gimp_procedure_config_get_choice_id (
    config, "heatmap-method");
  if (! model_file)
    model_file = catdog_default_model ();

  options.picks = catdog_channels_parse (channels, &error);
  if (options.picks)
    {
      gimp_progress_init (_("Cat or Dog: reading the image"));
      ok = catdog_classify (image, catdog_anchor_layer (image, drawables),
                            model_file, &options, &result, &error);
      g_ptr_array_unref (options.picks);
    }
  else
    ok = FALSE;
  g_object_unref (model_file);
  g_free (options.layers);
  g_free (options.heatmap_layer);
  g_free (channels);
  /* Before returning: GEGL's tile cache still talks to GIMP when it shuts
   * down, which fails once GIMP has the return values and closes the
   * connection. */
  gegl_exit ();

  if (! ok)
    {
      if (dialog)
        gtk_widget_destroy (dialog);
      /* A "channels" value that is malformed or names what the model
       * lacks is the caller's mistake. */
      return gimp_procedure_new_return_values (
        procedure,
        error->domain == CATDOG_CHANNELS_ERROR ? GIMP_PDB_CALLING_ERROR
                                               : GIMP_PDB_EXECUTION_ERROR,
        error);
    }

  if (dialog)
    {
      gimp_displays_flush ();
      catdog_dialog_finish (dialog, &result);
    }
  else if (run_mode != GIMP_RUN_NONINTERACTIVE)
    {
      gchar *message = catdog_verdict (&result);

      gimp_message (message);
      g_free (message);
      gimp_displays_flush ();
    }

  values = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS,
                                             NULL);
  GIMP_VALUES_SET_STRING (values, 1, result.label);
  GIMP_VALUES_SET_DOUBLE (values, 2, result.probability);
  GIMP_VALUES_SET_DOUBLE (values, 3, result.dog_probability);
  return values;
}

/* plug-in-catdog-install-weights: the dialog's "Install weights..." for
 * scripts and batch mode. */
static GimpValueArray *
catdog_install_run (GimpProcedure        *procedure,
                    GimpProcedureConfig  *config,
                    gpointer              run_data)
{
  GimpValueArray *values;
  GFile          *file         = NULL;
  gboolean        overwrite    = FALSE;
  gboolean        make_default = FALSE;
  gchar          *source       = NULL;
  gchar          *dir          = catdog_models_dir ();
  gchar          *installed    = NULL;
  GError         *error        = NULL;

  g_object_get (config, "file", &file, "overwrite", &overwrite,
                "make-default", &make_default, NULL);
  source = file ? g_file_get_path (file) : NULL;
  if (! source)
    g_set_error (&error, CATDOG_ERROR, 0,
                 _("Give the model file to install (a local "
                   ".safetensors file)."));
  else
    installed = catdog_models_install (dir, source, overwrite, &error);
  if (installed && make_default &&
      ! catdog_models_set_default (dir, installed, &error))
    g_clear_pointer (&installed, g_free);
  g_clear_object (&file);
  g_free (source);
  g_free (dir);

  if (! installed)
    return gimp_procedure_new_return_values (procedure,
                                             GIMP_PDB_EXECUTION_ERROR, error);
  values = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS,
                                             NULL);
  GIMP_VALUES_TAKE_STRING (values, 1, installed);
  return values;
}

static GimpProcedure *
catdog_create_install_procedure (GimpPlugIn  *plug_in,
                                 const gchar *name)
{
  GimpProcedure *procedure;

  procedure = gimp_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                  catdog_install_run, NULL, NULL);
  gimp_procedure_set_documentation (
    procedure,
    _("Install a Cat or Dog model into the user's models folder"),
    _("Checks the model file as fully as loading it does, compares its "
      "SHA-256 with FILE.sha256 or the checksum in its metadata when there "
      "is one, and copies it into catdog/models/ in the GIMP profile "
      "through a temporary file, so GIMP never sees a partial model.  An "
      "installed model of the same name is only replaced with "
      "\"overwrite\"."),
    name);
  gimp_procedure_set_attribution (procedure, "gimp-catdog developers",
                                  "gimp-catdog developers", "2026");
  gimp_procedure_add_file_argument (procedure, "file", _("_Model file"),
                                    _("The .safetensors file to install"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY,
                                    FALSE, NULL, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "overwrite",
                                       _("_Replace"),
                                       _("Replace an installed model of the "
                                         "same name"),
                                       FALSE, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "make-default",
                                       _("Make it the _default"),
                                       _("Use it when no model is given"),
                                       FALSE, G_PARAM_READWRITE);
  gimp_procedure_add_string_return_value (procedure, "path",
                                          _("Installed path"),
                                          _("Where the model was installed"),
                                          NULL, G_PARAM_READWRITE);
  return procedure;
}

static GList *
catdog_query_procedures (GimpPlugIn *plug_in)
{
  return g_list_append (g_list_append (g_list_append (NULL, g_strdup (CATDOG_PROC)),
                                      g_strdup (CATDOG_INSTALL_PROC)),
                        g_strdup (CATDOG_FILTERS_PROC));
}

static GimpProcedure *
catdog_create_procedure (GimpPlugIn  *plug_in,
                         const gchar *name)
{
  GimpProcedure *procedure;

  if (! strcmp (name, CATDOG_INSTALL_PROC))
    return catdog_create_install_procedure (plug_in, name);
  if (! strcmp (name, CATDOG_FILTERS_PROC))
    return catdog_create_filters_procedure (plug_in, name);
  if (strcmp (name, CATDOG_PROC))
    return NULL;

  procedure = gimp_image_procedure_new (plug_in, name,
                                        GIMP_PDB_PROC_TYPE_PLUGIN,
                                        catdog_run, NULL, NULL);

  gimp_procedure_set_image_types (procedure, "RGB*, GRAY*, INDEXED*");
  gimp_procedure_set_sensitivity_mask (procedure,
                                       GIMP_PROCEDURE_SENSITIVE_DRAWABLE |
                                       GIMP_PROCEDURE_SENSITIVE_DRAWABLES |
                                       GIMP_PROCEDURE_SENSITIVE_NO_DRAWABLES);
  gimp_procedure_set_menu_label (procedure, _("Cat or _Dog..."));
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Classify");
  gimp_procedure_set_documentation (
    procedure,
    _("Tell whether the image shows a cat or a dog"),
    _("Classifies what is visible (the selection's bounding box when there "
      "is a selection) with a small convolutional network, and can add each "
      "conv layer's feature maps as layers and a Grad-CAM heat map of where "
      "the network looked."),
    name);
  gimp_procedure_set_attribution (procedure, "gimp-catdog developers",
                                  "gimp-catdog developers", "2026");

  /* Not ACTION_OPEN: GIMP would turn a missing file into a calling error
   * that does not name it; the plug-in reports it (see catdog_dialog). */
  gimp_procedure_add_file_argument (procedure, "model",
                                    _("Mo_del"),
                                    _("Model file (.safetensors); unset: the "
                                      "installed default model"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY,
                                    TRUE, NULL, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "feature-maps",
                                       _("Add _feature maps as layers"),
                                       _("Add each conv layer's feature maps "
                                         "as layers above the active layer"),
                                       FALSE, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "layers",
                                      _("Conv la_yers"),
                                      _("Comma-separated conv layer names "
                                        "(e.g. \"conv1,conv3\"), or \"all\""),
                                      "all", G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "maps-style",
                                      _("Maps s_tyle"),
                                      _("mosaic: one layer per conv layer with "
                                        "all its channels tiled; channels: one "
                                        "layer per channel in a group per conv "
                                        "layer"),
                                      gimp_choice_new_with_values (
                                        "mosaic", CATDOG_MAPS_MOSAIC,
                                        _("One mosaic per conv layer"), NULL,
                                        "channels", CATDOG_MAPS_CHANNELS,
                                        _("One layer per channel"), NULL,
                                        NULL),
                                      "mosaic", G_PARAM_READWRITE);
  gimp_procedure_add_choice_argument (procedure, "colormap",
                                      _("Color_map"),
                                      _("Colours of the feature maps"),
                                      gimp_choice_new_with_values (
                                        "gray", CNN_COLORMAP_GRAY,
                                        _("Gray"), NULL,
                                        "viridis", CNN_COLORMAP_VIRIDIS,
                                        _("Viridis"), NULL,
                                        NULL),
                                      "gray", G_PARAM_READWRITE);
  /* Appended after the first arguments, so calls that give them by
   * position keep working. */
  gimp_procedure_add_boolean_argument (procedure, "heatmap",
                                       _("Heat map (_Grad-CAM)"),
                                       _("Add a layer showing where the "
                                         "network looked (Grad-CAM on the "
                                         "logit)"),
                                       FALSE, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "heatmap-layer",
                                      _("Heat-map conv lay_er"),
                                      _("The conv layer the heat map looks "
                                        "at; unset or empty: the last one"),
                                      NULL, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "top",
                                   _("To_p channels"),
                                   _("Show only each conv layer's N most "
                                     "active channels (highest mean "
                                     "activation), most active first; 0: "
                                     "all"),
                                   0, CNN_MAX_CHANNELS, 0, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "channels",
                                      _("Pic_ked channels"),
                                      _("Add exactly these channels as "
                                        "layers, one group per conv layer: "
                                        "LAYER:I,J;LAYER:K (e.g. "
                                        "\"conv3:5,17;conv4:2\", channels "
                                        "from 0); unset or empty: none"),
                                      NULL, G_PARAM_READWRITE);
  gimp_procedure_add_boolean_argument (procedure, "tta",
                                       _("Test-time flip averaging (_with "
                                         "the mirror image)"),
                                       _("Classify the image and its mirror "
                                         "image and average the two logits "
                                         "(about twice the time); the "
                                         "feature maps and the heat map "
                                         "show the image as it is"),
                                       FALSE, G_PARAM_READWRITE);
  /* After every earlier argument: calls that give those by position
   * keep working, and calls without it get Grad-CAM as before. */
  gimp_procedure_add_choice_argument (procedure, "heatmap-method",
                                      _("Heat-map met_hod"),
                                      _("How the heat map is made: gradcam "
                                        "(where the last conv layer's maps "
                                        "raise the verdict), occlusion (how "
                                        "much hiding each place lowers it; "
                                        "a few seconds) or "
                                        "integrated-gradients (each pixel's "
                                        "share of the verdict from a black "
                                        "picture; a few seconds)"),
                                      gimp_choice_new_with_values (
                                        "gradcam", CNN_EXPLAIN_GRADCAM,
                                        _("Grad-CAM"), NULL,
                                        "occlusion", CNN_EXPLAIN_OCCLUSION,
                                        _("Occlusion"), NULL,
                                        "integrated-gradients",
                                        CNN_EXPLAIN_INTEGRATED_GRADIENTS,
                                        _("Integrated gradients"), NULL,
                                        NULL),
                                      "gradcam", G_PARAM_READWRITE);

  gimp_procedure_add_string_return_value (procedure, "label",
                                          _("Label"),
                                          _("The predicted label: cat or dog"),
                                          NULL, G_PARAM_READWRITE);
  gimp_procedure_add_double_return_value (procedure, "probability",
                                          _("Probability"),
                                          _("The predicted label's "
                                            "probability"),
                                          0.0, 1.0, 0.5, G_PARAM_READWRITE);
  gimp_procedure_add_double_return_value (procedure, "dog-probability",
                                          _("Dog probability"),
                                          _("The probability of dog"),
                                          0.0, 1.0, 0.5, G_PARAM_READWRITE);
  return procedure;
}

/* Translations live in locale/ next to the plug-in's binary. */
static gboolean
catdog_set_i18n (GimpPlugIn   *plug_in,
                 const gchar  *procedure_name,
                 gchar       **gettext_domain,
                 gchar       **catalog_dir)
{
  *gettext_domain = g_strdup (GETTEXT_PACKAGE);
  *catalog_dir    = g_strdup ("locale");
  return TRUE;
}

static void
catdog_plug_in_class_init (CatdogPlugInClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = catdog_query_procedures;
  plug_in_class->create_procedure = catdog_create_procedure;
  plug_in_class->set_i18n         = catdog_set_i18n;
}

static void
catdog_plug_in_init (CatdogPlugIn *plug_in)
{
}

/* GIMP_MAIN, plus remembering the plug-in's folder for its model. */
int
main (int   argc,
      char *argv[])
{
  gchar *exe = g_canonicalize_filename (argc > 0 ? argv[0] : ".", NULL);

  catdog_plug_in_dir = g_path_get_dirname (exe);
  g_free (exe);
  return gimp_main (CATDOG_TYPE_PLUG_IN, argc, argv);
}
