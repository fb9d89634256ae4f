/* test_panel.c - the dialog's panel on its own, on a real (virtual)
 * display: it lists the installed and the shipped models and the chosen
 * model's conv layers, the check boxes and All/None drive "layers",
 * switching models updates the list and the heat map's conv layers, the
 * heat map and top-channels widgets follow their properties; a window at
 * its natural size, like the plug-in's dialog, shows a five-conv model's
 * whole model row (Accuracy included) and all its conv layers without
 * scrolling; then a screenshot is saved and checked (size of the window,
 * not blank).
 *   test_panel SCREENSHOT.png */
#include <string.h>

#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "catdog-models.h"
#include "catdog-panel.h"
#include "gcheck.h"

/* A model unlike the article: other layer names, counts and sizes. */
static const char SMALL_SPEC[] =
  "{\"schema\": 1, \"name\": \"small\", \"input\": [64, 64, 3],"
  " \"labels\": [\"cat\", \"dog\"],"
  " \"preprocess\": {\"resize\": \"squash\", \"scale\": 0.00392156862745098,"
  "   \"mean\": [0,0,0], \"std\": [1,1,1]}, \"flatten\": \"hwc\","
  " \"layers\": ["
  "  {\"type\": \"conv2d\", \"name\": \"c1\", \"filters\": 8, \"kernel\": 3,"
  "   \"stride\": 1, \"padding\": \"same\"}, {\"type\": \"relu\", \"name\": \"r1\"},"
  "  {\"type\": \"conv2d\", \"name\": \"c2\", \"filters\": 16, \"kernel\": 3,"
  "   \"stride\": 2, \"padding\": \"same\"}, {\"type\": \"relu\", \"name\": \"r2\"},"
  "  {\"type\": \"conv2d\", \"name\": \"c3\", \"filters\": 16, \"kernel\": 3,"
  "   \"stride\": 2, \"padding\": \"same\"}, {\"type\": \"relu\", \"name\": \"r3\"},"
  "  {\"type\": \"conv2d\", \"name\": \"c4\", \"filters\": 24, \"kernel\": 3,"
  "   \"stride\": 1, \"padding\": \"valid\"}, {\"type\": \"relu\", \"name\": \"r4\"},"
  "  {\"type\": \"gap\", \"name\": \"gap\"},"
  "  {\"type\": \"dense\", \"name\": \"fc\", \"units\": 1},"
  "  {\"type\": \"sigmoid\", \"name\": \"prob\"}]}";

/* Like the shipped model: five conv layers with batch norm, so a long
 * architecture summary and a long layer list. */
static const char FIVE_SPEC[] =
  "{\"schema\": 1, \"name\": \"five-conv-model\", \"input\": [150, 150, 3],"
  " \"labels\": [\"cat\", \"dog\"],"
  " \"preprocess\": {\"resize\": \"squash\", \"scale\": 0.00392156862745098,"
  "   \"mean\": [0,0,0], \"std\": [1,1,1]}, \"flatten\": \"hwc\","
  " \"layers\": ["
#define FIVE_BLOCK(n, f)                                                      \
  "  {\"type\": \"conv2d\", \"name\": \"conv" n "\", \"filters\": " f ","      \
  "   \"kernel\": 3, \"stride\": 1, \"padding\": \"same\", \"bias\": false},"    \
  "  {\"type\": \"batchnorm\", \"name\": \"bn" n "\"},"                        \
  "  {\"type\": \"relu\", \"name\": \"relu" n "\"},"                           \
  "  {\"type\": \"maxpool\", \"name\": \"pool" n "\", \"size\": 2, \"stride\": 2},"
  FIVE_BLOCK ("1", "32") FIVE_BLOCK ("2", "64") FIVE_BLOCK ("3", "128")
  FIVE_BLOCK ("4", "256")
  "  {\"type\": \"conv2d\", \"name\": \"conv5\", \"filters\": 256,"
  "   \"kernel\": 3, \"stride\": 1, \"padding\": \"same\", \"bias\": false},"
  "  {\"type\": \"batchnorm\", \"name\": \"bn5\"},"
  "  {\"type\": \"relu\", \"name\": \"relu5\"},"
  "  {\"type\": \"gap\", \"name\": \"gap\"},"
  "  {\"type\": \"dense\", \"name\": \"fc\", \"units\": 1},"
  "  {\"type\": \"sigmoid\", \"name\": \"prob\"}]}";
#undef FIVE_BLOCK

/* A model from spec with random weights (seed), saved at path. */
static void
save_model (const char *spec,
            guint64     seed,
            const char *path,
            cnn_dtype   dtype,
            const char *extra_json)
{
  cnn_model *m = NULL;

  CHECK_OK (cnn_model_from_spec (spec, &m));
  CHECK_OK (cnn_model_init (m, seed));
  CHECK_OK (cnn_model_save (m, path, dtype, extra_json));
  cnn_model_free (m);
}

static void
pump (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  do
    {
      while (gtk_events_pending ())
        gtk_main_iteration ();
      g_usleep (10000);
    }
  while (g_get_monotonic_time () < end);
}

static gint
n_rows (GtkTreeView *view)
{
  return gtk_tree_model_iter_n_children (gtk_tree_view_get_model (view), NULL);
}

/* Column `col` of row `row` as text (ints printed). */
static gchar *
cell (GtkTreeView *view,
      gint         row,
      gint         col)
{
  GtkTreeModel *model = gtk_tree_view_get_model (view);
  GtkTreeIter   iter;
  GValue        v = G_VALUE_INIT;
  gchar        *text;

  if (! gtk_tree_model_iter_nth_child (model, &iter, NULL, row))
    return g_strdup ("<no row>");
  gtk_tree_model_get_value (model, &iter, col, &v);
  text = G_VALUE_HOLDS_STRING (&v) ? g_value_dup_string (&v)
         : G_VALUE_HOLDS_INT (&v)  ? g_strdup_printf ("%d", g_value_get_int (&v))
         : g_strdup (g_value_get_boolean (&v) ? "TRUE" : "FALSE");
  g_value_unset (&v);
  return text;
}

static gboolean
cell_is (GtkTreeView *view,
         gint         row,
         gint         col,
         const gchar *want)
{
  gchar   *got = cell (view, row, col);
  gboolean ok  = ! strcmp (got, want);

  if (! ok)
    fprintf (stderr, "row %d column %d: \"%s\", expected \"%s\"\n", row, col,
             got, want);
  g_free (got);
  return ok;
}

static gchar *
string_of (GtkWidget   *panel,
           const gchar *property)
{
  gchar *s;

  g_object_get (panel, property, &s, NULL);
  return s;
}

static gint
int_of (GtkWidget   *panel,
        const gchar *property)
{
  gint v;

  g_object_get (panel, property, &v, NULL);
  return v;
}

/* The heat map combo's entries, "name=id,name=id". */
static gchar *
combo_entries (GtkComboBox *combo)
{
  GtkTreeModel *model = gtk_combo_box_get_model (combo);
  GString      *out   = g_string_new (NULL);
  GtkTreeIter   iter;
  gboolean      valid;

  for (valid = gtk_tree_model_get_iter_first (model, &iter); valid;
       valid = gtk_tree_model_iter_next (model, &iter))
    {
      gchar *text, *id;

      gtk_tree_model_get (model, &iter, gtk_combo_box_get_entry_text_column (combo),
                          &text, gtk_combo_box_get_id_column (combo), &id, -1);
      g_string_append_printf (out, "%s%s=%s", out->len ? "," : "", text, id);
      g_free (text);
      g_free (id);
    }
  return g_string_free (out, FALSE);
}

/* The layout defects of issue 5, in a window at its natural size as the
 * plug-in's dialog is: every column of the model list fits (the long
 * architecture gives way), and the layer list shows all its rows. */
static void
check_fits (GtkWidget *panel,
            gint       n_layers)
{
  GtkTreeView       *mv  = catdog_panel_get_model_view (CATDOG_PANEL (panel));
  GtkTreeView       *lv  = catdog_panel_get_layer_view (CATDOG_PANEL (panel));
  GtkTreeViewColumn *acc = gtk_tree_view_get_column (mv, CATDOG_MODEL_COL_ACCURACY - 1);
  GtkAdjustment     *v   = gtk_scrollable_get_vadjustment (GTK_SCROLLABLE (lv));
  GdkRectangle       visible;
  gint               right;

  gtk_tree_view_get_visible_rect (mv, &visible);
  right = gtk_tree_view_column_get_x_offset (acc) +
          gtk_tree_view_column_get_width (acc);
  CHECKF (! strcmp (gtk_tree_view_column_get_title (acc), "Accuracy") &&
          gtk_tree_view_column_get_width (acc) > 0 && right <= visible.width,
          "the Accuracy column ends at %d, the list shows %d pixels", right,
          visible.width);
  CHECK (n_rows (lv) == n_layers);
  CHECKF (gtk_adjustment_get_upper (v) <= gtk_adjustment_get_page_size (v),
          "the layer list is %.0f pixels tall and shows %.0f",
          gtk_adjustment_get_upper (v), gtk_adjustment_get_page_size (v));
}

static gchar *
layers_of (GtkWidget *panel)
{
  gchar *s;

  g_object_get (panel, "layers", &s, NULL);
  return s;
}

static gint
checked_of (GtkWidget *panel)
{
  gint n;

  g_object_get (panel, "n-checked", &n, NULL);
  return n;
}

#define CHECK_LAYERS(panel, want) CHECK_STRING (layers_of (panel), want)

/* The layer list as "name maps size" rows joined by ", ". */
static gchar *
layer_rows (GtkTreeView *view)
{
  GString *out = g_string_new (NULL);

  for (gint row = 0; row < n_rows (view); row++)
    {
      gchar *name = cell (view, row, CATDOG_LAYER_COL_NAME);
      gchar *maps = cell (view, row, CATDOG_LAYER_COL_MAPS);
      gchar *size = cell (view, row, CATDOG_LAYER_COL_SIZE);

      g_string_append_printf (out, "%s%s %s %s", out->len ? ", " : "", name,
                              maps, size);
      g_free (name);
      g_free (maps);
      g_free (size);
    }
  return g_string_free (out, FALSE);
}

/* A window holding a new panel at its natural height, as the plug-in's
 * dialog is; *panel gets the panel. */
static GtkWidget *
panel_window (const gchar  *models,
              const gchar  *shipped,
              GtkWidget   **panel)
{
  GtkWidget *window = gtk_window_new (GTK_WINDOW_TOPLEVEL);

  gtk_window_set_title (GTK_WINDOW (window), "Cat or Dog");
  gtk_window_set_default_size (GTK_WINDOW (window), 640, -1);
  gtk_container_set_border_width (GTK_CONTAINER (window), 12);
  *panel = catdog_panel_new (models, shipped);
  return window;
}

/* What a click on the check box of row `row` does. */
static void
click_check (GtkTreeView *view,
             gint         row)
{
  GtkTreeViewColumn *col   = gtk_tree_view_get_column (view, 0);
  GList             *cells = gtk_cell_layout_get_cells (GTK_CELL_LAYOUT (col));
  gchar             *path  = g_strdup_printf ("%d", row);

  g_signal_emit_by_name (cells->data, "toggled", path);
  g_free (path);
  g_list_free (cells);
}

static void
select_row (GtkTreeView *view,
            gint         row)
{
  GtkTreePath *path = gtk_tree_path_new_from_indices (row, -1);

  gtk_tree_view_set_cursor (view, path, NULL, FALSE);
  gtk_tree_path_free (path);
}

static gint
find_row (GtkTreeView *view,
          gint         col,
          const gchar *prefix)
{
  gint i;

  for (i = 0; i < n_rows (view); i++)
    {
      gchar   *text = cell (view, i, col);
      gboolean hit  = g_str_has_prefix (text, prefix);

      g_free (text);
      if (hit)
        return i;
    }
  return -1;
}

static void
check_screenshot (GtkWidget   *window,
                  const gchar *out)
{
  GdkWindow *gw = gtk_widget_get_window (window);
  gint       w  = gdk_window_get_width (gw);
  gint       h  = gdk_window_get_height (gw);
  GdkPixbuf *shot = gdk_pixbuf_get_from_window (gw, 0, 0, w, h);
  GHashTable *colours = g_hash_table_new (g_direct_hash, g_direct_equal);
  GError    *error = NULL;
  GdkPixbuf *back;
  gint       x, y;

  CHECK (shot != NULL);
  if (! shot)
    return;
  CHECK (gdk_pixbuf_save (shot, out, "png", &error, NULL));
  if (error)
    fprintf (stderr, "%s\n", error->message);
  g_clear_error (&error);

  /* Read back what was written, as a viewer would. */
  back = gdk_pixbuf_new_from_file (out, &error);
  CHECKF (back != NULL, "%s", error ? error->message : "");
  g_clear_error (&error);
  if (back)
    {
      const guint8 *px   = gdk_pixbuf_read_pixels (back);
      gint          nch  = gdk_pixbuf_get_n_channels (back);
      gint          rs   = gdk_pixbuf_get_rowstride (back);

      CHECKF (gdk_pixbuf_get_width (back) == w &&
              gdk_pixbuf_get_height (back) == h,
              "screenshot %dx%d, window %dx%d", gdk_pixbuf_get_width (back),
              gdk_pixbuf_get_height (back), w, h);
      CHECKF (w >= 400 && h >= 400, "window %dx%d", w, h);
      for (y = 0; y < gdk_pixbuf_get_height (back); y++)
        for (x = 0; x < gdk_pixbuf_get_width (back); x++)
          {
            const guint8 *p = px + y * rs + x * nch;

            g_hash_table_add (colours,
                              GUINT_TO_POINTER ((p[0] << 16) | (p[1] << 8) | p[2]));
          }
      /* Text, frames and the bar: far more than a blank or one-colour
       * window. */
      CHECKF (g_hash_table_size (colours) >= 20, "%u colours",
              g_hash_table_size (colours));
      g_object_unref (back);
    }
  g_hash_table_unref (colours);
  g_object_unref (shot);
}

int
main (int    argc,
      char **argv)
{
  gchar       *dir, *models, *small_src, *small, *path, *shipped, *five_src;
  gchar       *five;
  GtkComboBox *hc, *mc;
  GtkSpinButton *spin;
  GError      *error = NULL;
  GtkWidget   *window, *panel;
  GtkTreeView *mv, *lv;
  GFile       *file = NULL;
  gint         row;

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s SCREENSHOT.png\n", argv[0]);
      return 2;
    }
  if (! gtk_init_check (&argc, &argv))
    {
      printf ("SKIP: no display (run under xvfb-run)\n");
      return 77;
    }

  /* The "shipped" model is the article's network written here, so the
   * expectations below do not depend on the model the project ships. */
  dir = g_dir_make_tmp ("catdog-ui-XXXXXX", &error);
  g_assert_no_error (error);
  shipped = g_build_filename (dir, "catdog.safetensors", NULL);
  save_model ("article", 1, shipped, CNN_DTYPE_F16, NULL);
  models    = g_build_filename (dir, "models", NULL);
  small_src = g_build_filename (dir, "small.safetensors", NULL);
  save_model (SMALL_SPEC, 3, small_src, CNN_DTYPE_F32,
              "{\"metrics\": {\"val_accuracy\": 0.625}}");
  small = catdog_models_install (models, small_src, FALSE, &error);
  CHECKF (small != NULL, "%s", error ? error->message : "");
  g_clear_error (&error);
  five_src = g_build_filename (dir, "five.safetensors", NULL);
  save_model (FIVE_SPEC, 5, five_src, CNN_DTYPE_F16,
              "{\"metrics\": {\"val_accuracy\": 0.9332}}");

  window = panel_window (models, shipped, &panel);
  gtk_container_add (GTK_CONTAINER (window), panel);
  gtk_widget_show_all (window);
  pump (300);

  mv = catdog_panel_get_model_view (CATDOG_PANEL (panel));
  lv = catdog_panel_get_layer_view (CATDOG_PANEL (panel));

  /* Both models listed; the shipped one is the default (nothing marked). */
  CHECKF (n_rows (mv) == 2, "%d models listed", n_rows (mv));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_NAME, "small"));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_SUMMARY, "4 conv (8, 16, 16, 24), global pool"));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_INPUT, "64x64 RGB"));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_ACCURACY, "62.50%"));
  CHECK (cell_is (mv, 1, CATDOG_MODEL_COL_PATH, shipped));
  CHECK (cell_is (mv, 1, CATDOG_MODEL_COL_INPUT, "150x150 RGB"));
  CHECK (cell_is (mv, 1, CATDOG_MODEL_COL_SUMMARY, "3 conv (32, 64, 128), dense 512"));
  {
    gchar *name = cell (mv, 1, CATDOG_MODEL_COL_NAME);
    gchar *size = cell (mv, 1, CATDOG_MODEL_COL_SIZE);
    gchar *want = g_format_size (38070730);

    CHECKF (g_str_has_suffix (name, "(default)"), "shipped row \"%s\"", name);
    CHECKF (g_str_has_suffix (size, "MB"), "size \"%s\" (e.g. %s)", size, want);
    g_free (want);
    g_free (size);
    g_free (name);
  }
  g_object_get (panel, "file", &file, NULL);
  CHECK (file == NULL);

  /* The shipped (article) model's conv layers, all checked. */
  CHECK_STRING (layer_rows (lv),
                "conv1 32 148x148, conv2 64 72x72, conv3 128 34x34");
  CHECK_LAYERS (panel, "all");
  CHECK (checked_of (panel) == 3);

  /* The heat map: off; its conv layers are the model's, the last one
   * meaning "the last conv layer" (""), chosen. */
  hc   = catdog_panel_get_heatmap_combo (CATDOG_PANEL (panel));
  spin = catdog_panel_get_top_spin (CATDOG_PANEL (panel));
  CHECK (! gtk_widget_is_sensitive (GTK_WIDGET (hc)));
  CHECK_STRING (combo_entries (hc), "conv1=conv1,conv2=conv2,conv3=");
  CHECK_STRING (string_of (panel, "heatmap-layer"), "");
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (hc), ""));
  g_object_set (panel, "heatmap", TRUE, NULL);
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (hc)));
  gtk_combo_box_set_active_id (hc, "conv2");
  CHECK_STRING (string_of (panel, "heatmap-layer"), "conv2");
  g_object_set (panel, "heatmap-layer", "conv1", NULL);
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (hc), "conv1"));
  /* The last layer by name is the last entry too. */
  g_object_set (panel, "heatmap-layer", "conv3", NULL);
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (hc), ""));
  g_object_set (panel, "heatmap-layer", "conv2", NULL);

  /* Test-time flip averaging: the check box and "tta", both ways. */
  {
    GtkToggleButton *tta = catdog_panel_get_tta_check (CATDOG_PANEL (panel));
    gboolean         on  = TRUE;

    g_object_get (panel, "tta", &on, NULL);
    CHECK (! on && ! gtk_toggle_button_get_active (tta));
    CHECK (gtk_widget_is_sensitive (GTK_WIDGET (tta)));
    gtk_toggle_button_set_active (tta, TRUE);
    g_object_get (panel, "tta", &on, NULL);
    CHECK (on);
    g_object_set (panel, "tta", FALSE, NULL);
    CHECK (! gtk_toggle_button_get_active (tta));
  }
  /* The method: "heatmap-method" and its combo both ways; the conv layer
   * is Grad-CAM's only. */
  mc = catdog_panel_get_method_combo (CATDOG_PANEL (panel));
  CHECK_STRING (string_of (panel, "heatmap-method"), "gradcam");
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (mc), "gradcam"));
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (mc)));
  gtk_combo_box_set_active_id (mc, "occlusion");
  CHECK_STRING (string_of (panel, "heatmap-method"), "occlusion");
  CHECK (! gtk_widget_is_sensitive (GTK_WIDGET (hc)));
  g_object_set (panel, "heatmap-method", "integrated-gradients", NULL);
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (mc), "integrated-gradients"));
  CHECK (! gtk_widget_is_sensitive (GTK_WIDGET (hc)));
  g_object_set (panel, "heatmap", FALSE, NULL);
  CHECK (! gtk_widget_is_sensitive (GTK_WIDGET (mc)));
  g_object_set (panel, "heatmap", TRUE, "heatmap-method", "gradcam", NULL);
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (hc)) && gtk_widget_is_sensitive (GTK_WIDGET (mc)));

  /* Top channels: the spin button and "top", both ways. */
  CHECK (int_of (panel, "top") == 0 && gtk_spin_button_get_value_as_int (spin) == 0);
  g_object_set (panel, "top", 3, NULL);
  CHECK (gtk_spin_button_get_value_as_int (spin) == 3);
  gtk_spin_button_set_value (spin, 5);
  CHECK (int_of (panel, "top") == 5);
  /* It also drives the preview: usable with feature maps off too. */
  g_object_set (panel, "feature-maps", FALSE, NULL);
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (spin)));
  g_object_set (panel, "feature-maps", TRUE, NULL);
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (spin)));

  /* Check boxes, None, All, and Enter on a row. */
  click_check (lv, 1);
  CHECK (cell_is (lv, 1, CATDOG_LAYER_COL_CHECKED, "FALSE"));
  CHECK_LAYERS (panel, "conv1,conv3");
  CHECK (checked_of (panel) == 2);
  gtk_button_clicked (catdog_panel_get_none_button (CATDOG_PANEL (panel)));
  CHECK_LAYERS (panel, "");
  CHECK (checked_of (panel) == 0);
  gtk_button_clicked (catdog_panel_get_all_button (CATDOG_PANEL (panel)));
  CHECK_LAYERS (panel, "all");
  CHECK (checked_of (panel) == 3);
  {
    GtkTreePath *p = gtk_tree_path_new_from_indices (2, -1);

    gtk_tree_view_row_activated (lv, p, gtk_tree_view_get_column (lv, 1));
    gtk_tree_path_free (p);
  }
  CHECK_LAYERS (panel, "conv1,conv2");
  /* Set from outside (GIMP's remembered values). */
  g_object_set (panel, "layers", "conv2", NULL);
  CHECK (cell_is (lv, 0, CATDOG_LAYER_COL_CHECKED, "FALSE"));
  CHECK (cell_is (lv, 1, CATDOG_LAYER_COL_CHECKED, "TRUE"));
  CHECK (cell_is (lv, 2, CATDOG_LAYER_COL_CHECKED, "FALSE"));
  CHECK (checked_of (panel) == 1);

  /* Another model: its own layers (none of the chosen names: all). */
  row = find_row (mv, CATDOG_MODEL_COL_NAME, "small");
  select_row (mv, row);
  pump (50);
  CHECK_STRING (layer_rows (lv),
                "c1 8 64x64, c2 16 32x32, c3 16 16x16, c4 24 14x14");
  CHECK_LAYERS (panel, "all");
  /* The heat map's layers too; conv2 is not in this model: the last. */
  CHECK_STRING (combo_entries (hc), "c1=c1,c2=c2,c3=c3,c4=");
  CHECK_STRING (string_of (panel, "heatmap-layer"), "");
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (hc), ""));
  g_object_set (panel, "heatmap-layer", "c2", NULL);
  CHECK (! g_strcmp0 (gtk_combo_box_get_active_id (hc), "c2"));
  g_object_get (panel, "file", &file, NULL);
  path = file ? g_file_get_path (file) : NULL;
  CHECKF (! g_strcmp0 (path, small), "file %s, expected %s", path, small);
  g_free (path);
  g_clear_object (&file);
  click_check (lv, 0);
  CHECK_LAYERS (panel, "c2,c3,c4");

  /* Made the default: marked in the list, the row means "default". */
  CHECK (catdog_models_set_default (models, small, NULL));
  g_object_set (panel, "file", NULL, NULL);
  catdog_panel_refresh (CATDOG_PANEL (panel));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_NAME, "small (default)"));
  CHECK (cell_is (mv, 1, CATDOG_MODEL_COL_WEIGHT, "400"));
  CHECK (n_rows (lv) == 4);
  CHECK (catdog_models_set_default (models, NULL, NULL));

  /* Back to the article model; the layers of the last choice carry over
   * by name where they exist. */
  g_object_set (panel, "layers", "conv1,conv3", NULL);
  select_row (mv, find_row (mv, CATDOG_MODEL_COL_PATH, shipped));
  catdog_panel_refresh (CATDOG_PANEL (panel));
  pump (50);
  CHECK (n_rows (lv) == 3);
  CHECK_LAYERS (panel, "conv1,conv3");

  /* Maps options follow the properties, both ways. */
  g_object_set (panel, "feature-maps", TRUE, "maps-style", "channels",
                "colormap", "viridis", NULL);
  {
    gboolean maps;
    gchar   *style, *cmap;

    g_object_get (panel, "feature-maps", &maps, "maps-style", &style,
                  "colormap", &cmap, NULL);
    CHECK (maps && ! strcmp (style, "channels") && ! strcmp (cmap, "viridis"));
    CHECK (gtk_widget_is_sensitive (GTK_WIDGET (lv)));
    g_free (style);
    g_free (cmap);
  }
  /* The list picks the preview's layer: usable with feature maps off. */
  g_object_set (panel, "feature-maps", FALSE, NULL);
  CHECK (gtk_widget_is_sensitive (GTK_WIDGET (lv)));
  g_object_set (panel, "feature-maps", TRUE, "maps-style", "mosaic", NULL);

  gtk_widget_destroy (window);

  /* A dialog opened anew with a model like the shipped one, the default:
   * it fits whole.  A picture of it as a user sees it after a run. */
  five = catdog_models_install (models, five_src, FALSE, &error);
  CHECKF (five != NULL, "%s", error ? error->message : "");
  g_clear_error (&error);
  CHECK (catdog_models_set_default (models, five, NULL));
  window = panel_window (models, shipped, &panel);
  g_object_set (panel, "feature-maps", TRUE, "layers", "conv1,conv3,conv4,conv5",
                "maps-style", "channels", "top", 3, "heatmap", TRUE, NULL);
  gtk_container_add (GTK_CONTAINER (window), panel);
  gtk_widget_show_all (window);
  catdog_panel_show_result (CATDOG_PANEL (panel), "dog", 0.873);
  pump (400);
  mv = catdog_panel_get_model_view (CATDOG_PANEL (panel));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_NAME, "five-conv-model (default)"));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_SUMMARY,
                  "5 conv (32, 64, 128, 256, 256), global pool, batch norm"));
  CHECK (cell_is (mv, 0, CATDOG_MODEL_COL_ACCURACY, "93.32%"));
  check_fits (panel, 5);
  /* The settings keep to the window's default width (640, less its
   * borders); the preview stands beside them, on a 1280-pixel screen. */
  {
    GList *parts = gtk_container_get_children (GTK_CONTAINER (panel));
    gint   settings = parts ? gtk_widget_get_allocated_width (parts->data) : 0;

    CHECKF (settings > 0 && settings <= 640 - 24,
            "the settings grew to %d pixels wide", settings);
    g_list_free (parts);
  }
  CHECKF (gdk_window_get_width (gtk_widget_get_window (window)) <= 1280,
          "the window grew to %d pixels wide, wider than the screen",
          gdk_window_get_width (gtk_widget_get_window (window)));
  check_screenshot (window, argv[1]);

  gtk_widget_destroy (window);
  g_unlink (five);
  g_unlink (five_src);
  path = g_build_filename (models, "default", NULL);
  g_unlink (path);
  g_free (path);
  g_unlink (small);
  g_unlink (small_src);
  g_rmdir (models);
  g_rmdir (dir);
  g_free (small);
  g_free (small_src);
  g_free (five);
  g_free (five_src);
  g_free (models);
  g_free (shipped);
  g_free (dir);
  return check_done ("test_panel");
}
