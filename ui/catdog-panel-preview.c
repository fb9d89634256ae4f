/* catdog-panel-preview.c - the panel's preview (catdog-preview.h) in a
 * frame beside the settings: it follows the model in use, the selected
 * row of the conv layer list, the colormap and the top-K choice, and its
 * marked channels are the panel's "channels". */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

void
catdog_panel_preview_model (CatdogPanel *panel)
{
  gchar *path;

  if (! panel->preview)
    return;
  path = catdog_panel_get_model_path (panel);
  catdog_preview_set_model (CATDOG_PREVIEW (panel->preview), path);
  g_free (path);
}

void
catdog_panel_set_channels (CatdogPanel *panel,
                           const gchar *channels)
{
  if (! channels)
    channels = "";
  if (! strcmp (channels, panel->channels))
    return;
  g_free (panel->channels);
  panel->channels = g_strdup (channels);
  /* Set from outside to "": the marks go too.  Marks are only ever made
   * in the preview, so another value can only be the preview's own. */
  if (! *channels && panel->preview)
    catdog_preview_clear_marks (CATDOG_PREVIEW (panel->preview));
  catdog_panel_notify (panel, PROP_CHANNELS);
}

static void
marks_changed (GObject     *preview,
               GParamSpec  *pspec,
               CatdogPanel *panel)
{
  gchar *channels = NULL;

  g_object_get (preview, "channels", &channels, NULL);
  catdog_panel_set_channels (panel, channels);
  g_free (channels);
}

static void
layer_selected (GtkTreeSelection *selection,
                CatdogPanel      *panel)
{
  GtkTreeModel *model;
  GtkTreeIter   iter;
  gchar        *name = NULL;

  if (gtk_tree_selection_get_selected (selection, &model, &iter))
    gtk_tree_model_get (model, &iter, CATDOG_LAYER_COL_NAME, &name, -1);
  catdog_preview_set_layer (CATDOG_PREVIEW (panel->preview), name);
  g_free (name);
}

/* The colormap and top-K choices: redrawn, not run again. */
static void
options_changed (CatdogPanel *panel)
{
  catdog_preview_set_colormap (CATDOG_PREVIEW (panel->preview),
                               panel->colormap);
  catdog_preview_set_top (CATDOG_PREVIEW (panel->preview), panel->top);
}

/* Test-time flip averaging: the preview's verdict follows it. */
static void
tta_changed (CatdogPanel *panel)
{
  catdog_preview_set_tta (CATDOG_PREVIEW (panel->preview), panel->tta);
}

/* The heat map's conv layer: the preview's heat map follows it. */
static void
heat_layer_changed (CatdogPanel *panel)
{
  catdog_preview_set_heat_layer (CATDOG_PREVIEW (panel->preview),
                                 panel->heatmap_layer);
}

GtkWidget *
catdog_panel_build_preview_section (CatdogPanel *panel)
{
  panel->preview = catdog_preview_new ();
  options_changed (panel);
  g_signal_connect (panel, "notify::colormap", G_CALLBACK (options_changed),
                    NULL);
  g_signal_connect (panel, "notify::top", G_CALLBACK (options_changed), NULL);
  heat_layer_changed (panel);
  g_signal_connect (panel, "notify::heatmap-layer",
                    G_CALLBACK (heat_layer_changed), NULL);
  tta_changed (panel);
  g_signal_connect (panel, "notify::tta", G_CALLBACK (tta_changed), NULL);
  g_signal_connect (panel->preview, "notify::channels",
                    G_CALLBACK (marks_changed), panel);
  g_signal_connect (gtk_tree_view_get_selection (
                      GTK_TREE_VIEW (panel->layer_view)),
                    "changed", G_CALLBACK (layer_selected), panel);
  return catdog_panel_framed (_("Preview"), panel->preview);
}

void
catdog_panel_set_pixels (CatdogPanel  *panel,
                         const guint8 *pixels,
                         gint          width,
                         gint          height,
                         gsize         stride,
                         gint          channels)
{
  g_return_if_fail (CATDOG_IS_PANEL (panel));
  catdog_preview_set_pixels (CATDOG_PREVIEW (panel->preview), pixels, width,
                             height, stride, channels);
}

void
catdog_panel_set_preview_error (CatdogPanel *panel,
                                const gchar *message)
{
  g_return_if_fail (CATDOG_IS_PANEL (panel));
  catdog_preview_set_error (CATDOG_PREVIEW (panel->preview), message);
}

CatdogPreview *
catdog_panel_get_preview (CatdogPanel *panel)
{
  g_return_val_if_fail (CATDOG_IS_PANEL (panel), NULL);
  return CATDOG_PREVIEW (panel->preview);
}
