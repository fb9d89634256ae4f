/* catdog-panel-private.h - what the files of the panel share, and no
 * one else: the panel's fields and the functions one part calls in
 * another.  The public API is catdog-panel.h.
 *
 * The panel is one widget in seven files, one per part of the dialog:
 *   catdog-panel.c          the GObject: properties, construction, the
 *                           layout of the parts, small widget helpers
 *   catdog-panel-models.c   the model list
 *   catdog-panel-buttons.c  Browse..., Install weights..., Make default
 *   catdog-panel-layers.c   the conv layer list
 *   catdog-panel-options.c  feature-map and heat-map options
 *   catdog-panel-result.c   the verdict
 *   catdog-panel-preview.c  the live preview (catdog-preview.h) beside
 *                           them
 * catdog-panel.c builds each part through its catdog_panel_build_*() and
 * hands property changes on to them; the parts use its helpers, and call
 * each other only through the functions below, one way each: buttons ->
 * models (a file chosen, the list refreshed), models -> layers (the
 * chosen model's layers), layers -> options (the heat map's combo),
 * layers -> preview (the model in use). */
#ifndef CATDOG_PANEL_PRIVATE_H
#define CATDOG_PANEL_PRIVATE_H

#include "catdog-panel.h"
#include "catdog-models.h"
#include "catdog-preview.h"

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
  gboolean      tta;

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
  GtkWidget    *tta_check;
  GtkWidget    *layer_box;
  GtkWidget    *layer_view;
  GtkWidget    *all_button;
  GtkWidget    *none_button;
  GtkWidget    *result_box;
  GtkWidget    *result_label;
  GtkWidget    *result_bar;
  GtkWidget    *preview;
  gchar        *channels;      /* the preview's marks, never NULL */
  gboolean      syncing;       /* updating widgets from properties */
};

/* The panel's properties, for catdog_panel_notify(). */
typedef enum
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
  PROP_CHANNELS,
  PROP_TTA,
  N_PROPS
} CatdogPanelProp;

/* catdog-panel.c */

/* The model used when "file" is NULL: the default installed one, else
 * the shipped one (g_free; NULL when there is neither). */
gchar           *catdog_panel_default_path          (CatdogPanel *panel);
void             catdog_panel_notify                (CatdogPanel *panel,
                                                     CatdogPanelProp prop);
/* A bold-titled frame around child. */
GtkWidget       *catdog_panel_framed                (const gchar *title,
                                                     GtkWidget   *child);
GtkCellRenderer *catdog_panel_add_text_column       (GtkTreeView *view,
                                                     const gchar *title,
                                                     gint         column,
                                                     gboolean     expand,
                                                     gint         weight_column);
/* child in a scrolled window as tall as its rows, within the bounds. */
GtkWidget       *catdog_panel_scrolled              (GtkWidget *child,
                                                     gint       min_height,
                                                     gint       max_height);

/* catdog-panel-models.c */

void             catdog_panel_set_file              (CatdogPanel *panel,
                                                     GFile       *file);
/* The model list's frame, with buttons (catdog_panel_build_buttons())
 * under the list. */
GtkWidget       *catdog_panel_build_model_section   (CatdogPanel *panel,
                                                     GtkWidget   *buttons);

/* catdog-panel-buttons.c: the row under the model list */

GtkWidget       *catdog_panel_build_buttons         (CatdogPanel *panel);

/* catdog-panel-layers.c */

/* Fills the layer list (and the heat map's choices) for the model in
 * use. */
void             catdog_panel_update_layers         (CatdogPanel *panel);
/* How many conv layers are checked, of *total; their names appended to
 * names (comma-separated) when it is not NULL. */
gint             catdog_panel_count_checked         (CatdogPanel *panel,
                                                     gint        *total,
                                                     GString     *names);
/* The list with its All and None buttons: panel->layer_box. */
GtkWidget       *catdog_panel_build_layer_list      (CatdogPanel *panel);

/* catdog-panel-options.c */

void             catdog_panel_sync_sensitivity      (CatdogPanel *panel);
void             catdog_panel_sync_heatmap_combo    (CatdogPanel *panel);
/* The feature maps' frame: the options above layer_list
 * (catdog_panel_build_layer_list()). */
GtkWidget       *catdog_panel_build_maps_section    (CatdogPanel *panel,
                                                     GtkWidget   *layer_list);
GtkWidget       *catdog_panel_build_heatmap_section (CatdogPanel *panel);
/* The test-time flip averaging check box, under the model list. */
GtkWidget       *catdog_panel_build_tta_check       (CatdogPanel *panel);

/* catdog-panel-result.c */

GtkWidget       *catdog_panel_build_result_section  (CatdogPanel *panel);

/* catdog-panel-preview.c */

/* The preview's frame; after catdog_panel_build_layer_list(). */
GtkWidget       *catdog_panel_build_preview_section (CatdogPanel *panel);
/* Hands the preview the model in use (it runs again when it changed). */
void             catdog_panel_preview_model         (CatdogPanel *panel);
void             catdog_panel_set_channels          (CatdogPanel *panel,
                                                     const gchar *channels);

#endif /* CATDOG_PANEL_PRIVATE_H */
