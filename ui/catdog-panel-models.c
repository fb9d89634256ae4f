/* catdog-panel-models.c - the panel's model list: the installed models,
 * the shipped one and a file picked with "Browse...", with what each is;
 * choosing a row sets "file".  Its buttons are catdog-panel-buttons.c. */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

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
      /* Two decimals: one photo in the 2,500 of the validation set is
       * 0.04 points, and rounding 96.48% to "96.5%" would claim a
       * target it misses. */
      accuracy = info->accuracy >= 0
                 ? g_strdup_printf ("%.2f%%", 100.0 * info->accuracy)
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
  catdog_panel_update_layers (panel);
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
  default_path = catdog_panel_default_path (panel);
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

void
catdog_panel_set_file (CatdogPanel *panel,
                       GFile       *file)
{
  if (file == panel->file ||
      (file && panel->file && g_file_equal (file, panel->file)))
    return;
  g_clear_object (&panel->file);
  panel->file = file ? g_object_ref (file) : NULL;
  catdog_panel_notify (panel, PROP_FILE);
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
  default_path = catdog_panel_default_path (panel);
  /* The default's row means "the default model", whichever it becomes. */
  if (! g_strcmp0 (path, default_path))
    catdog_panel_set_file (panel, NULL);
  else
    {
      GFile *file = g_file_new_for_path (path);

      catdog_panel_set_file (panel, file);
      g_object_unref (file);
    }
  g_free (default_path);
  g_free (path);
  catdog_panel_update_layers (panel);
}

GtkWidget *
catdog_panel_build_model_section (CatdogPanel *panel,
                                  GtkWidget   *buttons)
{
  GtkWidget   *box  = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkTreeView *view;
  GtkCellRenderer *cell;

  panel->models = gtk_list_store_new (CATDOG_MODEL_N_COLS, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_STRING,
                                      G_TYPE_STRING, G_TYPE_INT,
                                      G_TYPE_STRING);
  panel->model_view = gtk_tree_view_new_with_model (GTK_TREE_MODEL (panel->models));
  view = GTK_TREE_VIEW (panel->model_view);
  gtk_tree_view_set_tooltip_column (view, CATDOG_MODEL_COL_TOOLTIP);
  catdog_panel_add_text_column (view, _("Name"), CATDOG_MODEL_COL_NAME, FALSE,
                   CATDOG_MODEL_COL_WEIGHT);
  /* The long column gives way, so that the short ones after it (Accuracy
   * last) always show whole. */
  cell = catdog_panel_add_text_column (view, _("Architecture"), CATDOG_MODEL_COL_SUMMARY,
                          TRUE, -1);
  g_object_set (cell, "ellipsize", PANGO_ELLIPSIZE_END, "width-chars", 12,
                NULL);
  catdog_panel_add_text_column (view, _("Input"), CATDOG_MODEL_COL_INPUT, FALSE, -1);
  catdog_panel_add_text_column (view, _("Size"), CATDOG_MODEL_COL_SIZE, FALSE, -1);
  catdog_panel_add_text_column (view, _("Accuracy"), CATDOG_MODEL_COL_ACCURACY, FALSE, -1);
  g_signal_connect (gtk_tree_view_get_selection (view), "changed",
                    G_CALLBACK (model_selection_changed), panel);
  gtk_box_pack_start (GTK_BOX (box), catdog_panel_scrolled (panel->model_view, 60, 150),
                      TRUE, TRUE, 0);

  panel->model_error = gtk_label_new (NULL);
  gtk_label_set_line_wrap (GTK_LABEL (panel->model_error), TRUE);
  gtk_label_set_xalign (GTK_LABEL (panel->model_error), 0.0);
  gtk_label_set_selectable (GTK_LABEL (panel->model_error), TRUE);
  gtk_widget_set_no_show_all (panel->model_error, TRUE);
  gtk_box_pack_start (GTK_BOX (box), panel->model_error, FALSE, FALSE, 0);

  gtk_box_pack_start (GTK_BOX (box), buttons, FALSE, FALSE, 0);

  return catdog_panel_framed (_("Model"), box);
}
