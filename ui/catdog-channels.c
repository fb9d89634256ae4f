/* catdog-channels.c - the "channels" argument: parsing and writing it
 * (catdog-channels.h). */
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "catdog-channels.h"

G_DEFINE_QUARK (catdog-channels-error-quark, catdog_channels_error)

CatdogChannelPick *
catdog_channel_pick_new (const gchar *layer)
{
  gsize              size = strlen (layer) + 1;
  CatdogChannelPick *pick = g_malloc (sizeof *pick + size);

  memcpy (pick->layer, layer, size);
  pick->channels = g_array_new (FALSE, FALSE, sizeof (gint));
  return pick;
}

void
catdog_channel_pick_free (CatdogChannelPick *pick)
{
  if (pick != NULL)
    g_array_unref (pick->channels);
  g_free (pick);
}

/* *error: text is malformed at 1-based position `at`, around token. */
static void
set_malformed (GError      **error,
               const gchar  *text,
               gsize         at,
               const gchar  *token,
               const gchar  *why)
{
  g_set_error (error, CATDOG_CHANNELS_ERROR, CATDOG_CHANNELS_ERROR_MALFORMED,
               _("The channels value \"%s\" is malformed at position %u "
                 "(\"%s\"): %s. Write LAYER:I,J;LAYER:K, for example "
                 "conv3:5,17;conv4:2."),
               text, (guint) at + 1, token, why);
}

/* [*start, *end) without the spaces around it. */
static void
trim (const gchar **start,
      const gchar **end)
{
  while (*start < *end && g_ascii_isspace (**start))
    (*start)++;
  while (*end > *start && g_ascii_isspace ((*end)[-1]))
    (*end)--;
}

/* The channel numbers in [p, end), added to pick; text for messages. */
static gboolean
parse_numbers (const gchar        *text,
               const gchar        *p,
               const gchar        *end,
               CatdogChannelPick  *pick,
               GError            **error)
{
  while (TRUE)
    {
      const gchar *comma = memchr (p, ',', end - p);
      const gchar *stop  = comma ? comma : end;
      const gchar *a = p, *b = stop;
      gchar       *token;
      gint         value = 0;
      gboolean     digits;

      trim (&a, &b);
      digits = (a < b) && (b - a) <= 9;
      for (const gchar *q = a; digits && q < b; q++)
        digits = g_ascii_isdigit (*q);
      token = g_strndup (a, b - a);
      if (a == b)
        set_malformed (error, text, a - text, token,
                       _("a channel number is missing"));
      else if (! digits)
        set_malformed (error, text, a - text, token,
                       _("a channel is a number from 0 up"));
      else
        {
          value = (gint) g_ascii_strtoll (token, NULL, 10);
          for (guint i = 0; i < pick->channels->len; i++)
            if (g_array_index (pick->channels, gint, i) == value)
              {
                set_malformed (error, text, a - text, token,
                               _("this channel is given twice"));
                digits = FALSE;
              }
        }
      g_free (token);
      if (a == b || ! digits)
        return FALSE;
      g_array_append_val (pick->channels, value);
      if (! comma)
        return TRUE;
      p = comma + 1;
    }
}

GPtrArray *
catdog_channels_parse (const gchar  *text,
                       GError      **error)
{
  GPtrArray   *picks = g_ptr_array_new_with_free_func (
                         (GDestroyNotify) catdog_channel_pick_free);
  const gchar *p, *all_end;

  if (! text)
    return picks;
  p = text;
  all_end = text + strlen (text);
  trim (&p, &all_end);
  if (p == all_end)
    return picks;

  while (TRUE)
    {
      const gchar *semi  = memchr (p, ';', all_end - p);
      const gchar *end   = semi ? semi : all_end;
      const gchar *colon = memchr (p, ':', end - p);
      const gchar *a = p, *b = colon ? colon : end;
      CatdogChannelPick *pick;
      gchar       *name;

      trim (&a, &b);
      name = g_strndup (a, b - a);
      if (! colon)
        {
          gchar *entry;

          trim (&a, &end);
          entry = g_strndup (a, end - a);
          set_malformed (error, text, a - text, entry,
                         a == end ? _("an entry is empty")
                                  : _("a layer name and ':' are missing"));
          g_free (entry);
        }
      else if (a == b)
        set_malformed (error, text, a - text, ":",
                       _("the layer name is missing"));
      else
        for (guint i = 0; i < picks->len; i++)
          if (! strcmp (((CatdogChannelPick *) picks->pdata[i])->layer,
                        name))
            {
              set_malformed (error, text, a - text, name,
                             _("this layer is given twice"));
              colon = NULL;
            }
      if (! colon || a == b)
        {
          g_free (name);
          g_ptr_array_unref (picks);
          return NULL;
        }
      pick = catdog_channel_pick_new (name);
      g_free (name);
      g_ptr_array_add (picks, pick);
      if (! parse_numbers (text, colon + 1, end, pick, error))
        {
          g_ptr_array_unref (picks);
          return NULL;
        }
      if (! semi)
        return picks;
      p = semi + 1;
    }
}

gchar *
catdog_channels_format (GPtrArray *picks)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; picks && i < picks->len; i++)
    {
      const CatdogChannelPick *pick = picks->pdata[i];

      if (pick->channels->len == 0)
        continue;
      g_string_append_printf (text, "%s%s:", text->len ? ";" : "",
                              pick->layer);
      for (guint c = 0; c < pick->channels->len; c++)
        g_string_append_printf (text, "%s%d", c ? "," : "",
                                g_array_index (pick->channels, gint, c));
    }
  return g_string_free (text, FALSE);
}
