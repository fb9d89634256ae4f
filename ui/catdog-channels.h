/* catdog-channels.h - the classify procedure's "channels" argument, the
 * channels picked one by one: "LAYER:I,J;LAYER:K", e.g.
 * "conv3:5,17;conv4:2" (channels counted from 0; spaces around names and
 * numbers are allowed; empty: none picked).  Pure GLib, no libgimp: the
 * plug-in parses the argument with it, the dialog's preview writes it.
 * Whether the layers and channels exist is the caller's to check, against
 * the model (plugin/maps.c). */
#ifndef CATDOG_CHANNELS_H
#define CATDOG_CHANNELS_H

#include <glib.h>

#define CATDOG_CHANNELS_ERROR (catdog_channels_error_quark ())
GQuark catdog_channels_error_quark (void);

typedef enum
{
  CATDOG_CHANNELS_ERROR_MALFORMED,
  CATDOG_CHANNELS_ERROR_UNKNOWN     /* no such layer or channel in the
                                       model (set by the caller) */
} CatdogChannelsError;

/* One conv layer's picked channels, in the order given. */
typedef struct
{
  GArray *channels;   /* gint, each >= 0, no repeats */
  gchar   layer[];    /* the conv layer's name */
} CatdogChannelPick;

/* The picks in text (an array of CatdogChannelPick, empty when text is
 * NULL or blank; g_ptr_array_unref frees it), or NULL with *error saying
 * what is wrong and where (1-based character position) when it is
 * malformed: an entry without ':', no layer name, no or a bad channel
 * number, a layer or a channel given twice. */
GPtrArray *catdog_channels_parse  (const gchar  *text,
                                   GError      **error);

/* The text catdog_channels_parse() reads back as picks (g_free). */
gchar     *catdog_channels_format (GPtrArray    *picks);

/* A new, empty pick for layer, for building an array of them by hand
 * (the array's free function frees it). */
CatdogChannelPick *catdog_channel_pick_new  (const gchar       *layer);
void               catdog_channel_pick_free (CatdogChannelPick *pick);

#endif /* CATDOG_CHANNELS_H */
