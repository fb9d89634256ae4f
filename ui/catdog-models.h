/* catdog-models.h - the user's models folder: installing weights, listing
 * them, and which one is the default.  GLib only (no GTK, no libgimp), so
 * the plug-in's PDB procedure, its dialog and the tests share it.
 *
 * Layout of the folder (the plug-in passes gimp_directory()/catdog/models):
 *   NAME.safetensors   installed models; nothing else is ever named so
 *   default            one line: the file name of the default model
 *   .install-*.part    an install in progress (or one that was killed)
 */
#ifndef CATDOG_MODELS_H
#define CATDOG_MODELS_H

#include <glib.h>

#include "cnn.h"

#define CATDOG_MODELS_ERROR (catdog_models_error_quark ())
GQuark catdog_models_error_quark (void);

typedef enum
{
  CATDOG_MODELS_ERROR_EXISTS,    /* would overwrite an installed model */
  CATDOG_MODELS_ERROR_NAME,      /* not a NAME.safetensors file */
  CATDOG_MODELS_ERROR_INVALID,   /* the full validation refused it */
  CATDOG_MODELS_ERROR_CHECKSUM,  /* SHA-256 differs from the one given */
  CATDOG_MODELS_ERROR_IO
} CatdogModelsError;

#define CATDOG_MODEL_SUFFIX CNN_MODEL_SUFFIX

/* Installs source into models_dir (created if needed) as its own file
 * name: full validation (cnn_model_load), SHA-256 against SOURCE.sha256
 * and the metadata's "sha256" when present, then a temporary file in
 * models_dir, fsync and rename.  An installed model of that name is only
 * replaced when overwrite is TRUE.  On failure nothing is left behind.
 * Returns the installed path (g_free), or NULL with *error set. */
gchar   *catdog_models_install      (const gchar  *models_dir,
                                     const gchar  *source,
                                     gboolean      overwrite,
                                     GError      **error);

/* Sorted paths of the installed models (*.safetensors); free with
 * g_strfreev.  A missing folder has none. */
gchar  **catdog_models_list         (const gchar  *models_dir);

/* The default model's path when the "default" file names an installed
 * model that exists, else NULL (g_free). */
gchar   *catdog_models_get_default  (const gchar  *models_dir);

/* Makes the installed model `path` (inside models_dir) the default;
 * NULL clears it.  The "default" file is replaced atomically. */
gboolean catdog_models_set_default  (const gchar  *models_dir,
                                     const gchar  *path,
                                     GError      **error);

/* What the dialog shows about a model file. */
typedef struct
{
  gchar   *name;         /* from the metadata */
  gchar   *summary;      /* "3 conv (32, 64, 128), dense 512" */
  gint     in_w, in_h, in_c;
  goffset  file_size;
  gdouble  accuracy;     /* validation accuracy, or -1 */
  gint     n_conv;
  gchar  **conv_names;   /* n_conv entries, NULL-terminated */
  gint    *conv_maps;    /* output channels */
  gint    *conv_w, *conv_h;
} CatdogModelInfo;

/* Reads path's header and metadata (cnn_model_load_header: checked as
 * strictly as a full load, the tensor data not read); NULL with *error
 * naming the file and the problem. */
CatdogModelInfo *catdog_model_info_load (const gchar      *path,
                                         GError          **error);
void             catdog_model_info_free (CatdogModelInfo  *info);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CatdogModelInfo, catdog_model_info_free)

#endif /* CATDOG_MODELS_H */
