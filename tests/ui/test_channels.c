/* test_channels.c - the "channels" argument's parser (ui/catdog-channels.c):
 * good values read back as the picks they name (spaces allowed, order
 * kept, blank = none) and write back canonically; each kind of malformed
 * value is refused with a message naming the position and the token. */
#include <glib.h>

#include "catdog-channels.h"
#include "gcheck.h"

/* text's picks written back, or "ERROR: message". */
static gchar *
parsed (const gchar *text)
{
  GError    *error = NULL;
  GPtrArray *picks = catdog_channels_parse (text, &error);
  gchar     *out;

  if (! picks)
    {
      out = g_strdup_printf ("ERROR: %s", error ? error->message : "(none)");
      g_clear_error (&error);
      return out;
    }
  CHECKF (error == NULL, "%s: success with an error set", text);
  out = catdog_channels_format (picks);
  g_ptr_array_unref (picks);
  return out;
}

/* text is refused, the message holding position and token. */
static void
check_refused (const gchar *text,
               guint        position,
               const gchar *token)
{
  GError    *error = NULL;
  GPtrArray *picks = catdog_channels_parse (text, &error);
  gchar     *where = g_strdup_printf ("position %u (\"%s\")", position, token);

  CHECKF (picks == NULL, "\"%s\" was accepted", text);
  CHECKF (error && error->domain == CATDOG_CHANNELS_ERROR &&
          error->code == CATDOG_CHANNELS_ERROR_MALFORMED &&
          strstr (error->message, where) &&
          strstr (error->message, "conv3:5,17;conv4:2"),
          "\"%s\": message \"%s\" lacks %s", text,
          error ? error->message : "(none)", where);
  g_clear_error (&error);
  g_free (where);
  if (picks)
    g_ptr_array_unref (picks);
}

int
main (void)
{
  GPtrArray         *picks;
  CatdogChannelPick *pick;

  /* Good values. */
  CHECK_STRING (parsed ("conv3:5,17;conv4:2"), "conv3:5,17;conv4:2");
  CHECK_STRING (parsed (" conv3 : 17 , 5 ; conv1:0 "), "conv3:17,5;conv1:0");
  CHECK_STRING (parsed ("c1:255"), "c1:255");
  CHECK_STRING (parsed (""), "");
  CHECK_STRING (parsed ("   "), "");
  CHECK_STRING (parsed (NULL), "");

  picks = catdog_channels_parse ("conv4:2;conv3:5,17", NULL);
  CHECK (picks && picks->len == 2);
  if (picks && picks->len == 2)
    {
      pick = picks->pdata[0];
      CHECK (! strcmp (pick->layer, "conv4") && pick->channels->len == 1 &&
             g_array_index (pick->channels, gint, 0) == 2);
      pick = picks->pdata[1];
      CHECK (! strcmp (pick->layer, "conv3") && pick->channels->len == 2 &&
             g_array_index (pick->channels, gint, 0) == 5 &&
             g_array_index (pick->channels, gint, 1) == 17);
    }
  if (picks)
    g_ptr_array_unref (picks);

  /* Built by hand (as the preview does); empty picks are left out. */
  picks = g_ptr_array_new_with_free_func (
            (GDestroyNotify) catdog_channel_pick_free);
  pick = catdog_channel_pick_new ("conv2");
  g_array_append_val (pick->channels, (gint) { 7 });
  g_ptr_array_add (picks, pick);
  g_ptr_array_add (picks, catdog_channel_pick_new ("conv5"));
  CHECK_STRING (catdog_channels_format (picks), "conv2:7");
  g_ptr_array_unref (picks);

  /* Malformed values: position (1-based) and token. */
  check_refused ("conv3", 1, "conv3");
  check_refused ("conv3:5;conv4", 9, "conv4");
  check_refused (":5", 1, ":");
  check_refused ("conv3:", 7, "");
  check_refused ("conv3:5,", 9, "");
  check_refused ("conv3:5,,6", 9, "");
  check_refused ("conv3:x", 7, "x");
  check_refused ("conv3:-1", 7, "-1");
  check_refused ("conv3:1.5", 7, "1.5");
  check_refused ("conv3:99999999999", 7, "99999999999");
  check_refused ("conv3:5, 5", 10, "5");
  check_refused ("conv3:1;conv3:2", 9, "conv3");
  check_refused ("conv3:1;;conv4:2", 9, "");
  check_refused ("conv3:1;", 9, "");
  check_refused ("conv3 5", 1, "conv3 5");

  return check_done ("test_channels");
}
