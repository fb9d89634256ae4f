/* errors.c - how the plug-in's failures become GErrors.
 *
 * Every failure the plug-in reports is a GError in CATDOG_ERROR; the
 * procedures in catdog.c hand it to GIMP as GIMP_PDB_EXECUTION_ERROR.
 * Two sources need translating: the CNN core (a cnn_status and
 * cnn_last_error()) and GIMP's PDB (gimp_pdb_get_last_error()).  Nothing
 * here calls any other file of the plug-in. */
#include "catdog-plugin.h"

G_DEFINE_QUARK (catdog-plug-in-error-quark, catdog_error)

void
catdog_set_core_error (GError    **error,
                       cnn_status  status,
                       const char *prefix)
{
  g_set_error (error, CATDOG_ERROR, (gint) status, "%s: %s", prefix,
               *cnn_last_error () ? cnn_last_error ()
                                  : cnn_status_name (status));
}

const gchar *
catdog_pdb_error (void)
{
  return gimp_pdb_get_last_error (gimp_get_pdb ());
}
