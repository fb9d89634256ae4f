/* catdog-panel-options.c - the panel's options: feature maps (style,
 * colormap, top channels) and the heat map, each widget kept in step with
 * its property. */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

void
catdog_panel_sync_sensitivity (CatdogPanel *panel)
{
  /* The layer list, the colormap and top-K also drive the preview: they
   * stay usable with feature maps off. */
  gtk_widget_set_sensitive (panel->style_combo, panel->feature_maps);
  gtk_widget_set_sensitive (panel->heatmap_combo, panel->heatmap);
  gtk_widget_set_sensitive (panel->heatmap_label, panel->heatmap);
}

/* Shows "heatmap-layer" in the combo: "" and the last layer's name are
 * both the last entry; a name the model lacks shows no entry. */
void
catdog_panel_sync_heatmap_combo (CatdogPanel *panel)
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

/* Any option widget changed: its property (the widget's
 * "catdog-property") takes its value.  A combo box without a choice
 * changes nothing. */
static void
option_changed (GtkWidget   *widget,
                CatdogPanel *panel)
{
  const gchar *property = g_object_get_data (G_OBJECT (widget),
                                             "catdog-property");
  const gchar *id;

  if (panel->syncing)
    return;
  if (GTK_IS_SPIN_BUTTON (widget))
    g_object_set (panel, property,
                  gtk_spin_button_get_value_as_int (GTK_SPIN_BUTTON (widget)),
                  NULL);
  else if (GTK_IS_TOGGLE_BUTTON (widget))
    g_object_set (panel, property,
                  gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (widget)),
                  NULL);
  else if ((id = gtk_combo_box_get_active_id (GTK_COMBO_BOX (widget))))
    g_object_set (panel, property, id, NULL);
}

/* widget edits property from now on. */
static void
connect_option (CatdogPanel *panel,
                GtkWidget   *widget,
                const gchar *signal,
                const gchar *property)
{
  g_object_set_data (G_OBJECT (widget), "catdog-property", (gpointer) property);
  g_signal_connect (widget, signal, G_CALLBACK (option_changed), panel);
}

GtkWidget *
catdog_panel_build_maps_section (CatdogPanel *panel,
                                 GtkWidget   *layer_list)
{
  GtkWidget *box  = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *grid = gtk_grid_new ();
  GtkWidget *label, *row;

  panel->maps_check = gtk_check_button_new_with_mnemonic (
    _("Add _feature maps as layers"));
  connect_option (panel, panel->maps_check, "toggled", "feature-maps");
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
  connect_option (panel, panel->top_spin, "value-changed", "top");
  connect_option (panel, panel->style_combo, "changed", "maps-style");
  connect_option (panel, panel->colormap_combo, "changed", "colormap");
  gtk_box_pack_start (GTK_BOX (box), grid, FALSE, FALSE, 0);

  gtk_box_pack_start (GTK_BOX (box), layer_list, TRUE, TRUE, 0);

  return catdog_panel_framed (_("Feature maps"), box);
}

GtkWidget *
catdog_panel_build_heatmap_section (CatdogPanel *panel)
{
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);

  panel->heatmap_check = gtk_check_button_new_with_mnemonic (
    _("Heat map (_Grad-CAM)"));
  gtk_widget_set_tooltip_text (panel->heatmap_check,
                               _("Add a layer showing where the network "
                                 "looked to reach its verdict"));
  connect_option (panel, panel->heatmap_check, "toggled", "heatmap");
  gtk_box_pack_start (GTK_BOX (box), panel->heatmap_check, FALSE, FALSE, 0);

  panel->heatmap_combo = gtk_combo_box_text_new ();
  connect_option (panel, panel->heatmap_combo, "changed", "heatmap-layer");
  panel->heatmap_label = gtk_label_new_with_mnemonic (_("Conv lay_er:"));
  gtk_label_set_mnemonic_widget (GTK_LABEL (panel->heatmap_label),
                                 panel->heatmap_combo);
  gtk_box_pack_start (GTK_BOX (row), panel->heatmap_label, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), panel->heatmap_combo, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (box), row, FALSE, FALSE, 0);

  return catdog_panel_framed (_("Where the network looks"), box);
}

GtkWidget *
catdog_panel_build_tta_check (CatdogPanel *panel)
{
  panel->tta_check = gtk_check_button_new_with_mnemonic (
    _("Test-time flip averaging (_with the mirror image)"));
  gtk_widget_set_tooltip_text (panel->tta_check,
                               _("Classify the image and its mirror image "
                                 "and average the two results (about twice "
                                 "the time)"));
  connect_option (panel, panel->tta_check, "toggled", "tta");
  /* In line with the framed sections' contents. */
  gtk_widget_set_margin_start (panel->tta_check, 12);
  gtk_widget_set_halign (panel->tta_check, GTK_ALIGN_START);
  return panel->tta_check;
}
