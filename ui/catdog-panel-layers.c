/* catdog-panel-layers.c - the panel's conv layer list: a check box per
 * conv layer of the model in use, kept in step with "layers" and
 * "n-checked", and the heat map's choice of conv layers. */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

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

gint
catdog_panel_count_checked (CatdogPanel *panel,
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
  gint     n     = catdog_panel_count_checked (panel, &total, names);
  gchar   *value = (n == total && total > 0) ? g_strdup ("all")
                                             : g_string_free (names, FALSE);

  if (n == total && total > 0)
    g_string_free (names, TRUE);
  if (g_strcmp0 (value, panel->layers))
    {
      g_free (panel->layers);
      panel->layers = value;
      catdog_panel_notify (panel, PROP_LAYERS);
    }
  else
    {
      g_free (value);
    }
  catdog_panel_notify (panel, PROP_N_CHECKED);
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
    catdog_panel_sync_heatmap_combo (panel);
}

/* Fills the layer list for the model in use.  Layers keep their check
 * across models by name; when none of the chosen names exists in the new
 * model, all its layers are checked. */
void
catdog_panel_update_layers (CatdogPanel *panel)
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
    gchar *def = catdog_panel_default_path (panel);

    gtk_widget_set_sensitive (panel->default_button,
                              info && dir && g_strcmp0 (path, def) &&
                              ! g_strcmp0 (dir, panel->models_dir));
    g_free (def);
    g_free (dir);
  }
  if (info && info->n_conv > 0)
    layers_from_checks (panel);
  else
    catdog_panel_notify (panel, PROP_N_CHECKED);
  catdog_panel_preview_model (panel);
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

GtkWidget *
catdog_panel_build_layer_list (CatdogPanel *panel)
{
  GtkWidget         *label, *row;
  GtkTreeView       *view;
  GtkCellRenderer   *cell;
  GtkTreeViewColumn *col;

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
  catdog_panel_add_text_column (view, _("Conv layer"), CATDOG_LAYER_COL_NAME, TRUE, -1);
  catdog_panel_add_text_column (view, _("Maps"), CATDOG_LAYER_COL_MAPS, FALSE, -1);
  catdog_panel_add_text_column (view, _("Map size"), CATDOG_LAYER_COL_SIZE, FALSE, -1);
  g_signal_connect (view, "row-activated", G_CALLBACK (layer_activated), panel);

  label = gtk_label_new_with_mnemonic (_("Conv _layers to show:"));
  gtk_label_set_xalign (GTK_LABEL (label), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (label), panel->layer_view);
  gtk_box_pack_start (GTK_BOX (panel->layer_box), label, FALSE, FALSE, 0);
  /* All the conv layers of a usual model show without scrolling. */
  gtk_box_pack_start (GTK_BOX (panel->layer_box),
                      catdog_panel_scrolled (panel->layer_view, 110, 300), TRUE, TRUE, 0);
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
  return panel->layer_box;
}
