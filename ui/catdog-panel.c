/* catdog-panel.c - the dialog's contents (see catdog-panel.h). */
#include "catdog-panel.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "catdog-models.h"

struct _CatdogPanel
{
  GtkBox        parent_instance;

  gchar        *models_dir;
  gchar        *shipped_model;
  GFile        *file;
  gchar        *layers;
  gboolean      feature_maps;
  gchar        *maps_style;
  gchar        *colormap;
  gint          top;
  gboolean      heatmap;
  gchar        *heatmap_layer;

  GHashTable   *infos;         /* path -> CatdogModelInfo, NULL if unusable */
  GtkListStore *models;
  GtkListStore *conv;
  GtkWidget    *model_view;
  GtkWidget    *model_error;
  GtkWidget    *default_button;
  GtkWidget    *maps_check;
  GtkWidget    *style_combo;
  GtkWidget    *colormap_combo;
  GtkWidget    *top_spin;
  GtkWidget    *top_label;
  GtkWidget    *heatmap_check;
  GtkWidget    *heatmap_combo;
  GtkWidget    *heatmap_label;
  GtkWidget    *layer_box;
  GtkWidget    *layer_view;
  GtkWidget    *all_button;
  GtkWidget    *none_button;
  GtkWidget    *result_box;
  GtkWidget    *result_label;
  GtkWidget    *result_bar;
  gboolean      syncing;       /* updating widgets from properties */
};

enum
{
  PROP_0,
  PROP_MODELS_DIR,
  PROP_SHIPPED_MODEL,
  PROP_FILE,
  PROP_LAYERS,
  PROP_FEATURE_MAPS,
  PROP_MAPS_STYLE,
  PROP_COLORMAP,
  PROP_TOP,
  PROP_HEATMAP,
  PROP_HEATMAP_LAYER,
  PROP_N_CHECKED,
  N_PROPS
};

static GParamSpec *props[N_PROPS];

G_DEFINE_TYPE (CatdogPanel, catdog_panel, GTK_TYPE_BOX)

static void update_layers      (CatdogPanel *panel);
static void select_current     (CatdogPanel *panel);
static void sync_heatmap_combo (CatdogPanel *panel);

static gchar *
default_model_path (CatdogPanel *panel)
{
  const char *fallback[] = { panel->shipped_model };
  char       *path       = NULL;
  gchar      *copy;

  /* The dialog follows the plug-in's rule (cnn_default_model ()). */
  cnn_default_model (NULL, panel->models_dir, fallback,
                     panel->shipped_model ? 1 : 0, &path);
  copy = g_strdup (path);
  free (path);
  return copy;
}

gchar *
catdog_panel_get_model_path (CatdogPanel *panel)
{
  g_return_val_if_fail (CATDOG_IS_PANEL (panel), NULL);
  return panel->file ? g_file_get_path (panel->file)
                     : default_model_path (panel);
}

/* ------------------------------------------------------------------ */
/* The model list                                                      */
/* ------------------------------------------------------------------ */

static void
add_model_row (CatdogPanel *panel,
               const gchar *path,
               const gchar *default_path)
{
  CatdogModelInfo *info  = NULL;
  GError          *error = NULL;
  gboolean         is_default = default_path && ! strcmp (path, default_path);
  gchar           *name, *input = NULL, *size = NULL, *accuracy = NULL;
  gchar           *tooltip;
  GtkTreeIter      iter;

  if (! g_hash_table_lookup_extended (panel->infos, path, NULL,
                                      (gpointer *) &info))
    {
      info = catdog_model_info_load (path, &error);
      g_hash_table_insert (panel->infos, g_strdup (path), info);
    }
  if (info)
    {
      name  = g_strdup (info->name);
      /* TRANSLATORS: input size of a model: "150x150 RGB" or "64x64 gray" */
      input = g_strdup_printf (info->in_c == 1 ? _("%dx%d gray")
                                               : _("%dx%d RGB"),
                               info->in_w, info->in_h);
      size  = g_format_size (info->file_size);
      accuracy = info->accuracy >= 0
                 ? g_strdup_printf ("%.1f%%", 100.0 * info->accuracy)
                 : g_strdup ("");
    }
  else
    {
      name = g_path_get_basename (path);
    }
  if (is_default)
    {
      /* TRANSLATORS: a model's name in the list, marked as the default */
      gchar *marked = g_strdup_printf (_("%s (default)"), name);

      g_free (name);
      name = marked;
    }
  /* The architecture column may be cut short: the tooltip has it whole. */
  tooltip = g_markup_printf_escaped ("%s\n<small>%s</small>",
                                     info ? info->summary
                                          : _("unusable (select it for "
                                              "details)"),
                                     path);
  gtk_list_store_append (panel->models, &iter);
  gtk_list_store_set (panel->models, &iter,
                      CATDOG_MODEL_COL_PATH, path,
                      CATDOG_MODEL_COL_NAME, name,
                      CATDOG_MODEL_COL_SUMMARY,
                      info ? info->summary : _("unusable (select it for details)"),
                      CATDOG_MODEL_COL_INPUT, input ? input : "",
                      CATDOG_MODEL_COL_SIZE, size ? size : "",
                      CATDOG_MODEL_COL_ACCURACY, accuracy ? accuracy : "",
                      CATDOG_MODEL_COL_WEIGHT,
                      is_default ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL,
                      CATDOG_MODEL_COL_TOOLTIP, tooltip,
                      -1);
  g_free (tooltip);
  g_clear_error (&error);
  g_free (name);
  g_free (input);
  g_free (size);
  g_free (accuracy);
}

static gboolean
find_model_row (CatdogPanel *panel,
                const gchar *path,
                GtkTreeIter *iter)
{
  GtkTreeModel *model = GTK_TREE_MODEL (panel->models);
  gboolean      valid;

  for (valid = gtk_tree_model_get_iter_first (model, iter); valid;
       valid = gtk_tree_model_iter_next (model, iter))
    {
      gchar   *row;
      gboolean same;

      gtk_tree_model_get (model, iter, CATDOG_MODEL_COL_PATH, &row, -1);
      same = ! g_strcmp0 (row, path);
      g_free (row);
      if (same)
        return TRUE;
    }
  return FALSE;
}

/* Installed models, then the shipped one, then the chosen file if it is
 * neither (a file picked with "Browse..."). */
void
catdog_panel_refresh (CatdogPanel *panel)
{
  gchar      **installed;
  gchar       *default_path;
  gchar       *chosen = panel->file ? g_file_get_path (panel->file) : NULL;
  GtkTreeIter  iter;
  gint         i;

  g_return_if_fail (CATDOG_IS_PANEL (panel));

  installed    = catdog_models_list (panel->models_dir);
  default_path = default_model_path (panel);
  /* Files may have changed on disk: read them again. */
  g_hash_table_remove_all (panel->infos);

  panel->syncing = TRUE;
  gtk_list_store_clear (panel->models);
  for (i = 0; installed[i]; i++)
    add_model_row (panel, installed[i], default_path);
  if (panel->shipped_model &&
      g_file_test (panel->shipped_model, G_FILE_TEST_EXISTS) &&
      ! find_model_row (panel, panel->shipped_model, &iter))
    add_model_row (panel, panel->shipped_model, default_path);
  if (chosen && ! find_model_row (panel, chosen, &iter))
    add_model_row (panel, chosen, default_path);
  panel->syncing = FALSE;

  select_current (panel);
  g_free (chosen);
  g_free (default_path);
  g_strfreev (installed);
}

/* Selects the row of the model in use and shows its layers. */
static void
select_current (CatdogPanel *panel)
{
  GtkTreeSelection *sel;
  gchar            *path = catdog_panel_get_model_path (panel);
  GtkTreeIter       iter;

  sel = gtk_tree_view_get_selection (GTK_TREE_VIEW (panel->model_view));
  panel->syncing = TRUE;
  if (path && find_model_row (panel, path, &iter))
    {
      GtkTreePath *tp = gtk_tree_model_get_path (GTK_TREE_MODEL (panel->models),
                                                 &iter);

      gtk_tree_selection_select_iter (sel, &iter);
      gtk_tree_view_scroll_to_cell (GTK_TREE_VIEW (panel->model_view), tp,
                                    NULL, FALSE, 0, 0);
      gtk_tree_path_free (tp);
    }
  else
    {
      gtk_tree_selection_unselect_all (sel);
    }
  panel->syncing = FALSE;
  g_free (path);
  update_layers (panel);
}

static void
set_file (CatdogPanel *panel,
          GFile       *file)
{
  if (file == panel->file ||
      (file && panel->file && g_file_equal (file, panel->file)))
    return;
  g_clear_object (&panel->file);
  panel->file = file ? g_object_ref (file) : NULL;
  g_object_notify_by_pspec (G_OBJECT (panel), props[PROP_FILE]);
}

static void
model_selection_changed (GtkTreeSelection *sel,
                         CatdogPanel      *panel)
{
  GtkTreeModel *model;
  GtkTreeIter   iter;
  gchar        *path, *default_path;

  if (panel->syncing || ! gtk_tree_selection_get_selected (sel, &model, &iter))
    return;
  gtk_tree_model_get (model, &iter, CATDOG_MODEL_COL_PATH, &path, -1);
  default_path = default_model_path (panel);
  /* The default's row means "the default model", whichever it becomes. */
  if (! g_strcmp0 (path, default_path))
    set_file (panel, NULL);
  else
    {
      GFile *file = g_file_new_for_path (path);

      set_file (panel, file);
      g_object_unref (file);
    }
  g_free (default_path);
  g_free (path);
  update_layers (panel);
}

/* ------------------------------------------------------------------ */
/* The conv layer list                                                 */
/* ------------------------------------------------------------------ */

static gboolean
layer_wanted (const gchar *layers,
              const gchar *name)
{
  gchar  **names;
  gboolean found = FALSE;
  gint     i;

  if (! layers || ! *layers || ! strcmp (layers, "all"))
    return TRUE;
  names = g_strsplit (layers, ",", -1);
  for (i = 0; names[i] && ! found; i++)
    found = ! strcmp (g_strstrip (names[i]), name);
  g_strfreev (names);
  return found;
}

static gint
count_checked (CatdogPanel *panel,
               gint        *total,
               GString     *names)
{
  GtkTreeModel *model = GTK_TREE_MODEL (panel->conv);
  GtkTreeIter   iter;
  gboolean      valid;
  gint          n = 0;

  *total = 0;
  for (valid = gtk_tree_model_get_iter_first (model, &iter); valid;
       valid = gtk_tree_model_iter_next (model, &iter))
    {
      gboolean checked;
      gchar   *name;

      gtk_tree_model_get (model, &iter, CATDOG_LAYER_COL_CHECKED, &checked,
                          CATDOG_LAYER_COL_NAME, &name, -1);
      (*total)++;
      if (checked)
        {
          if (names)
            g_string_append_printf (names, "%s%s", n ? "," : "", name);
          n++;
        }
      g_free (name);
    }
  return n;
}

/* The "layers" property from the check boxes. */
static void
layers_from_checks (CatdogPanel *panel)
{
  GString *names = g_string_new (NULL);
  gint     total;
  gint     n     = count_checked (panel, &total, names);
  gchar   *value = (n == total && total > 0) ? g_strdup ("all")
                                             : g_string_free (names, FALSE);

  if (n == total && total > 0)
    g_string_free (names, TRUE);
  if (g_strcmp0 (value, panel->layers))
    {
      g_free (panel->layers);
      panel->layers = value;
      g_object_notify_by_pspec (G_OBJECT (panel), props[PROP_LAYERS]);
    }
  else
    {
      g_free (value);
    }
  g_object_notify_by_pspec (G_OBJECT (panel), props[PROP_N_CHECKED]);
}

/* The heat map's choice of conv layers for info (NULL: none).  The last
 * one stands for "", the default that follows the model; a layer the
 * model does not have falls back to it. */
static void
update_heatmap_layers (CatdogPanel     *panel,
                       CatdogModelInfo *info)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (panel->heatmap_combo);
  gboolean         known = ! *panel->heatmap_layer;
  gint             i;

  panel->syncing = TRUE;
  gtk_combo_box_text_remove_all (combo);
  for (i = 0; info && i < info->n_conv; i++)
    {
      const gchar *name = info->conv_names[i];

      gtk_combo_box_text_append (combo, i == info->n_conv - 1 ? "" : name,
                                 name);
      known = known || ! strcmp (name, panel->heatmap_layer);
    }
  panel->syncing = FALSE;

  if (info && info->n_conv > 0 && ! known)
    g_object_set (panel, "heatmap-layer", "", NULL);
  else
    sync_heatmap_combo (panel);
}

/* Fills the layer list for the model in use.  Layers keep their check
 * across models by name; when none of the chosen names exists in the new
 * model, all its layers are checked. */
static void
update_layers (CatdogPanel *panel)
{
  gchar           *path  = catdog_panel_get_model_path (panel);
  CatdogModelInfo *info  = NULL;
  GError          *error = NULL;
  gboolean         any   = FALSE;
  gint             i;

  if (path && ! g_hash_table_lookup_extended (panel->infos, path, NULL,
                                              (gpointer *) &info))
    {
      info = catdog_model_info_load (path, &error);
      g_hash_table_insert (panel->infos, g_strdup (path), info);
    }
  else if (path && ! info)
    {
      catdog_model_info_load (path, &error);
    }

  panel->syncing = TRUE;
  gtk_list_store_clear (panel->conv);
  for (i = 0; info && i < info->n_conv; i++)
    any = any || layer_wanted (panel->layers, info->conv_names[i]);
  for (i = 0; info && i < info->n_conv; i++)
    {
      gchar *size = g_strdup_printf ("%dx%d", info->conv_w[i],
                                     info->conv_h[i]);

      gtk_list_store_insert_with_values (
        panel->conv, NULL, -1,
        CATDOG_LAYER_COL_CHECKED,
        ! any || layer_wanted (panel->layers, info->conv_names[i]),
        CATDOG_LAYER_COL_NAME, info->conv_names[i],
        CATDOG_LAYER_COL_MAPS, info->conv_maps[i],
        CATDOG_LAYER_COL_SIZE, size, -1);
      g_free (size);
    }
  panel->syncing = FALSE;
  update_heatmap_layers (panel, info);

  if (error)
    {
      gtk_label_set_text (GTK_LABEL (panel->model_error), error->message);
      gtk_widget_show (panel->model_error);
    }
  else if (! path)
    {
      gtk_label_set_text (GTK_LABEL (panel->model_error),
                          _("No model is installed: use \"Install "
                            "weights...\" or \"Browse...\"."));
      gtk_widget_show (panel->model_error);
    }
  else
    {
      gtk_widget_hide (panel->model_error);
    }
  /* Only installed models can be the default. */
  {
    gchar *dir = path ? g_path_get_dirname (path) : NULL;
    gchar *def = default_model_path (panel);

    gtk_widget_set_sensitive (panel->default_button,
                              info && dir && g_strcmp0 (path, def) &&
                              ! g_strcmp0 (dir, panel->models_dir));
    g_free (def);
    g_free (dir);
  }
  if (info && info->n_conv > 0)
    layers_from_checks (panel);
  else
    g_object_notify_by_pspec (G_OBJECT (panel), props[PROP_N_CHECKED]);
  g_clear_error (&error);
  g_free (path);
}

static void
set_all_checks (CatdogPanel *panel,
                gboolean     checked)
{
  GtkTreeModel *model = GTK_TREE_MODEL (panel->conv);
  GtkTreeIter   iter;
  gboolean      valid;

  for (valid = gtk_tree_model_get_iter_first (model, &iter); valid;
       valid = gtk_tree_model_iter_next (model, &iter))
    gtk_list_store_set (panel->conv, &iter, CATDOG_LAYER_COL_CHECKED, checked,
                        -1);
  layers_from_checks (panel);
}

static void
all_clicked (GtkButton   *button,
             CatdogPanel *panel)
{
  set_all_checks (panel, TRUE);
}

static void
none_clicked (GtkButton   *button,
              CatdogPanel *panel)
{
  set_all_checks (panel, FALSE);
}

static void
toggle_row (CatdogPanel *panel,
            GtkTreePath *path)
{
  GtkTreeIter iter;
  gboolean    checked;

  if (! gtk_tree_model_get_iter (GTK_TREE_MODEL (panel->conv), &iter, path))
    return;
  gtk_tree_model_get (GTK_TREE_MODEL (panel->conv), &iter,
                      CATDOG_LAYER_COL_CHECKED, &checked, -1);
  gtk_list_store_set (panel->conv, &iter, CATDOG_LAYER_COL_CHECKED, ! checked,
                      -1);
  layers_from_checks (panel);
}

static void
check_toggled (GtkCellRendererToggle *cell,
               const gchar           *path_string,
               CatdogPanel           *panel)
{
  GtkTreePath *path = gtk_tree_path_new_from_string (path_string);

  toggle_row (panel, path);
  gtk_tree_path_free (path);
}

/* Enter or a double click on a row toggles it, so the keyboard can. */
static void
layer_activated (GtkTreeView       *view,
                 GtkTreePath       *path,
                 GtkTreeViewColumn *column,
                 CatdogPanel       *panel)
{
  toggle_row (panel, path);
}

/* ------------------------------------------------------------------ */
/* Buttons: Browse, Install weights, Make default                      */
/* ------------------------------------------------------------------ */

static GtkFileFilter *
model_filter (void)
{
  GtkFileFilter *filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, _("Models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  return filter;
}

static gchar *
choose_model_file (CatdogPanel *panel,
                   const gchar *title,
                   const gchar *accept,
                   GtkWidget   *extra)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *chooser;
  gchar     *path = NULL;

  chooser = gtk_file_chooser_dialog_new (
    title,
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_FILE_CHOOSER_ACTION_OPEN,
    _("_Cancel"), GTK_RESPONSE_CANCEL, accept, GTK_RESPONSE_ACCEPT, NULL);
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), model_filter ());
  if (extra)
    gtk_file_chooser_set_extra_widget (GTK_FILE_CHOOSER (chooser), extra);
  if (gtk_dialog_run (GTK_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  gtk_widget_destroy (chooser);
  return path;
}

static void
browse_clicked (GtkButton   *button,
                CatdogPanel *panel)
{
  gchar *path = choose_model_file (panel, _("Choose a Model File"), _("_Open"),
                                   NULL);

  if (path)
    {
      GFile *file = g_file_new_for_path (path);

      set_file (panel, file);
      g_object_unref (file);
      catdog_panel_refresh (panel);
      g_free (path);
    }
}

static void
show_message (CatdogPanel    *panel,
              GtkMessageType  type,
              const gchar    *primary,
              const gchar    *secondary)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *dialog;

  dialog = gtk_message_dialog_new (
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT, type, GTK_BUTTONS_CLOSE,
    "%s", primary);
  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s",
                                            secondary);
  gtk_dialog_run (GTK_DIALOG (dialog));
  gtk_widget_destroy (dialog);
}

static gboolean
ask_replace (CatdogPanel *panel,
             const gchar *message)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *dialog;
  gint       response;

  dialog = gtk_message_dialog_new (
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT, GTK_MESSAGE_QUESTION,
    GTK_BUTTONS_NONE, "%s", message);
  gtk_message_dialog_format_secondary_text (
    GTK_MESSAGE_DIALOG (dialog), "%s",
    _("Replacing it changes the model for everything that uses it."));
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), _("_Cancel"),
                          GTK_RESPONSE_CANCEL, _("_Replace"),
                          GTK_RESPONSE_ACCEPT, NULL);
  response = gtk_dialog_run (GTK_DIALOG (dialog));
  gtk_widget_destroy (dialog);
  return response == GTK_RESPONSE_ACCEPT;
}

static void
install_clicked (GtkButton   *button,
                 CatdogPanel *panel)
{
  GtkWidget *make_default;
  gchar     *source, *installed;
  GError    *error = NULL;

  make_default = gtk_check_button_new_with_mnemonic (
    _("Make it the _default model"));
  gtk_widget_show (make_default);
  source = choose_model_file (panel, _("Install Weights"), _("_Install"),
                              make_default);
  if (! source)
    return;

  installed = catdog_models_install (panel->models_dir, source, FALSE, &error);
  if (! installed &&
      g_error_matches (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_EXISTS) &&
      ask_replace (panel, error->message))
    {
      g_clear_error (&error);
      installed = catdog_models_install (panel->models_dir, source, TRUE,
                                         &error);
    }
  if (installed)
    {
      GFile *file = g_file_new_for_path (installed);

      if (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (make_default)) &&
          ! catdog_models_set_default (panel->models_dir, installed, &error))
        {
          show_message (panel, GTK_MESSAGE_ERROR,
                        _("The model is installed, but could not be made the "
                          "default."), error->message);
          g_clear_error (&error);
        }
      set_file (panel, file);
      g_object_unref (file);
      catdog_panel_refresh (panel);
    }
  else if (error &&
           ! g_error_matches (error, CATDOG_MODELS_ERROR,
                              CATDOG_MODELS_ERROR_EXISTS))
    {
      show_message (panel, GTK_MESSAGE_ERROR,
                    _("The weights were not installed."), error->message);
    }
  g_clear_error (&error);
  g_free (installed);
  g_free (source);
}

static void
default_clicked (GtkButton   *button,
                 CatdogPanel *panel)
{
  gchar  *path  = catdog_panel_get_model_path (panel);
  GError *error = NULL;

  if (path && catdog_models_set_default (panel->models_dir, path, &error))
    {
      /* It is the default now: follow it. */
      set_file (panel, NULL);
      catdog_panel_refresh (panel);
    }
  else if (error)
    {
      show_message (panel, GTK_MESSAGE_ERROR,
                    _("The model could not be made the default."),
                    error->message);
      g_clear_error (&error);
    }
  g_free (path);
}

/* ------------------------------------------------------------------ */
/* Maps options                                                        */
/* ------------------------------------------------------------------ */

static void
sync_sensitivity (CatdogPanel *panel)
{
  gtk_widget_set_sensitive (panel->style_combo, panel->feature_maps);
  gtk_widget_set_sensitive (panel->colormap_combo, panel->feature_maps);
  gtk_widget_set_sensitive (panel->top_spin, panel->feature_maps);
  gtk_widget_set_sensitive (panel->top_label, panel->feature_maps);
  gtk_widget_set_sensitive (panel->layer_box, panel->feature_maps);
  gtk_widget_set_sensitive (panel->heatmap_combo, panel->heatmap);
  gtk_widget_set_sensitive (panel->heatmap_label, panel->heatmap);
}

/* Shows "heatmap-layer" in the combo: "" and the last layer's name are
 * both the last entry; a name the model lacks shows no entry. */
static void
sync_heatmap_combo (CatdogPanel *panel)
{
  GtkComboBox  *combo = GTK_COMBO_BOX (panel->heatmap_combo);
  GtkTreeModel *model = gtk_combo_box_get_model (combo);
  gint          n     = gtk_tree_model_iter_n_children (model, NULL);
  GtkTreeIter   last;
  gchar        *last_name = NULL;

  if (n > 0 && gtk_tree_model_iter_nth_child (model, &last, NULL, n - 1))
    gtk_tree_model_get (model, &last,
                        gtk_combo_box_get_entry_text_column (combo),
                        &last_name, -1);
  panel->syncing = TRUE;
  if (! g_strcmp0 (panel->heatmap_layer, last_name))
    gtk_combo_box_set_active_id (combo, "");
  else if (! gtk_combo_box_set_active_id (combo, panel->heatmap_layer))
    gtk_combo_box_set_active (combo, -1);
  panel->syncing = FALSE;
  g_free (last_name);
}

static void
heatmap_toggled (GtkToggleButton *toggle,
                 CatdogPanel     *panel)
{
  if (! panel->syncing)
    g_object_set (panel, "heatmap", gtk_toggle_button_get_active (toggle),
                  NULL);
}

static void
heatmap_combo_changed (GtkComboBox *combo,
                       CatdogPanel *panel)
{
  const gchar *id = gtk_combo_box_get_active_id (combo);

  if (! panel->syncing && id)
    g_object_set (panel, "heatmap-layer", id, NULL);
}

static void
top_changed (GtkSpinButton *spin,
             CatdogPanel   *panel)
{
  if (! panel->syncing)
    g_object_set (panel, "top", gtk_spin_button_get_value_as_int (spin), NULL);
}

static void
maps_toggled (GtkToggleButton *toggle,
              CatdogPanel     *panel)
{
  if (! panel->syncing)
    g_object_set (panel, "feature-maps", gtk_toggle_button_get_active (toggle),
                  NULL);
}

static void
combo_changed (GtkComboBox *combo,
               CatdogPanel *panel)
{
  if (panel->syncing)
    return;
  g_object_set (panel,
                combo == GTK_COMBO_BOX (panel->style_combo) ? "maps-style"
                                                            : "colormap",
                gtk_combo_box_get_active_id (combo), NULL);
}

/* ------------------------------------------------------------------ */
/* Result                                                              */
/* ------------------------------------------------------------------ */

void
catdog_panel_show_result (CatdogPanel *panel,
                          const gchar *label,
                          gdouble      probability)
{
  gchar *markup, *percent;

  g_return_if_fail (CATDOG_IS_PANEL (panel));

  /* The label is the model's own word ("dog"), not translated. */
  markup = g_markup_printf_escaped ("<span size='x-large' weight='bold'>%s"
                                    "</span>", label);
  gtk_label_set_markup (GTK_LABEL (panel->result_label), markup);
  /* TRANSLATORS: text on the confidence bar: "87.3% confidence" */
  percent = g_strdup_printf (_("%.1f%% confidence"), 100.0 * probability);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (panel->result_bar),
                                 CLAMP (probability, 0.0, 1.0));
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (panel->result_bar), percent);
  gtk_widget_show_all (panel->result_box);
  g_free (percent);
  g_free (markup);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */
/* ------------------------------------------------------------------ */

static GtkWidget *
framed (const gchar *title,
        GtkWidget   *child)
{
  GtkWidget *frame = gtk_frame_new (NULL);
  GtkWidget *label = gtk_label_new (NULL);
  gchar     *markup = g_markup_printf_escaped ("<b>%s</b>", title);

  gtk_label_set_markup (GTK_LABEL (label), markup);
  g_free (markup);
  gtk_frame_set_label_widget (GTK_FRAME (frame), label);
  gtk_frame_set_shadow_type (GTK_FRAME (frame), GTK_SHADOW_NONE);
  gtk_widget_set_margin_start (child, 12);
  gtk_widget_set_margin_top (child, 6);
  gtk_container_add (GTK_CONTAINER (frame), child);
  return frame;
}

static GtkCellRenderer *
add_text_column (GtkTreeView *view,
                 const gchar *title,
                 gint         column,
                 gboolean     expand,
                 gint         weight_column)
{
  GtkCellRenderer   *cell = gtk_cell_renderer_text_new ();
  GtkTreeViewColumn *col;

  col = gtk_tree_view_column_new_with_attributes (title, cell, "text", column,
                                                  NULL);
  if (weight_column >= 0)
    gtk_tree_view_column_add_attribute (col, cell, "weight", weight_column);
  gtk_tree_view_column_set_expand (col, expand);
  gtk_tree_view_column_set_resizable (col, TRUE);
  gtk_tree_view_append_column (view, col);
  return cell;
}

/* A tree view measures its rows while idle, after the dialog has taken
 * its size: the list then asks for what its rows lack (or no longer
 * need), within its bounds, and the dialog grows to show them. */
static void
fit_rows (GtkAdjustment     *adjustment,
          GtkScrolledWindow *sw)
{
  gdouble page    = gtk_adjustment_get_page_size (adjustment);
  gint    current = gtk_scrolled_window_get_min_content_height (sw);
  gint    least   = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (sw),
                                                        "catdog-min-height"));
  gint    want;

  if (page <= 0)
    return;
  /* Heights are whole pixels. */
  want = CLAMP (current + (gint) (gtk_adjustment_get_upper (adjustment) -
                                  page + 0.5),
                least, gtk_scrolled_window_get_max_content_height (sw));
  if (want != current)
    gtk_scrolled_window_set_min_content_height (sw, want);
}

/* A list as tall as its rows (at least min_height, beyond max_height it
 * scrolls) and never wider than the dialog: its columns must fit. */
static GtkWidget *
scrolled (GtkWidget *child,
          gint       min_height,
          gint       max_height)
{
  GtkScrolledWindow *sw = GTK_SCROLLED_WINDOW (gtk_scrolled_window_new (NULL,
                                                                        NULL));

  gtk_scrolled_window_set_policy (sw, GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
  gtk_scrolled_window_set_shadow_type (sw, GTK_SHADOW_IN);
  gtk_scrolled_window_set_max_content_height (sw, max_height);
  gtk_scrolled_window_set_min_content_height (sw, min_height);
  gtk_scrolled_window_set_propagate_natural_height (sw, TRUE);
  g_object_set_data (G_OBJECT (sw), "catdog-min-height",
                     GINT_TO_POINTER (min_height));
  gtk_container_add (GTK_CONTAINER (sw), child);
  g_signal_connect (gtk_scrolled_window_get_vadjustment (sw), "changed",
                    G_CALLBACK (fit_rows), sw);
  return GTK_WIDGET (sw);
}

static GtkWidget *
build_model_section (CatdogPanel *panel)
{
  GtkWidget   *box  = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget   *row  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkTreeView *view;
  GtkWidget   *button;
  GtkCellRenderer *cell;

  panel->models = gtk_list_store_new (CATDOG_MODEL_N_COLS, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_INT,
                                      G_TYPE_STRING);
  panel->model_view = gtk_tree_view_new_with_model (GTK_TREE_MODEL (panel->models));
  view = GTK_TREE_VIEW (panel->model_view);
  gtk_tree_view_set_tooltip_column (view, CATDOG_MODEL_COL_TOOLTIP);
  add_text_column (view, _("Name"), CATDOG_MODEL_COL_NAME, FALSE,
                   CATDOG_MODEL_COL_WEIGHT);
  /* The long column gives way, so that the short ones after it (Accuracy
   * last) always show whole. */
  cell = add_text_column (view, _("Architecture"), CATDOG_MODEL_COL_SUMMARY,
                          TRUE, -1);
  g_object_set (cell, "ellipsize", PANGO_ELLIPSIZE_END, "width-chars", 12,
                NULL);
  add_text_column (view, _("Input"), CATDOG_MODEL_COL_INPUT, FALSE, -1);
  add_text_column (view, _("Size"), CATDOG_MODEL_COL_SIZE, FALSE, -1);
  add_text_column (view, _("Accuracy"), CATDOG_MODEL_COL_ACCURACY, FALSE, -1);
  g_signal_connect (gtk_tree_view_get_selection (view), "changed",
                    G_CALLBACK (model_selection_changed), panel);
  gtk_box_pack_start (GTK_BOX (box), scrolled (panel->model_view, 60, 150),
                      TRUE, TRUE, 0);

  panel->model_error = gtk_label_new (NULL);
  gtk_label_set_line_wrap (GTK_LABEL (panel->model_error), TRUE);
  gtk_label_set_xalign (GTK_LABEL (panel->model_error), 0.0);
  gtk_label_set_selectable (GTK_LABEL (panel->model_error), TRUE);
  gtk_widget_set_no_show_all (panel->model_error, TRUE);
  gtk_box_pack_start (GTK_BOX (box), panel->model_error, FALSE, FALSE, 0);

  button = gtk_button_new_with_mnemonic (_("_Browse..."));
  g_signal_connect (button, "clicked", G_CALLBACK (browse_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  button = gtk_button_new_with_mnemonic (_("_Install weights..."));
  gtk_widget_set_tooltip_text (button,
                               _("Check a model file and copy it into your "
                                 "models folder"));
  g_signal_connect (button, "clicked", G_CALLBACK (install_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  panel->default_button = gtk_button_new_with_mnemonic (_("Make _default"));
  g_signal_connect (panel->default_button, "clicked",
                    G_CALLBACK (default_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), panel->default_button, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (box), row, FALSE, FALSE, 0);

  return framed (_("Model"), box);
}

static GtkWidget *
build_maps_section (CatdogPanel *panel)
{
  GtkWidget         *box  = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget         *grid = gtk_grid_new ();
  GtkWidget         *label, *row;
  GtkTreeView       *view;
  GtkCellRenderer   *cell;
  GtkTreeViewColumn *col;

  panel->maps_check = gtk_check_button_new_with_mnemonic (
    _("Add _feature maps as layers"));
  g_signal_connect (panel->maps_check, "toggled", G_CALLBACK (maps_toggled),
                    panel);
  gtk_box_pack_start (GTK_BOX (box), panel->maps_check, FALSE, FALSE, 0);

  gtk_grid_set_row_spacing (GTK_GRID (grid), 6);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 12);
  panel->style_combo = gtk_combo_box_text_new ();
  gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (panel->style_combo), "mosaic",
                             _("One mosaic per conv layer"));
  gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (panel->style_combo),
                             "channels", _("One layer per channel"));
  panel->colormap_combo = gtk_combo_box_text_new ();
  gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (panel->colormap_combo), "gray",
                             _("Gray"));
  gtk_combo_box_text_append (GTK_COMBO_BOX_TEXT (panel->colormap_combo),
                             "viridis", _("Viridis"));
  label = gtk_label_new_with_mnemonic (_("Maps s_tyle:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), panel->style_combo);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 0, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), panel->style_combo, 1, 0, 1, 1);
  label = gtk_label_new_with_mnemonic (_("Color_map:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), panel->colormap_combo);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 1, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), panel->colormap_combo, 1, 1, 1, 1);
  panel->top_spin = gtk_spin_button_new_with_range (0, CNN_MAX_CHANNELS, 1);
  gtk_widget_set_halign (panel->top_spin, GTK_ALIGN_START);
  gtk_widget_set_tooltip_text (panel->top_spin,
                               _("Only each conv layer's most active "
                                 "channels (highest mean activation), most "
                                 "active first; 0: all"));
  label = gtk_label_new_with_mnemonic (_("To_p channels:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), panel->top_spin);
  gtk_grid_attach (GTK_GRID (grid), label, 0, 2, 1, 1);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_box_pack_start (GTK_BOX (row), panel->top_spin, FALSE, FALSE, 0);
  /* TRANSLATORS: after the "Top channels" number */
  panel->top_label = gtk_label_new (_("per layer (0: all)"));
  gtk_box_pack_start (GTK_BOX (row), panel->top_label, FALSE, FALSE, 0);
  gtk_grid_attach (GTK_GRID (grid), row, 1, 2, 1, 1);
  g_signal_connect (panel->top_spin, "value-changed", G_CALLBACK (top_changed),
                    panel);
  g_signal_connect (panel->style_combo, "changed", G_CALLBACK (combo_changed),
                    panel);
  g_signal_connect (panel->colormap_combo, "changed",
                    G_CALLBACK (combo_changed), panel);
  gtk_box_pack_start (GTK_BOX (box), grid, FALSE, FALSE, 0);

  panel->layer_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  panel->conv = gtk_list_store_new (CATDOG_LAYER_N_COLS, G_TYPE_BOOLEAN,
                                    G_TYPE_STRING, G_TYPE_INT, G_TYPE_STRING);
  panel->layer_view = gtk_tree_view_new_with_model (GTK_TREE_MODEL (panel->conv));
  view = GTK_TREE_VIEW (panel->layer_view);
  cell = gtk_cell_renderer_toggle_new ();
  g_signal_connect (cell, "toggled", G_CALLBACK (check_toggled), panel);
  col = gtk_tree_view_column_new_with_attributes (_("Show"), cell, "active",
                                                  CATDOG_LAYER_COL_CHECKED,
                                                  NULL);
  gtk_tree_view_append_column (view, col);
  add_text_column (view, _("Conv layer"), CATDOG_LAYER_COL_NAME, TRUE, -1);
  add_text_column (view, _("Maps"), CATDOG_LAYER_COL_MAPS, FALSE, -1);
  add_text_column (view, _("Map size"), CATDOG_LAYER_COL_SIZE, FALSE, -1);
  g_signal_connect (view, "row-activated", G_CALLBACK (layer_activated), panel);

  label = gtk_label_new_with_mnemonic (_("Conv _layers to show:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), panel->layer_view);
  gtk_box_pack_start (GTK_BOX (panel->layer_box), label, FALSE, FALSE, 0);
  /* All the conv layers of a usual model show without scrolling. */
  gtk_box_pack_start (GTK_BOX (panel->layer_box),
                      scrolled (panel->layer_view, 110, 300), TRUE, TRUE, 0);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  panel->all_button = gtk_button_new_with_mnemonic (_("_All"));
  g_signal_connect (panel->all_button, "clicked", G_CALLBACK (all_clicked),
                    panel);
  panel->none_button = gtk_button_new_with_mnemonic (_("_None"));
  g_signal_connect (panel->none_button, "clicked", G_CALLBACK (none_clicked),
                    panel);
  gtk_box_pack_start (GTK_BOX (row), panel->all_button, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), panel->none_button, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (panel->layer_box), row, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (box), panel->layer_box, TRUE, TRUE, 0);

  return framed (_("Feature maps"), box);
}

static GtkWidget *
build_heatmap_section (CatdogPanel *panel)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);

  panel->heatmap_check = gtk_check_button_new_with_mnemonic (
    _("Heat map (_Grad-CAM)"));
  gtk_widget_set_tooltip_text (panel->heatmap_check,
                               _("Add a layer showing where the network "
                                 "looked to reach its verdict"));
  g_signal_connect (panel->heatmap_check, "toggled",
                    G_CALLBACK (heatmap_toggled), panel);
  gtk_box_pack_start (GTK_BOX (box), panel->heatmap_check, FALSE, FALSE, 0);

  panel->heatmap_combo = gtk_combo_box_text_new ();
  g_signal_connect (panel->heatmap_combo, "changed",
                    G_CALLBACK (heatmap_combo_changed), panel);
  panel->heatmap_label = gtk_label_new_with_mnemonic (_("Conv lay_er:"));
  gtk_label_set_mnemonic_widget (GTK_LABEL (panel->heatmap_label),
                                 panel->heatmap_combo);
  gtk_box_pack_start (GTK_BOX (row), panel->heatmap_label, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), panel->heatmap_combo, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (box), row, FALSE, FALSE, 0);

  return framed (_("Where the network looks"), box);
}

static GtkWidget *
build_result_section (CatdogPanel *panel)
{
  panel->result_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  panel->result_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (panel->result_label), 0.0);
  panel->result_bar = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (panel->result_bar), TRUE);
  gtk_box_pack_start (GTK_BOX (panel->result_box), panel->result_label,
                      FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (panel->result_box), panel->result_bar,
                      FALSE, FALSE, 0);
  return framed (_("Result"), panel->result_box);
}

static void
catdog_panel_constructed (GObject *object)
{
  CatdogPanel *panel = CATDOG_PANEL (object);
  GtkWidget   *result, *row, *side;

  G_OBJECT_CLASS (catdog_panel_parent_class)->constructed (object);

  /* The model on top; below it the feature maps, with the heat map and
   * the result beside them, so the dialog stays short enough for small
   * screens. */
  gtk_orientable_set_orientation (GTK_ORIENTABLE (panel),
                                  GTK_ORIENTATION_VERTICAL);
  gtk_box_set_spacing (GTK_BOX (panel), 12);
  gtk_box_pack_start (GTK_BOX (panel), build_model_section (panel),
                      FALSE, FALSE, 0);
  row  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 18);
  side = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_box_pack_start (GTK_BOX (row), build_maps_section (panel),
                      TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (side), build_heatmap_section (panel),
                      FALSE, FALSE, 0);
  result = build_result_section (panel);
  gtk_box_pack_start (GTK_BOX (side), result, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), side, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (panel), row, TRUE, TRUE, 0);
  gtk_widget_show_all (GTK_WIDGET (panel));
  /* The result frame appears with the first result. */
  g_object_bind_property (panel->result_box, "visible", result, "visible",
                          G_BINDING_SYNC_CREATE);
  gtk_widget_hide (panel->result_box);

  panel->syncing = TRUE;
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (panel->maps_check),
                                panel->feature_maps);
  gtk_combo_box_set_active_id (GTK_COMBO_BOX (panel->style_combo),
                               panel->maps_style);
  gtk_combo_box_set_active_id (GTK_COMBO_BOX (panel->colormap_combo),
                               panel->colormap);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (panel->top_spin), panel->top);
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (panel->heatmap_check),
                                panel->heatmap);
  panel->syncing = FALSE;
  sync_sensitivity (panel);
  catdog_panel_refresh (panel);
}

static void
catdog_panel_set_property (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  CatdogPanel *panel = CATDOG_PANEL (object);
  const gchar *s;

  switch (prop_id)
    {
    case PROP_MODELS_DIR:
      g_free (panel->models_dir);
      panel->models_dir = g_value_dup_string (value);
      break;
    case PROP_SHIPPED_MODEL:
      g_free (panel->shipped_model);
      panel->shipped_model = g_value_dup_string (value);
      break;
    case PROP_FILE:
      set_file (panel, g_value_get_object (value));
      if (panel->model_view)
        catdog_panel_refresh (panel);
      break;
    case PROP_LAYERS:
      s = g_value_get_string (value);
      if (! g_strcmp0 (s, panel->layers))
        break;
      g_free (panel->layers);
      panel->layers = g_strdup (s ? s : "all");
      g_object_notify_by_pspec (object, pspec);
      if (panel->layer_view)
        update_layers (panel);
      break;
    case PROP_FEATURE_MAPS:
      if (panel->feature_maps == g_value_get_boolean (value))
        break;
      panel->feature_maps = g_value_get_boolean (value);
      g_object_notify_by_pspec (object, pspec);
      if (panel->maps_check)
        {
          panel->syncing = TRUE;
          gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (panel->maps_check),
                                        panel->feature_maps);
          panel->syncing = FALSE;
          sync_sensitivity (panel);
        }
      break;
    case PROP_MAPS_STYLE:
    case PROP_COLORMAP:
      {
        gchar    **field = prop_id == PROP_MAPS_STYLE ? &panel->maps_style
                                                      : &panel->colormap;
        GtkWidget *combo = prop_id == PROP_MAPS_STYLE ? panel->style_combo
                                                      : panel->colormap_combo;

        s = g_value_get_string (value);
        if (! s || ! g_strcmp0 (s, *field))
          break;
        g_free (*field);
        *field = g_strdup (s);
        g_object_notify_by_pspec (object, pspec);
        if (combo)
          {
            panel->syncing = TRUE;
            gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), s);
            panel->syncing = FALSE;
          }
      }
      break;
    case PROP_TOP:
      if (panel->top == g_value_get_int (value))
        break;
      panel->top = g_value_get_int (value);
      g_object_notify_by_pspec (object, pspec);
      if (panel->top_spin)
        {
          panel->syncing = TRUE;
          gtk_spin_button_set_value (GTK_SPIN_BUTTON (panel->top_spin),
                                     panel->top);
          panel->syncing = FALSE;
        }
      break;
    case PROP_HEATMAP:
      if (panel->heatmap == g_value_get_boolean (value))
        break;
      panel->heatmap = g_value_get_boolean (value);
      g_object_notify_by_pspec (object, pspec);
      if (panel->heatmap_check)
        {
          panel->syncing = TRUE;
          gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (panel->heatmap_check),
                                        panel->heatmap);
          panel->syncing = FALSE;
          sync_sensitivity (panel);
        }
      break;
    case PROP_HEATMAP_LAYER:
      s = g_value_get_string (value);
      if (! g_strcmp0 (s ? s : "", panel->heatmap_layer))
        break;
      g_free (panel->heatmap_layer);
      panel->heatmap_layer = g_strdup (s ? s : "");
      g_object_notify_by_pspec (object, pspec);
      if (panel->heatmap_combo)
        sync_heatmap_combo (panel);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
catdog_panel_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  CatdogPanel *panel = CATDOG_PANEL (object);
  gint         total;

  switch (prop_id)
    {
    case PROP_MODELS_DIR:
      g_value_set_string (value, panel->models_dir);
      break;
    case PROP_SHIPPED_MODEL:
      g_value_set_string (value, panel->shipped_model);
      break;
    case PROP_FILE:
      g_value_set_object (value, panel->file);
      break;
    case PROP_LAYERS:
      g_value_set_string (value, panel->layers);
      break;
    case PROP_FEATURE_MAPS:
      g_value_set_boolean (value, panel->feature_maps);
      break;
    case PROP_MAPS_STYLE:
      g_value_set_string (value, panel->maps_style);
      break;
    case PROP_COLORMAP:
      g_value_set_string (value, panel->colormap);
      break;
    case PROP_TOP:
      g_value_set_int (value, panel->top);
      break;
    case PROP_HEATMAP:
      g_value_set_boolean (value, panel->heatmap);
      break;
    case PROP_HEATMAP_LAYER:
      g_value_set_string (value, panel->heatmap_layer);
      break;
    case PROP_N_CHECKED:
      g_value_set_int (value, panel->conv ? count_checked (panel, &total, NULL)
                                          : 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
catdog_panel_finalize (GObject *object)
{
  CatdogPanel *panel = CATDOG_PANEL (object);

  g_free (panel->models_dir);
  g_free (panel->shipped_model);
  g_clear_object (&panel->file);
  g_free (panel->layers);
  g_free (panel->maps_style);
  g_free (panel->colormap);
  g_free (panel->heatmap_layer);
  g_hash_table_unref (panel->infos);
  g_clear_object (&panel->models);
  g_clear_object (&panel->conv);
  G_OBJECT_CLASS (catdog_panel_parent_class)->finalize (object);
}

static void
catdog_panel_class_init (CatdogPanelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags   rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                     G_PARAM_EXPLICIT_NOTIFY;

  object_class->constructed  = catdog_panel_constructed;
  object_class->set_property = catdog_panel_set_property;
  object_class->get_property = catdog_panel_get_property;
  object_class->finalize     = catdog_panel_finalize;

  props[PROP_MODELS_DIR] =
    g_param_spec_string ("models-dir", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);
  props[PROP_SHIPPED_MODEL] =
    g_param_spec_string ("shipped-model", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
                         G_PARAM_STATIC_STRINGS);
  props[PROP_FILE] =
    g_param_spec_object ("file", NULL, NULL, G_TYPE_FILE, rw);
  props[PROP_LAYERS] =
    g_param_spec_string ("layers", NULL, NULL, "all", rw);
  props[PROP_FEATURE_MAPS] =
    g_param_spec_boolean ("feature-maps", NULL, NULL, FALSE, rw);
  props[PROP_MAPS_STYLE] =
    g_param_spec_string ("maps-style", NULL, NULL, "mosaic", rw);
  props[PROP_COLORMAP] =
    g_param_spec_string ("colormap", NULL, NULL, "gray", rw);
  props[PROP_TOP] =
    g_param_spec_int ("top", NULL, NULL, 0, CNN_MAX_CHANNELS, 0, rw);
  props[PROP_HEATMAP] =
    g_param_spec_boolean ("heatmap", NULL, NULL, FALSE, rw);
  props[PROP_HEATMAP_LAYER] =
    g_param_spec_string ("heatmap-layer", NULL, NULL, "", rw);
  props[PROP_N_CHECKED] =
    g_param_spec_int ("n-checked", NULL, NULL, 0, G_MAXINT, 0,
                      G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
catdog_panel_init (CatdogPanel *panel)
{
  panel->layers     = g_strdup ("all");
  panel->maps_style = g_strdup ("mosaic");
  panel->colormap   = g_strdup ("gray");
  panel->heatmap_layer = g_strdup ("");
  panel->infos = g_hash_table_new_full (
    g_str_hash, g_str_equal, g_free,
    (GDestroyNotify) catdog_model_info_free);
}

GtkWidget *
catdog_panel_new (const gchar *models_dir,
                  const gchar *shipped_model)
{
  return g_object_new (CATDOG_TYPE_PANEL, "models-dir", models_dir,
                       "shipped-model", shipped_model, NULL);
}

GtkTreeView *
catdog_panel_get_model_view (CatdogPanel *panel)
{
  return GTK_TREE_VIEW (panel->model_view);
}

GtkTreeView *
catdog_panel_get_layer_view (CatdogPanel *panel)
{
  return GTK_TREE_VIEW (panel->layer_view);
}

GtkButton *
catdog_panel_get_all_button (CatdogPanel *panel)
{
  return GTK_BUTTON (panel->all_button);
}

GtkButton *
catdog_panel_get_none_button (CatdogPanel *panel)
{
  return GTK_BUTTON (panel->none_button);
}

GtkComboBox *
catdog_panel_get_heatmap_combo (CatdogPanel *panel)
{
  return GTK_COMBO_BOX (panel->heatmap_combo);
}

GtkSpinButton *
catdog_panel_get_top_spin (CatdogPanel *panel)
{
  return GTK_SPIN_BUTTON (panel->top_spin);
}
