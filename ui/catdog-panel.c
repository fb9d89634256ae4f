/* catdog-panel.c - the dialog's contents (see catdog-panel.h): the
 * GObject, its properties, and the layout of its parts, each in a file
 * of its own (catdog-panel-private.h lists them). */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

static GParamSpec *props[N_PROPS];

G_DEFINE_TYPE (CatdogPanel, catdog_panel, GTK_TYPE_BOX)

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
catdog_panel_default_path (CatdogPanel *panel)
{
  return default_model_path (panel);
}

gchar *
catdog_panel_get_model_path (CatdogPanel *panel)
{
  g_return_val_if_fail (CATDOG_IS_PANEL (panel), NULL);
  return panel->file ? g_file_get_path (panel->file)
                     : default_model_path (panel);
}

void
catdog_panel_notify (CatdogPanel     *panel,
                     CatdogPanelProp  prop)
{
  g_object_notify_by_pspec (G_OBJECT (panel), props[prop]);
}

/* ------------------------------------------------------------------ */
/* Construction                                                        */
/* ------------------------------------------------------------------ */

GtkWidget *
catdog_panel_framed (const gchar *title,
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

GtkCellRenderer *
catdog_panel_add_text_column (GtkTreeView *view,
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
GtkWidget *
catdog_panel_scrolled (GtkWidget *child,
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

static void
catdog_panel_constructed (GObject *object)
{
  CatdogPanel *panel = CATDOG_PANEL (object);
  GtkWidget   *result, *row, *side, *settings, *preview;

  G_OBJECT_CLASS (catdog_panel_parent_class)->constructed (object);

  /* The model on top; below it the feature maps, with the heat map and
   * the result beside them, so the dialog stays short enough for small
   * screens. */
  gtk_orientable_set_orientation (GTK_ORIENTABLE (panel),
                                  GTK_ORIENTATION_HORIZONTAL);
  gtk_box_set_spacing (GTK_BOX (panel), 18);
  settings = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_box_pack_start (GTK_BOX (settings),
                      catdog_panel_build_model_section (
                        panel, catdog_panel_build_buttons (panel)),
                      FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (settings), catdog_panel_build_tta_check (panel),
                      FALSE, FALSE, 0);
  row  = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 18);
  side = gtk_box_new (GTK_ORIENTATION_VERTICAL, 12);
  gtk_box_pack_start (GTK_BOX (row),
                      catdog_panel_build_maps_section (
                        panel, catdog_panel_build_layer_list (panel)),
                      TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (side), catdog_panel_build_heatmap_section (panel),
                      FALSE, FALSE, 0);
  result = catdog_panel_build_result_section (panel);
  gtk_box_pack_start (GTK_BOX (side), result, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (row), side, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (settings), row, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (panel), settings, TRUE, TRUE, 0);
  /* The preview at the right, as tall as the settings. */
  preview = catdog_panel_build_preview_section (panel);
  gtk_box_pack_start (GTK_BOX (panel), preview, FALSE, FALSE, 0);
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
  gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (panel->tta_check),
                                panel->tta);
  panel->syncing = FALSE;
  catdog_panel_sync_sensitivity (panel);
  catdog_panel_refresh (panel);
}

/* A string property changed: stored and notified. */
static void
set_string (CatdogPanel  *panel,
            gchar       **field,
            const gchar  *s,
            GParamSpec   *pspec)
{
  g_free (*field);
  *field = g_strdup (s);
  g_object_notify_by_pspec (G_OBJECT (panel), pspec);
}

/* A boolean property: stored, notified, shown in its check box (check;
 * NULL before construction). */
static void
set_check (CatdogPanel  *panel,
           gboolean     *field,
           GtkWidget    *check,
           const GValue *value,
           GParamSpec   *pspec)
{
  if (*field == g_value_get_boolean (value))
    return;
  *field = g_value_get_boolean (value);
  g_object_notify_by_pspec (G_OBJECT (panel), pspec);
  if (check)
    {
      panel->syncing = TRUE;
      gtk_toggle_button_set_active (GTK_TOGGLE_BUTTON (check), *field);
      panel->syncing = FALSE;
      catdog_panel_sync_sensitivity (panel);
    }
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
      catdog_panel_set_file (panel, g_value_get_object (value));
      if (panel->model_view)
        catdog_panel_refresh (panel);
      break;
    case PROP_LAYERS:
      s = g_value_get_string (value);
      if (! g_strcmp0 (s, panel->layers))
        break;
      set_string (panel, &panel->layers, s ? s : "all", pspec);
      if (panel->layer_view)
        catdog_panel_update_layers (panel);
      break;
    case PROP_FEATURE_MAPS:
      set_check (panel, &panel->feature_maps, panel->maps_check, value, pspec);
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
        set_string (panel, field, s, pspec);
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
      set_check (panel, &panel->heatmap, panel->heatmap_check, value, pspec);
      break;
    case PROP_CHANNELS:
      catdog_panel_set_channels (panel, g_value_get_string (value));
      break;
    case PROP_TTA:
      set_check (panel, &panel->tta, panel->tta_check, value, pspec);
      break;
    case PROP_HEATMAP_LAYER:
      s = g_value_get_string (value);
      if (! g_strcmp0 (s ? s : "", panel->heatmap_layer))
        break;
      set_string (panel, &panel->heatmap_layer, s ? s : "", pspec);
      if (panel->heatmap_combo)
        catdog_panel_sync_heatmap_combo (panel);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* Where the panel keeps each property that is a plain field (all but
 * "file" and "n-checked"); NULL for the others. */
static gpointer
field_of (CatdogPanel *panel,
          guint        prop_id)
{
  static const glong offsets[N_PROPS] = {
    [PROP_MODELS_DIR]    = G_STRUCT_OFFSET (CatdogPanel, models_dir),
    [PROP_SHIPPED_MODEL] = G_STRUCT_OFFSET (CatdogPanel, shipped_model),
    [PROP_LAYERS]        = G_STRUCT_OFFSET (CatdogPanel, layers),
    [PROP_FEATURE_MAPS]  = G_STRUCT_OFFSET (CatdogPanel, feature_maps),
    [PROP_MAPS_STYLE]    = G_STRUCT_OFFSET (CatdogPanel, maps_style),
    [PROP_COLORMAP]      = G_STRUCT_OFFSET (CatdogPanel, colormap),
    [PROP_TOP]           = G_STRUCT_OFFSET (CatdogPanel, top),
    [PROP_HEATMAP]       = G_STRUCT_OFFSET (CatdogPanel, heatmap),
    [PROP_HEATMAP_LAYER] = G_STRUCT_OFFSET (CatdogPanel, heatmap_layer),
    [PROP_CHANNELS]      = G_STRUCT_OFFSET (CatdogPanel, channels),
    [PROP_TTA]           = G_STRUCT_OFFSET (CatdogPanel, tta),
  };

  return prop_id < N_PROPS && offsets[prop_id]
         ? G_STRUCT_MEMBER_P (panel, offsets[prop_id]) : NULL;
}

static void
catdog_panel_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  CatdogPanel *panel = CATDOG_PANEL (object);
  gpointer     field = field_of (panel, prop_id);
  gint         total;

  if (prop_id == PROP_FILE)
    g_value_set_object (value, panel->file);
  else if (prop_id == PROP_N_CHECKED)
    g_value_set_int (value,
                     panel->conv ? catdog_panel_count_checked (panel, &total,
                                                               NULL)
                                 : 0);
  else if (field && G_VALUE_HOLDS_STRING (value))
    g_value_set_string (value, *(gchar **) field);
  else if (field && G_VALUE_HOLDS_BOOLEAN (value))
    g_value_set_boolean (value, *(gboolean *) field);
  else if (field && G_VALUE_HOLDS_INT (value))
    g_value_set_int (value, *(gint *) field);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
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
  g_free (panel->channels);
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
  props[PROP_CHANNELS] =
    g_param_spec_string ("channels", NULL, NULL, "", rw);
  props[PROP_TTA] =
    g_param_spec_boolean ("tta", NULL, NULL, FALSE, rw);
  g_object_class_install_properties (object_class, N_PROPS, props);
}

static void
catdog_panel_init (CatdogPanel *panel)
{
  panel->layers     = g_strdup ("all");
  panel->maps_style = g_strdup ("mosaic");
  panel->colormap   = g_strdup ("gray");
  panel->heatmap_layer = g_strdup ("");
  panel->channels   = g_strdup ("");
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

/* The widgets a test drives (catdog-panel.h). */
#define CATDOG_PANEL_WIDGET(Type, CAST, getter, field) \
  Type *catdog_panel_get_##getter (CatdogPanel *panel) \
  {                                                      \
    g_return_val_if_fail (CATDOG_IS_PANEL (panel), NULL); \
    return CAST (panel->field);                          \
  }

CATDOG_PANEL_WIDGET (GtkTreeView,   GTK_TREE_VIEW,   model_view,    model_view)
CATDOG_PANEL_WIDGET (GtkTreeView,   GTK_TREE_VIEW,   layer_view,    layer_view)
CATDOG_PANEL_WIDGET (GtkButton,     GTK_BUTTON,      all_button,    all_button)
CATDOG_PANEL_WIDGET (GtkButton,     GTK_BUTTON,      none_button,   none_button)
CATDOG_PANEL_WIDGET (GtkComboBox,   GTK_COMBO_BOX,   heatmap_combo, heatmap_combo)
CATDOG_PANEL_WIDGET (GtkSpinButton, GTK_SPIN_BUTTON, top_spin,      top_spin)
CATDOG_PANEL_WIDGET (GtkToggleButton, GTK_TOGGLE_BUTTON, tta_check, tta_check)
