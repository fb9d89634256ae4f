/* taps.c - finding a model's conv layers (the feature-map taps) by name,
 * for the feature maps (maps.c) and the heat map (heatmap.c) alike.
 * Calls only errors.c. */
#include "catdog-plugin.h"

/* "conv1, conv2, conv3" (g_free). */
static gchar *
conv_layer_names (const cnn_net *net)
{
  GString *known = g_string_new (NULL);

  for (gint t = 0; t < cnn_net_tap_count (net); t++)
    {
      const cnn_layer *layer = NULL;
      cnn_tensor_view  view;

      if (cnn_net_tap (net, t, &view, &layer) == CNN_OK)
        g_string_append_printf (known, "%s%s", known->len ? ", " : "",
                                layer->name);
    }
  return g_string_free (known, FALSE);
}

void
catdog_set_no_layer_error (const cnn_net  *net,
                           const gchar    *name,
                           GError        **error)
{
  gchar *known = conv_layer_names (net);

  g_set_error (error, CATDOG_ERROR, 0,
               _("The model has no conv layer called \"%s\" (its conv "
                 "layers: %s)."), name, known);
  g_free (known);
}

gboolean
catdog_find_tap (const cnn_net  *net,
                 const gchar    *name,
                 gint           *index,
                 GError        **error)
{
  gint n_taps = cnn_net_tap_count (net);

  if (n_taps <= 0)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("The model has no conv layer."));
      return FALSE;
    }
  if (! name || ! *name)
    {
      *index = n_taps - 1;
      return TRUE;
    }
  for (gint t = 0; t < n_taps; t++)
    {
      const cnn_layer *layer = NULL;
      cnn_tensor_view  view;

      if (cnn_net_tap (net, t, &view, &layer) == CNN_OK &&
          ! strcmp (layer->name, name))
        {
          *index = t;
          return TRUE;
        }
    }
  catdog_set_no_layer_error (net, name, error);
  return FALSE;
}
