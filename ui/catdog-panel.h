/* catdog-panel.h - the plug-in dialog's contents as a plain GTK 3 widget
 * (no libgimp): model chooser, conv layer list, maps options, "Install
 * weights...", and the result once the image has been classified.
 *
 * Its properties carry the procedure's arguments, so the plug-in binds
 * them to its GimpProcedureConfig, and a test program drives it alone:
 *   "file"          GFile   the chosen model; NULL: the default model
 *   "layers"        string  "all" or comma-separated conv layer names
 *   "feature-maps"  boolean
 *   "maps-style"    string  "mosaic" or "channels"
 *   "colormap"      string  "gray" or "viridis"
 *   "top"           int     only each layer's N most active channels; 0: all
 *   "heatmap"       boolean add a Grad-CAM heat map
 *   "heatmap-layer" string  its conv layer; "": the model's last one
 *   "n-checked"     int     conv layers checked (read-only)
 *   "channels"      string  the channels marked in the preview, as the
 *                           procedure's "channels" argument; setting it to
 *                           "" (or NULL) clears the marks
 *   "tta"           boolean test-time flip averaging (the preview's verdict
 *                           follows it)
 */
#ifndef CATDOG_PANEL_H
#define CATDOG_PANEL_H

#include <gtk/gtk.h>

#include "catdog-preview.h"

#define CATDOG_TYPE_PANEL (catdog_panel_get_type ())
G_DECLARE_FINAL_TYPE (CatdogPanel, catdog_panel, CATDOG, PANEL, GtkBox)

/* Columns of the two lists, for tests and accessibility tools. */
enum
{
  CATDOG_MODEL_COL_PATH,      /* string */
  CATDOG_MODEL_COL_NAME,      /* string, "(default)" added to the default */
  CATDOG_MODEL_COL_SUMMARY,   /* string: architecture, or why it is unusable */
  CATDOG_MODEL_COL_INPUT,     /* string: "150x150 RGB" */
  CATDOG_MODEL_COL_SIZE,      /* string: "38.1 MB" */
  CATDOG_MODEL_COL_ACCURACY,  /* string: "76.0%" or "" */
  CATDOG_MODEL_COL_WEIGHT,    /* int: bold for the default */
  CATDOG_MODEL_COL_TOOLTIP,   /* string, markup: summary and path */
  CATDOG_MODEL_N_COLS
};

enum
{
  CATDOG_LAYER_COL_CHECKED,   /* boolean */
  CATDOG_LAYER_COL_NAME,      /* string */
  CATDOG_LAYER_COL_MAPS,      /* int */
  CATDOG_LAYER_COL_SIZE,      /* string: "148x148" */
  CATDOG_LAYER_N_COLS
};

/* models_dir: the user's models folder (catdog-models.h); shipped_model:
 * the model that comes with the plug-in (may be NULL). */
GtkWidget   *catdog_panel_new             (const gchar  *models_dir,
                                           const gchar  *shipped_model);

/* Re-reads the models folder (after an install from elsewhere). */
void         catdog_panel_refresh         (CatdogPanel  *panel);

/* Shows the verdict: the label and a bar for its probability. */
void         catdog_panel_show_result     (CatdogPanel  *panel,
                                           const gchar  *label,
                                           gdouble       probability);

/* The path of the model the panel would use (the default when "file" is
 * NULL), or NULL when there is none (g_free). */
gchar       *catdog_panel_get_model_path  (CatdogPanel  *panel);

GtkTreeView *catdog_panel_get_model_view  (CatdogPanel  *panel);
GtkTreeView *catdog_panel_get_layer_view  (CatdogPanel  *panel);
GtkButton   *catdog_panel_get_all_button  (CatdogPanel  *panel);
GtkButton   *catdog_panel_get_none_button (CatdogPanel  *panel);
/* The heat map's conv layers: ids are the names, except the last conv
 * layer's, "" (the "heatmap-layer" that means the last one). */
GtkComboBox *catdog_panel_get_heatmap_combo (CatdogPanel *panel);
GtkSpinButton *catdog_panel_get_top_spin  (CatdogPanel  *panel);
GtkToggleButton *catdog_panel_get_tta_check (CatdogPanel *panel);

/* The pixels the plug-in would classify, for the preview (copied at
 * preview size; catdog_preview_set_pixels()); or why there are none. */
void         catdog_panel_set_pixels      (CatdogPanel  *panel,
                                           const guint8 *pixels,
                                           gint          width,
                                           gint          height,
                                           gsize         stride,
                                           gint          channels);
void         catdog_panel_set_preview_error (CatdogPanel *panel,
                                             const gchar *message);
CatdogPreview *catdog_panel_get_preview   (CatdogPanel  *panel);

#endif /* CATDOG_PANEL_H */
