/* filters.c - plug-in-catdog-filters, Filters > Classify > What the
 * Filters Look For...: pictures of what channels of the model's conv
 * layers respond to (activation maximisation, the core's
 * cnn_filters_run()), opened as a new image with one layer per channel in
 * one layer group per conv layer. */
#include <libgimp/gimpui.h>

#include "catdog-plugin.h"

/* Default channels per conv layer when neither "channels" nor "top" is
 * given otherwise. */
#define CATDOG_FILTERS_TOP 8

typedef struct
{
  gint    first;     /* pictures done before this layer */
  gint    all;       /* pictures in the whole run */
  gint    n;         /* of this layer */
} CatdogFiltersProgress;

/* A non-zero return stops the core: GIMP refuses the update once the
 * user has cancelled the run. */
static int
catdog_filters_progress (void *user,
                         int   done,
                         int   total)
{
  CatdogFiltersProgress *p = user;
  gdouble                f;

  f = (p->first + (gdouble) p->n * done / (total > 0 ? total : 1)) /
      (p->all > 0 ? p->all : 1);
  return ! gimp_progress_update (CLAMP (f, 0.0, 1.0));
}

/* "3,7,10-15" into chosen[0 .. c - 1]. */
static gboolean
catdog_filters_parse_channels (const gchar  *text,
                               const gchar  *layer,
                               gint          c,
                               gboolean     *chosen,
                               GError      **error)
{
  const gchar *s = text;

  for (;;)
    {
      gchar  *end;
      gint64  a, b;

      if (! g_ascii_isdigit (*s))
        goto bad;
      a = g_ascii_strtoll (s, &end, 10);
      b = a;
      s = end;
      if (*s == '-')
        {
          s++;
          if (! g_ascii_isdigit (*s))
            goto bad;
          b = g_ascii_strtoll (s, &end, 10);
          s = end;
          if (b < a)
            goto bad;
        }
      if (b >= c)
        {
          gchar *number = g_strdup_printf ("%" G_GINT64_FORMAT, b);

          g_set_error (error, CATDOG_ERROR, 0,
                       _("Channel %s does not exist: %s has channels 0 to "
                         "%d."), number, layer, c - 1);
          g_free (number);
          return FALSE;
        }
      for (gint64 k = a; k <= b; k++)
        chosen[k] = TRUE;
      if (*s == '\0')
        return TRUE;
      if (*s != ',')
        goto bad;
      s++;
    }

bad:
  g_set_error (error, CATDOG_ERROR, 0,
               _("\"%s\" is not a list of channels such as 3,7,10-15."),
               text);
  return FALSE;
}

/* The conv layers named in `layers` ("all", or names separated by
 * commas), in network order, as indices into m->layers. */
static GArray *
catdog_filters_layers (const cnn_model  *m,
                       const gchar      *layers,
                       GError          **error)
{
  GArray   *out    = g_array_new (FALSE, FALSE, sizeof (gint));
  gboolean  chosen[CNN_MAX_LAYERS] = { FALSE };
  gchar   **names;

  names = g_strsplit (layers && *layers ? layers : "all", ",", -1);
  for (gint i = 0; names[i]; i++)
    {
      gchar *name = g_strstrip (names[i]);
      gint   index;

      if (! strcmp (name, "all"))
        {
          for (gint l = 0; l < m->n_layers; l++)
            if (m->layers[l].type == CNN_LAYER_CONV2D)
              chosen[l] = TRUE;
          continue;
        }
      if (cnn_model_find_conv (m, name, &index, NULL) != CNN_OK)
        {
          g_set_error (error, CATDOG_ERROR, 0, "%s", cnn_last_error ());
          g_strfreev (names);
          g_array_unref (out);
          return NULL;
        }
      chosen[index] = TRUE;
    }
  g_strfreev (names);
  for (gint l = 0; l < m->n_layers; l++)
    if (chosen[l])
      g_array_append_val (out, l);
  if (out->len == 0)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The model has no conv layer to draw."));
      g_array_unref (out);
      return NULL;
    }
  return out;
}

/* The channels of conv layer `layer` to draw: those of `channels`, else
 * the `top` (0: all) of the largest gain. */
static GArray *
catdog_filters_channels (const cnn_model  *m,
                         gint              layer,
                         const gchar      *channels,
                         gint              top,
                         GError          **error)
{
  const gint  c     = m->layers[layer].out_c;
  GArray     *out   = g_array_new (FALSE, FALSE, sizeof (gint));

  if (channels && *channels)
    {
      gboolean *chosen = g_new0 (gboolean, c);

      if (! catdog_filters_parse_channels (channels, m->layers[layer].name,
                                           c, chosen, error))
        {
          g_free (chosen);
          g_array_unref (out);
          return NULL;
        }
      for (gint k = 0; k < c; k++)
        if (chosen[k])
          g_array_append_val (out, k);
      g_free (chosen);
    }
  else
    {
      gfloat  *gains = g_new (gfloat, c);
      gdouble *score = g_new (gdouble, c);
      gint    *order = g_new (gint, c);
      gint     want  = top > 0 && top < c ? top : c;

      if (cnn_conv_channel_gains (m, layer, gains) != CNN_OK)
        {
          catdog_set_core_error (error, CNN_ERR_MODEL, m->layers[layer].name);
          g_clear_pointer (&out, g_array_unref);
        }
      else
        {
          for (gint k = 0; k < c; k++)
            score[k] = gains[k];
          cnn_rank (score, c, order);
          g_array_append_vals (out, order, want);
        }
      g_free (gains);
      g_free (score);
      g_free (order);
    }
  return out;
}

/* Adds one picture as a layer of group at position `position`. */
static gboolean
catdog_filters_add_layer (GimpImage    *image,
                          GimpLayer    *group,
                          gint          position,
                          const gchar  *name,
                          const guint8 *rgb,
                          gint          width,
                          gint          height)
{
  GimpLayer  *layer;
  GeglBuffer *buffer;

  layer = gimp_layer_new (image, name, width, height, GIMP_RGB_IMAGE, 100.0,
                          GIMP_LAYER_MODE_NORMAL);
  if (! layer || ! gimp_image_insert_layer (image, layer, group, position))
    return FALSE;
  buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));
  gegl_buffer_set (buffer, GEGL_RECTANGLE (0, 0, width, height), 0,
                   babl_format ("R'G'B' u8"), rgb, GEGL_AUTO_ROWSTRIDE);
  g_object_unref (buffer);
  return TRUE;
}

/* The whole run after the arguments: the new image, or NULL with *error
 * set (*cancelled when the user stopped it). */
static GimpImage *
catdog_filters_draw (GFile        *model_file,
                     const gchar  *layers,
                     const gchar  *channels,
                     gint          top,
                     gint          steps,
                     gint          size,
                     gint          seed,
                     gboolean     *calling_error,
                     gboolean     *cancelled,
                     GError      **error)
{
  cnn_model              *m       = NULL;
  gchar                  *path    = g_file_get_path (model_file);
  GArray                 *chosen  = NULL;
  GPtrArray              *picks   = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  GimpImage              *image   = NULL;
  CatdogFiltersProgress   prog    = { 0, 0, 0 };
  cnn_filters_options     o;
  cnn_status              st;
  gint                    width, height;
  guint8                 *rgb     = NULL;

  *calling_error = FALSE;
  *cancelled     = FALSE;
  if (! path)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The model must be a local file."));
      *calling_error = TRUE;
      goto out;
    }
  if ((st = cnn_model_load (path, &m)) != CNN_OK)
    {
      catdog_set_core_error (error, st, path);
      goto out;
    }
  if (size != 0 && size < 16)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The size must be 0 (the model's input size) or 16 to "
                     "%d pixels, not %d."), CNN_MAX_DIM, size);
      *calling_error = TRUE;
      goto out;
    }
  if (! (chosen = catdog_filters_layers (m, layers, error)))
    {
      *calling_error = TRUE;
      goto out;
    }
  for (guint i = 0; i < chosen->len; i++)
    {
      GArray *ch = catdog_filters_channels (m, g_array_index (chosen, gint, i),
                                            channels, top, error);
      if (! ch)
        {
          *calling_error = TRUE;
          goto out;
        }
      g_ptr_array_add (picks, ch);
      prog.all += (gint) ch->len;
    }

  cnn_filters_options_init (&o);
  o.steps         = steps;
  o.size          = size;
  o.seed          = (uint64_t) seed;
  o.progress      = catdog_filters_progress;
  o.progress_user = &prog;
  o.layer         = g_array_index (chosen, gint, 0);
  if ((st = cnn_filters_picture_size (m, &o, &width, &height)) != CNN_OK)
    {
      catdog_set_core_error (error, st, path);
      goto out;
    }

  image = gimp_image_new (width, height, GIMP_RGB);
  gimp_image_undo_disable (image);
  for (guint i = 0; i < chosen->len; i++)
    {
      GArray      *ch    = g_ptr_array_index (picks, i);
      const gint   layer = g_array_index (chosen, gint, i);
      const gchar *name  = m->layers[layer].name;
      const gsize  pic   = (gsize) width * height * 3;
      GimpLayer   *group;
      gchar       *text;

      if (ch->len == 0)
        continue;
      text = g_strdup_printf (_("What the Filters Look For: %s"), name);
      gimp_progress_set_text (text);
      g_free (text);
      o.layer = layer;
      prog.n  = (gint) ch->len;
      rgb = g_try_malloc (pic * ch->len);
      if (! rgb)
        {
          g_set_error (error, CATDOG_ERROR, 0, _("Out of memory."));
          goto fail;
        }
      if ((st = cnn_filters_run (m, &o, (const int *) ch->data, (int) ch->len,
                                 rgb, pic * ch->len)) != CNN_OK)
        {
          *cancelled = st == CNN_ERR_INTERRUPTED;
          catdog_set_core_error (error, st, name);
          goto fail;
        }
      /* TRANSLATORS: a layer group: the conv layer's name, how many of
       * its channels are drawn, how many it has */
      text  = g_strdup_printf (_("%s - %d of %d filters"), name, (gint) ch->len,
                               m->layers[layer].out_c);
      group = GIMP_LAYER (gimp_group_layer_new (image, text));
      g_free (text);
      if (! group || ! gimp_image_insert_layer (image, group, NULL, (gint) i))
        {
          g_set_error (error, CATDOG_ERROR, 0, "%s", catdog_pdb_error ());
          goto fail;
        }
      for (guint k = 0; k < ch->len; k++)
        {
          gchar    *lname = g_strdup_printf ("%s #%d", name,
                                             g_array_index (ch, gint, k));
          gboolean  ok    = catdog_filters_add_layer (image, group, (gint) k,
                                                      lname, rgb + pic * k,
                                                      width, height);
          g_free (lname);
          if (! ok)
            {
              g_set_error (error, CATDOG_ERROR, 0, "%s", catdog_pdb_error ());
              goto fail;
            }
        }
      g_clear_pointer (&rgb, g_free);
      prog.first += (gint) ch->len;
    }
  gimp_image_undo_enable (image);
  gimp_progress_update (1.0);
  goto out;

fail:
  gimp_image_delete (image);
  image = NULL;
out:
  g_free (rgb);
  g_ptr_array_unref (picks);
  if (chosen)
    g_array_unref (chosen);
  cnn_model_free (m);
  g_free (path);
  return image;
}

static GimpValueArray *
catdog_filters_run (GimpProcedure        *procedure,
                    GimpProcedureConfig  *config,
                    gpointer              run_data)
{
  GimpValueArray *values;
  GimpRunMode     run_mode;
  GFile          *model_file = NULL;
  gchar          *layers     = NULL;
  gchar          *channels   = NULL;
  gint            top, steps, size, seed;
  gboolean        calling_error, cancelled;
  GimpImage      *image;
  GError         *error      = NULL;

  g_object_get (config, "run-mode", &run_mode, NULL);
  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      GtkWidget *dialog;
      gboolean   go;

      gimp_ui_init ("catdog");
      dialog = gimp_procedure_dialog_new (procedure, config,
                                          _("What the Filters Look For"));
      gimp_procedure_dialog_fill (GIMP_PROCEDURE_DIALOG (dialog), NULL);
      go = gimp_procedure_dialog_run (GIMP_PROCEDURE_DIALOG (dialog));
      gtk_widget_destroy (dialog);
      if (! go)
        return gimp_procedure_new_return_values (procedure, GIMP_PDB_CANCEL,
                                                 NULL);
    }

  g_object_get (config,
                "model",    &model_file,
                "layers",   &layers,
                "channels", &channels,
                "top",      &top,
                "steps",    &steps,
                "size",     &size,
                "seed",     &seed,
                NULL);
  if (! model_file)
    model_file = catdog_default_model ();

  gegl_init (NULL, NULL);
  gimp_progress_init (_("What the Filters Look For"));
  image = catdog_filters_draw (model_file, layers, channels, top, steps, size,
                               seed, &calling_error, &cancelled, &error);
  gegl_exit ();
  g_object_unref (model_file);
  g_free (layers);
  g_free (channels);

  if (! image)
    return gimp_procedure_new_return_values (
      procedure,
      cancelled ? GIMP_PDB_CANCEL
                : calling_error ? GIMP_PDB_CALLING_ERROR
                                : GIMP_PDB_EXECUTION_ERROR,
      error);

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      gimp_display_new (image);
      gimp_displays_flush ();
    }
  values = gimp_procedure_new_return_values (procedure, GIMP_PDB_SUCCESS,
                                             NULL);
  GIMP_VALUES_SET_IMAGE (values, 1, image);
  return values;
}

GimpProcedure *
catdog_create_filters_procedure (GimpPlugIn  *plug_in,
                                 const gchar *name)
{
  GimpProcedure *procedure;

  procedure = gimp_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                  catdog_filters_run, NULL, NULL);
  gimp_procedure_set_menu_label (procedure,
                                 _("What the _Filters Look For..."));
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Classify");
  gimp_procedure_set_documentation (
    procedure,
    _("Draw what the filters of the Cat or Dog network look for"),
    _("For channels of the model's conv layers, optimises a picture that "
      "drives the channel's mean activation (before its ReLU) as high as "
      "it goes, ahead of the rest of its layer, and opens the pictures as "
      "a new image: one layer per channel, one layer group per conv "
      "layer.  Without \"channels\", each layer's \"top\" channels of the "
      "largest gain (weight norm times the batch-norm's scale) are "
      "drawn."),
    name);
  gimp_procedure_set_attribution (procedure, "gimp-catdog developers",
                                  "gimp-catdog developers", "2026");
  gimp_procedure_add_enum_argument (procedure, "run-mode", _("Run mode"),
                                    _("The run mode"), GIMP_TYPE_RUN_MODE,
                                    GIMP_RUN_INTERACTIVE, G_PARAM_READWRITE);
  gimp_procedure_add_file_argument (procedure, "model", _("Mo_del"),
                                    _("Model file (.safetensors); unset: the "
                                      "installed default model"),
                                    GIMP_FILE_CHOOSER_ACTION_ANY,
                                    TRUE, NULL, G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "layers", _("Conv la_yers"),
                                      _("Comma-separated conv layer names "
                                        "(e.g. \"conv1,conv3\"), or \"all\""),
                                      "all", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (procedure, "channels",
                                      _("C_hannels"),
                                      _("The channels to draw in each layer, "
                                        "from 0 (e.g. \"3,7,10-15\"); unset "
                                        "or empty: the top ones"),
                                      NULL, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "top", _("To_p channels"),
                                   _("Without channels: each layer's N "
                                     "channels of the largest gain; 0: all"),
                                   0, CNN_MAX_CHANNELS, CATDOG_FILTERS_TOP,
                                   G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "steps", _("_Steps"),
                                   _("Optimisation steps per picture"),
                                   1, 100000, 256, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "size", _("Si_ze"),
                                   _("Side of the pictures in pixels; 0: the "
                                     "model's input size"),
                                   0, CNN_MAX_DIM, 0, G_PARAM_READWRITE);
  gimp_procedure_add_int_argument (procedure, "seed", _("S_eed"),
                                   _("The start and the random transforms"),
                                   0, G_MAXINT, 0, G_PARAM_READWRITE);
  gimp_procedure_add_image_return_value (procedure, "image", _("Image"),
                                         _("The new image of the pictures"),
                                         FALSE, G_PARAM_READWRITE);
  return procedure;
}
