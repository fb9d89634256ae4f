/* catdog-models.c - installing, listing and choosing the user's models.
 *
 * An install never shows GIMP a partial model: the bytes go to a hidden
 * temporary file in the models folder itself (same file system, so the
 * final rename is atomic), are flushed to disk, validated and checked,
 * and only then get their .safetensors name.  A crash or a kill at any
 * moment leaves either no model or the complete one; at worst a hidden
 * .install-*.part file, which nothing lists and a later install removes. */
#include "catdog-models.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#define TEMP_PREFIX ".install-"
#define TEMP_SUFFIX ".part"
#define DEFAULT_FILE CNN_DEFAULT_FILE
/* A temporary file this old belongs to an install that died. */
#define STALE_TEMP_SECONDS (60 * 60)
#define COPY_CHUNK (1 << 20)

G_DEFINE_QUARK (catdog-models-error-quark, catdog_models_error)

static gboolean
has_model_suffix (const gchar *name)
{
  return g_str_has_suffix (name, CATDOG_MODEL_SUFFIX) &&
         strlen (name) > strlen (CATDOG_MODEL_SUFFIX) && name[0] != '.';
}

typedef enum
{
  IO_READ,
  IO_WRITE,
  IO_CREATE,
  IO_REMOVE
} IoAction;

static void
set_io_error (GError      **error,
              IoAction      action,
              const gchar  *path,
              int           errsv)
{
  gchar       *display = g_filename_display_name (path);
  const gchar *why     = g_strerror (errsv);

  /* TRANSLATORS: the last %s is the system's reason, e.g. "No space
   * left on device" */
  g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_IO,
               action == IO_READ     ? _("Cannot read \"%s\": %s")
               : action == IO_WRITE  ? _("Cannot write \"%s\": %s")
               : action == IO_CREATE ? _("Cannot create \"%s\": %s")
               :                       _("Cannot remove \"%s\": %s"),
               display, why);
  g_free (display);
}

/* Reads the first word of SOURCE.sha256 (sha256sum's format, or just the
 * digest).  Returns FALSE with *error when the file exists but holds no
 * digest; *expected stays NULL when there is no such file. */
static gboolean
read_sidecar_checksum (const gchar  *source,
                       gchar       **expected,
                       GError      **error)
{
  gchar   *sidecar = g_strconcat (source, ".sha256", NULL);
  gchar   *text    = NULL;
  gboolean ok      = TRUE;

  *expected = NULL;
  if (g_file_get_contents (sidecar, &text, NULL, NULL))
    {
      gchar *word = g_strstrip (text);
      gsize  n    = strcspn (word, " \t\r\n");
      gsize  i;

      ok = (n == 64);
      for (i = 0; ok && i < n; i++)
        ok = g_ascii_isxdigit (word[i]);
      if (ok)
        *expected = g_ascii_strdown (word, 64);
      else
        {
          gchar *display = g_filename_display_name (sidecar);

          g_set_error (error, CATDOG_MODELS_ERROR,
                       CATDOG_MODELS_ERROR_CHECKSUM,
                       _("\"%s\" does not hold a SHA-256 checksum (64 "
                         "hexadecimal digits)."), display);
          g_free (display);
        }
    }
  g_free (text);
  g_free (sidecar);
  return ok;
}

/* The "sha256" member of the catdog metadata: the SHA-256 of the data
 * area (everything after the header), which a file cannot hold of its
 * whole self.  NULL when absent. */
static gchar *
metadata_checksum (const cnn_model *model)
{
  cJSON *doc;
  cJSON *item;
  gchar *sum = NULL;

  if (! model->metadata_json)
    return NULL;
  doc  = cJSON_Parse (model->metadata_json);
  item = cJSON_GetObjectItemCaseSensitive (doc, "sha256");
  if (cJSON_IsString (item))
    sum = g_ascii_strdown (item->valuestring, -1);
  cJSON_Delete (doc);
  return sum;
}

static void
remove_stale_temps (const gchar *models_dir)
{
  GDir        *dir = g_dir_open (models_dir, 0, NULL);
  const gchar *name;
  gint64       now = g_get_real_time () / G_USEC_PER_SEC;

  if (! dir)
    return;
  while ((name = g_dir_read_name (dir)))
    {
      gchar  *path;
      GStatBuf st;

      if (! g_str_has_prefix (name, TEMP_PREFIX) ||
          ! g_str_has_suffix (name, TEMP_SUFFIX))
        continue;
      path = g_build_filename (models_dir, name, NULL);
      if (g_stat (path, &st) == 0 && now - st.st_mtime > STALE_TEMP_SECONDS)
        g_unlink (path);
      g_free (path);
    }
  g_dir_close (dir);
}

/* Copies source into the open temporary file fd, hashing the whole file
 * and its data area on the way, then flushes it to disk. */
static gboolean
copy_and_hash (const gchar  *source,
               int           fd,
               const gchar  *temp,
               gchar       **file_sum,
               gchar       **data_sum,
               GError      **error)
{
  GChecksum *whole  = g_checksum_new (G_CHECKSUM_SHA256);
  GChecksum *data   = g_checksum_new (G_CHECKSUM_SHA256);
  guint8    *buffer = g_malloc (COPY_CHUNK);
  FILE      *in     = g_fopen (source, "rb");
  guint64    offset = 0;
  guint64    data_start = G_MAXUINT64;
  gboolean   ok     = FALSE;
  size_t     n;

  if (! in)
    {
      set_io_error (error, IO_READ, source, errno);
      goto out;
    }
  while ((n = fread (buffer, 1, COPY_CHUNK, in)) > 0)
    {
      const guint8 *p    = buffer;
      size_t        left = n;

      if (offset == 0 && n >= 8)
        {
          guint64 header = 0;
          gint    i;

          for (i = 7; i >= 0; i--)
            header = (header << 8) | buffer[i];
          if (header <= G_MAXUINT64 - 8)
            data_start = header + 8;
        }
      g_checksum_update (whole, buffer, n);
      if (offset + n > data_start)
        {
          guint64 skip = data_start > offset ? data_start - offset : 0;

          g_checksum_update (data, buffer + skip, n - skip);
        }
      while (left > 0)
        {
          ssize_t w = write (fd, p, left);

          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            {
              set_io_error (error, IO_WRITE, temp, errno);
              goto out;
            }
          p    += w;
          left -= (size_t) w;
        }
      offset += n;
    }
  if (ferror (in))
    {
      set_io_error (error, IO_READ, source, errno);
      goto out;
    }
  if (fsync (fd) != 0)
    {
      set_io_error (error, IO_WRITE, temp, errno);
      goto out;
    }
  *file_sum = g_strdup (g_checksum_get_string (whole));
  *data_sum = g_strdup (g_checksum_get_string (data));
  ok = TRUE;

out:
  if (in)
    fclose (in);
  g_free (buffer);
  g_checksum_free (whole);
  g_checksum_free (data);
  return ok;
}

/* The core's message names the temporary file it loaded; the user chose
 * the source. */
static gchar *
core_message_for (const gchar *temp,
                  const gchar *source)
{
  gchar **parts = g_strsplit (cnn_last_error (), temp, -1);
  gchar  *text  = g_strjoinv (source, parts);

  g_strfreev (parts);
  return text;
}

static void
fsync_dir (const gchar *dir)
{
  int fd = open (dir, O_RDONLY);

  if (fd >= 0)
    {
      fsync (fd);
      close (fd);
    }
}

gchar *
catdog_models_install (const gchar  *models_dir,
                       const gchar  *source,
                       gboolean      overwrite,
                       GError      **error)
{
  gchar      *base     = g_path_get_basename (source);
  gchar      *display  = g_filename_display_name (source);
  gchar      *dest     = NULL;
  gchar      *temp     = NULL;
  gchar      *expected = NULL;
  gchar      *file_sum = NULL;
  gchar      *data_sum = NULL;
  gchar      *meta_sum = NULL;
  cnn_model  *model    = NULL;
  cnn_status  st;
  int         fd       = -1;
  gboolean    ok       = FALSE;
  gboolean    sidecar_bad;
  GStatBuf    sb;

  g_return_val_if_fail (models_dir && source, NULL);

  if (g_stat (source, &sb) != 0)
    {
      set_io_error (error, IO_READ, source, errno);
      goto out;
    }
  if (! S_ISREG (sb.st_mode) || ! has_model_suffix (base))
    {
      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_NAME,
                   _("\"%s\" is not a model file: choose a file whose name "
                     "ends in .safetensors."), display);
      goto out;
    }
  dest = g_build_filename (models_dir, base, NULL);
  if (! overwrite && g_file_test (dest, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_EXISTS,
                   _("A model named \"%s\" is already installed."), base);
      goto out;
    }
  if (! read_sidecar_checksum (source, &expected, error))
    goto out;

  if (g_mkdir_with_parents (models_dir, 0755) != 0)
    {
      set_io_error (error, IO_CREATE, models_dir, errno);
      goto out;
    }
  remove_stale_temps (models_dir);
  temp = g_build_filename (models_dir, TEMP_PREFIX "XXXXXX" TEMP_SUFFIX, NULL);
  fd = g_mkstemp_full (temp, O_RDWR, 0644);
  if (fd < 0)
    {
      set_io_error (error, IO_CREATE, temp, errno);
      goto out;
    }
  if (! copy_and_hash (source, fd, temp, &file_sum, &data_sum, error))
    goto out;

  /* Validate the copy, not the source: that is what will be installed. */
  st = cnn_model_load (temp, &model);
  if (st != CNN_OK)
    {
      gchar *why = core_message_for (temp, source);

      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_INVALID,
                   /* TRANSLATORS: the core's message names the file */
                   _("Not a usable model: %s"), why);
      g_free (why);
      goto out;
    }
  /* The .sha256 file speaks of the whole file, the metadata of the
   * tensor data; the .sha256 file is checked first. */
  meta_sum = metadata_checksum (model);
  sidecar_bad = expected && strcmp (expected, file_sum);
  if (sidecar_bad || (meta_sum && strcmp (meta_sum, data_sum)))
    {
      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_CHECKSUM,
                   sidecar_bad
                   ? _("\"%s\" is damaged or not the expected file: its "
                       "SHA-256 is %s, its .sha256 file says %s.")
                   : _("\"%s\" is damaged: the SHA-256 of its tensor data is "
                       "%s, its metadata says %s."),
                   display, sidecar_bad ? file_sum : data_sum,
                   sidecar_bad ? expected : meta_sum);
      goto out;
    }

  if (close (fd) != 0)
    {
      fd = -1;
      set_io_error (error, IO_WRITE, temp, errno);
      goto out;
    }
  fd = -1;
  if (overwrite)
    {
      if (g_rename (temp, dest) != 0)
        {
          set_io_error (error, IO_CREATE, dest, errno);
          goto out;
        }
    }
  /* link() fails rather than replace a model installed meanwhile. */
  else if (link (temp, dest) == 0)
    {
      g_unlink (temp);
    }
  else if (errno == EEXIST)
    {
      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_EXISTS,
                   _("A model named \"%s\" is already installed."), base);
      goto out;
    }
  else if (g_file_test (dest, G_FILE_TEST_EXISTS) || g_rename (temp, dest) != 0)
    {
      /* File systems without hard links: check, then rename. */
      set_io_error (error, IO_CREATE, dest, errno ? errno : EEXIST);
      goto out;
    }
  fsync_dir (models_dir);
  g_clear_pointer (&temp, g_free);
  ok = TRUE;

out:
  if (fd >= 0)
    close (fd);
  if (temp)
    {
      g_unlink (temp);
      g_free (temp);
    }
  cnn_model_free (model);
  g_free (meta_sum);
  g_free (data_sum);
  g_free (file_sum);
  g_free (expected);
  g_free (display);
  g_free (base);
  if (! ok)
    g_clear_pointer (&dest, g_free);
  return dest;
}

static gint
compare_paths (gconstpointer a,
               gconstpointer b)
{
  return g_utf8_collate (*(const gchar * const *) a,
                         *(const gchar * const *) b);
}

gchar **
catdog_models_list (const gchar *models_dir)
{
  GPtrArray   *paths = g_ptr_array_new ();
  GDir        *dir   = g_dir_open (models_dir, 0, NULL);
  const gchar *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      gchar *path;

      if (! has_model_suffix (name))
        continue;
      path = g_build_filename (models_dir, name, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        g_ptr_array_add (paths, path);
      else
        g_free (path);
    }
  if (dir)
    g_dir_close (dir);
  g_ptr_array_sort (paths, compare_paths);
  g_ptr_array_add (paths, NULL);
  return (gchar **) g_ptr_array_free (paths, FALSE);
}

gchar *
catdog_models_get_default (const gchar *models_dir)
{
  char  *path = NULL;
  gchar *copy;

  /* The rule is the core's, shared with the CLI. */
  cnn_models_folder_default (models_dir, &path);
  copy = g_strdup (path);
  free (path);
  return copy;
}

gboolean
catdog_models_set_default (const gchar  *models_dir,
                           const gchar  *path,
                           GError      **error)
{
  gchar   *marker = g_build_filename (models_dir, DEFAULT_FILE, NULL);
  gchar   *dir    = path ? g_path_get_dirname (path) : NULL;
  gchar   *base   = path ? g_path_get_basename (path) : NULL;
  gchar   *line   = NULL;
  gboolean ok     = FALSE;

  if (! path)
    {
      ok = g_unlink (marker) == 0 || errno == ENOENT;
      if (! ok)
        set_io_error (error, IO_REMOVE, marker, errno);
      goto out;
    }
  if (! has_model_suffix (base) || ! g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      gchar *display = g_filename_display_name (path);

      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_NAME,
                   _("\"%s\" is not an installed model."), display);
      g_free (display);
      goto out;
    }
  {
    /* Only a model inside the folder: the marker holds a bare name. */
    gchar *real_dir  = g_canonicalize_filename (dir, NULL);
    gchar *real_mdir = g_canonicalize_filename (models_dir, NULL);

    ok = ! strcmp (real_dir, real_mdir);
    g_free (real_dir);
    g_free (real_mdir);
    if (! ok)
      {
        gchar *display = g_filename_display_name (path);

        g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_NAME,
                     _("\"%s\" is not an installed model: install it first."),
                     display);
        g_free (display);
        goto out;
      }
  }
  line = g_strconcat (base, "\n", NULL);
  /* g_file_set_contents writes a temporary file, fsyncs and renames. */
  ok = g_file_set_contents (marker, line, -1, error);

out:
  g_free (line);
  g_free (base);
  g_free (dir);
  g_free (marker);
  return ok;
}

static gchar *
summarise (const cnn_model *m,
           gint            *n_conv)
{
  GString *filters = g_string_new (NULL);
  GString *text    = g_string_new (NULL);
  gboolean bn      = FALSE;
  gint     i;

  *n_conv = 0;
  for (i = 0; i < m->n_layers; i++)
    if (m->layers[i].type == CNN_LAYER_CONV2D)
      g_string_append_printf (filters, "%s%d", (*n_conv)++ ? ", " : "",
                              m->layers[i].filters);
  /* TRANSLATORS: the conv layers and their filters: "3 conv (32, 64, 128)" */
  g_string_printf (text, _("%d conv (%s)"), *n_conv, filters->str);
  for (i = 0; i < m->n_layers; i++)
    {
      const cnn_layer *l = &m->layers[i];

      /* The output layer (one unit) is the same in every model. */
      if (l->type == CNN_LAYER_DENSE && l->units != 1)
        g_string_append_printf (text, _(", dense %d"), l->units);
      else if (l->type == CNN_LAYER_GAP)
        g_string_append (text, _(", global pool"));
      else if (l->type == CNN_LAYER_BATCHNORM)
        bn = TRUE;
    }
  if (bn)
    g_string_append (text, _(", batch norm"));
  g_string_free (filters, TRUE);
  return g_string_free (text, FALSE);
}

CatdogModelInfo *
catdog_model_info_load (const gchar  *path,
                        GError      **error)
{
  CatdogModelInfo *info;
  cnn_model       *m = NULL;
  cnn_status       st;
  GStatBuf         sb;
  gint             i, k;

  /* The header says all the list shows; only the chosen model is loaded
   * in full (by the plug-in). */
  st = cnn_model_load_header (path, &m);
  if (st != CNN_OK)
    {
      g_set_error (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_INVALID,
                   "%s", cnn_last_error ());
      return NULL;
    }
  info            = g_new0 (CatdogModelInfo, 1);
  info->name      = g_strdup (m->name);
  info->in_w      = m->in_w;
  info->in_h      = m->in_h;
  info->in_c      = m->in_c;
  info->file_size = g_stat (path, &sb) == 0 ? (goffset) sb.st_size : 0;
  info->accuracy  = m->val_accuracy;
  info->summary   = summarise (m, &info->n_conv);
  info->conv_names = g_new0 (gchar *, info->n_conv + 1);
  info->conv_maps  = g_new0 (gint, info->n_conv + 1);
  info->conv_w     = g_new0 (gint, info->n_conv + 1);
  info->conv_h     = g_new0 (gint, info->n_conv + 1);
  for (i = 0, k = 0; i < m->n_layers; i++)
    {
      const cnn_layer *l = &m->layers[i];

      if (l->type != CNN_LAYER_CONV2D)
        continue;
      info->conv_names[k] = g_strdup (l->name);
      info->conv_maps[k]  = l->out_c;
      info->conv_w[k]     = l->out_w;
      info->conv_h[k]     = l->out_h;
      k++;
    }
  cnn_model_free (m);
  return info;
}

void
catdog_model_info_free (CatdogModelInfo *info)
{
  if (! info)
    return;
  g_free (info->name);
  g_free (info->summary);
  g_strfreev (info->conv_names);
  g_free (info->conv_maps);
  g_free (info->conv_w);
  g_free (info->conv_h);
  g_free (info);
}
