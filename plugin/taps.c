/* taps.c - finding a model's conv layers (the feature-map taps) by name,
 * for the feature maps (maps.c) and the heat map (heatmap.c) alike.  The
 * rule itself is the core's (cnn_model_find_conv, cnn_model_conv_names);
 * this file turns it into the plug-in's translated GErrors.
 * Calls only errors.c. */
#include "catdog-plugin.h"

void
catdog_set_no_layer_error (const cnn_net  *net,
                           const gchar    *name,
                           GError        **error)
{
  char *known = NULL; /* "conv1, conv2, conv3" */

  cnn_model_conv_names (cnn_net_model (net), ", ", &known);
  g_set_error (error, CATDOG_ERROR, 0,
               _("The model has no conv layer called \"%s\" (its conv "
                 "layers: %s)."), name, known ? known : "");
  free (known);
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
  /* No name: the last conv layer. */
  if (cnn_model_find_conv (cnn_net_model (net), (name && *name) ? name : NULL,
                           NULL, index) == CNN_OK)
    return TRUE;
  catdog_set_no_layer_error (net, name, error);
  return FALSE;
}
