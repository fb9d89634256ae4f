/* test_install.c - installing weights into a models folder, directly
 * through ui/catdog-models.c (what the dialog and the PDB procedure call):
 *   test_install
 * Every model is written here; the killed installs copy the article's
 * network in F32 (76 MB), big enough for kills to land mid-copy whatever
 * size the shipped model has. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "catdog-models.h"
#include "gcheck.h"

static gchar *tmp;

static gchar *
tmp_path (const gchar *name)
{
  return g_build_filename (tmp, name, NULL);
}

static gchar *
write_model (const gchar *name,
             guint64      seed,
             const gchar *extra_json)
{
  gchar     *path = tmp_path (name);
  cnn_model *m    = NULL;

  CHECK_OK (cnn_model_from_spec (
    "{\"schema\": 1, \"name\": \"tiny\", \"input\": [32, 32, 3],"
    " \"labels\": [\"cat\", \"dog\"], \"flatten\": \"hwc\","
    " \"layers\": [{\"type\": \"conv2d\", \"name\": \"c1\", \"filters\": 4,"
    "  \"kernel\": 3}, {\"type\": \"relu\", \"name\": \"r1\"},"
    "  {\"type\": \"gap\", \"name\": \"gap\"},"
    "  {\"type\": \"dense\", \"name\": \"fc\", \"units\": 1},"
    "  {\"type\": \"sigmoid\", \"name\": \"prob\"}]}", &m));
  CHECK_OK (cnn_model_init (m, seed));
  CHECK_OK (cnn_model_save (m, path, CNN_DTYPE_F32, extra_json));
  cnn_model_free (m);
  return path;
}

static gchar *
file_sha256 (const gchar *path,
             gboolean     data_only)
{
  gchar  *bytes = NULL;
  gsize   len   = 0, start = 0;
  gchar  *sum;

  g_file_get_contents (path, &bytes, &len, NULL);
  if (data_only && len >= 8)
    {
      guint64 n = 0;
      gint    i;

      for (i = 7; i >= 0; i--)
        n = (n << 8) | (guint8) bytes[i];
      start = 8 + n;
    }
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                     (const guchar *) bytes + start,
                                     len - start);
  g_free (bytes);
  return sum;
}

static gboolean
same_bytes (const gchar *a,
            const gchar *b)
{
  gchar   *x = file_sha256 (a, FALSE), *y = file_sha256 (b, FALSE);
  gboolean same = ! g_strcmp0 (x, y);

  g_free (x);
  g_free (y);
  return same;
}

/* Every entry of dir, sorted, joined by spaces (hidden ones too). */
static gchar *
dir_listing (const gchar *dir)
{
  GDir        *d = g_dir_open (dir, 0, NULL);
  GPtrArray   *names = g_ptr_array_new_with_free_func (g_free);
  const gchar *name;
  gchar       *text;

  while (d && (name = g_dir_read_name (d)))
    g_ptr_array_add (names, g_strdup (name));
  if (d)
    g_dir_close (d);
  g_ptr_array_sort (names, (GCompareFunc) g_strcmp0);
  g_ptr_array_sort_values (names, (GCompareFunc) g_strcmp0);
  g_ptr_array_add (names, NULL);
  text = g_strjoinv (" ", (gchar **) names->pdata);
  g_ptr_array_unref (names);
  return text;
}

#define CHECK_LISTING(dir, want) CHECK_STRING (dir_listing (dir), want)

/* An install that must fail with code and a message containing sub,
 * leaving the folder as it was. */
static void
refused (const gchar *models,
         const gchar *source,
         gint         code,
         const gchar *sub)
{
  gchar  *before = dir_listing (models);
  GError *error  = NULL;
  gchar  *path   = catdog_models_install (models, source, FALSE, &error);

  CHECKF (path == NULL && error && error->code == code &&
          strstr (error->message, sub),
          "%s: %s (code %d), expected code %d containing \"%s\"", source,
          error ? error->message : "installed", error ? error->code : -1,
          code, sub);
  if (error)
    printf ("refused as expected: %s\n", error->message);
  CHECK_LISTING (models, before);
  g_clear_error (&error);
  g_free (path);
  g_free (before);
}

static void
test_install_and_refusals (void)
{
  gchar  *models = tmp_path ("models");
  gchar  *good   = write_model ("good.safetensors", 1, NULL);
  gchar  *other  = write_model ("other.safetensors", 2, NULL);
  gchar  *src2   = tmp_path ("again");
  gchar  *again  = NULL;
  gchar  *path, *text, *sum, *meta;
  gchar **list;
  GError *error  = NULL;
  gchar  *bytes  = NULL;
  gsize   len;

  /* A valid model: installed under its name, identical, listed. */
  path = catdog_models_install (models, good, FALSE, &error);
  CHECKF (path != NULL, "%s", error ? error->message : "");
  g_clear_error (&error);
  text = g_build_filename (models, "good.safetensors", NULL);
  CHECK (! g_strcmp0 (path, text));
  CHECK (path && same_bytes (path, good));
  list = catdog_models_list (models);
  CHECK (g_strv_length (list) == 1 && ! g_strcmp0 (list[0], text));
  g_strfreev (list);
  CHECK_LISTING (models, "good.safetensors");
  g_free (text);

  /* Never overwritten without being asked. */
  g_mkdir (src2, 0755);
  again = g_build_filename (src2, "good.safetensors", NULL);
  g_file_get_contents (other, &bytes, &len, NULL);
  g_file_set_contents (again, bytes, (gssize) len, NULL);
  refused (models, again, CATDOG_MODELS_ERROR_EXISTS, "already installed");
  CHECK (same_bytes (path, good));
  g_free (path);
  path = catdog_models_install (models, again, TRUE, &error);
  CHECKF (path && same_bytes (path, other), "%s", error ? error->message : "");
  g_clear_error (&error);
  g_free (path);

  /* A truncated model. */
  text = tmp_path ("truncated.safetensors");
  g_file_set_contents (text, bytes, (gssize) len / 2, NULL);
  refused (models, text, CATDOG_MODELS_ERROR_INVALID, text);
  g_free (text);

  /* Not a model at all, under a model's name and under another name. */
  text = tmp_path ("notes.safetensors");
  g_file_set_contents (text, "Just some notes, not a model.\n", -1, NULL);
  refused (models, text, CATDOG_MODELS_ERROR_INVALID, "Not a usable model");
  g_free (text);
  text = tmp_path ("photo.jpg");
  g_file_set_contents (text, bytes, (gssize) len, NULL);
  refused (models, text, CATDOG_MODELS_ERROR_NAME, ".safetensors");
  g_free (text);
  refused (models, tmp, CATDOG_MODELS_ERROR_NAME, ".safetensors");
  text = tmp_path ("missing.safetensors");
  refused (models, text, CATDOG_MODELS_ERROR_IO, "missing.safetensors");
  g_free (text);

  /* SHA-256 beside the file (sha256sum's format). */
  text = tmp_path ("summed.safetensors");
  g_file_set_contents (text, bytes, (gssize) len, NULL);
  sum = g_strconcat (text, ".sha256", NULL);
  g_file_set_contents (sum, "0123456789abcdef0123456789abcdef"
                            "0123456789abcdef0123456789abcdef  summed.safetensors\n",
                       -1, NULL);
  refused (models, text, CATDOG_MODELS_ERROR_CHECKSUM, "SHA-256");
  g_file_set_contents (sum, "not a checksum\n", -1, NULL);
  refused (models, text, CATDOG_MODELS_ERROR_CHECKSUM, "SHA-256");
  {
    gchar *right = file_sha256 (text, FALSE);
    gchar *line  = g_strdup_printf ("%s  summed.safetensors\n", right);

    g_file_set_contents (sum, line, -1, NULL);
    path = catdog_models_install (models, text, FALSE, &error);
    CHECKF (path != NULL, "right checksum: %s", error ? error->message : "");
    g_clear_error (&error);
    g_free (path);
    g_free (line);
    g_free (right);
  }
  g_free (sum);
  g_free (text);

  /* SHA-256 of the tensor data in the metadata. */
  meta = write_model ("meta-bad.safetensors", 5,
                      "{\"sha256\": \"00000000000000000000000000000000"
                      "00000000000000000000000000000000\"}");
  refused (models, meta, CATDOG_MODELS_ERROR_CHECKSUM, "metadata");
  {
    /* The same weights (same seed) with the right data checksum. */
    gchar *plain = write_model ("meta-plain.safetensors", 5, NULL);
    gchar *data  = file_sha256 (plain, TRUE);
    gchar *extra = g_strdup_printf ("{\"sha256\": \"%s\"}", data);
    gchar *good_meta = write_model ("meta-good.safetensors", 5, extra);

    path = catdog_models_install (models, good_meta, FALSE, &error);
    CHECKF (path != NULL, "right metadata checksum: %s",
            error ? error->message : "");
    g_clear_error (&error);
    g_free (path);
    g_free (good_meta);
    g_free (extra);
    g_free (data);
    g_free (plain);
  }
  g_free (meta);
  CHECK_LISTING (models, "good.safetensors meta-good.safetensors "
                         "summed.safetensors");

  /* The default: none, then one, only an installed one, then none. */
  CHECK (catdog_models_get_default (models) == NULL);
  text = g_build_filename (models, "summed.safetensors", NULL);
  CHECK (catdog_models_set_default (models, text, NULL));
  path = catdog_models_get_default (models);
  CHECK (! g_strcmp0 (path, text));
  g_free (path);
  CHECK (! catdog_models_set_default (models, good, &error));
  CHECKF (error && strstr (error->message, "install it first"), "%s",
          error ? error->message : "accepted a model outside the folder");
  g_clear_error (&error);
  g_unlink (text);
  CHECK (catdog_models_get_default (models) == NULL);
  CHECK (catdog_models_set_default (models, NULL, NULL));
  CHECK_LISTING (models, "good.safetensors meta-good.safetensors");
  g_free (text);

  g_free (bytes);
  g_free (again);
  g_free (src2);
  g_free (other);
  g_free (good);
  g_free (models);
}

static goffset
file_size (const gchar *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? (goffset) st.st_size : -1;
}

/* Names of the install temporary files in dir. */
static GHashTable *
temp_names (const gchar *dir)
{
  GHashTable  *names = g_hash_table_new_full (g_str_hash, g_str_equal,
                                              g_free, NULL);
  GDir        *d     = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (d && (name = g_dir_read_name (d)))
    if (g_str_has_prefix (name, ".install-"))
      g_hash_table_add (names, g_strdup (name));
  if (d)
    g_dir_close (d);
  return names;
}

/* Size of the temporary file of the running install (the one not in
 * `old`), -1 while there is none. */
static goffset
temp_size (const gchar *dir,
           GHashTable  *old)
{
  GHashTable    *now  = temp_names (dir);
  GHashTableIter iter;
  gpointer       name;
  goffset        size = -1;

  g_hash_table_iter_init (&iter, now);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    if (! g_hash_table_contains (old, name))
      {
        gchar *p = g_build_filename (dir, name, NULL);

        size = MAX (file_size (p), 0);
        g_free (p);
      }
  g_hash_table_unref (now);
  return size;
}

/* Kills installs of big at several moments: nothing but the complete
 * model may ever appear under *.safetensors. */
static void
test_killed_installs (const gchar *big)
{
  gchar   *models = tmp_path ("killed");
  goffset  total  = file_size (big);
  /* Fractions of the copy done when the kill comes; 1.0: copied, being
   * validated or renamed; above 1: a plain delay in milliseconds. */
  const gdouble moments[] = { 0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0,
                               2, 5, 10 };
  gint     mid = 0, done = 0, leftovers = 0;
  gsize    i;

  g_mkdir_with_parents (models, 0755);
  for (i = 0; i < G_N_ELEMENTS (moments); i++)
    {
      gchar **list;
      pid_t   pid = fork ();
      gint    status;
      gint    j;
      gint64  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
      gboolean during = FALSE;
      GHashTable *old = temp_names (models);

      if (pid == 0)
        {
          gchar *p = catdog_models_install (models, big, FALSE, NULL);
          _exit (p ? 0 : 1);
        }
      if (moments[i] > 1.0)
        {
          g_usleep ((gulong) (moments[i] * 1000));
          during = temp_size (models, old) >= 0;
        }
      else
        while (g_get_monotonic_time () < deadline)
          {
            goffset s = temp_size (models, old);

            if (s >= 0 && (gdouble) s >= moments[i] * (gdouble) total)
              {
                during = TRUE;
                break;
              }
            if (waitpid (pid, &status, WNOHANG) == pid)
              {
                pid = 0;
                break;
              }
            g_usleep (200);
          }
      if (pid > 0)
        {
          kill (pid, SIGKILL);
          waitpid (pid, &status, 0);
          if (WIFSIGNALED (status))
            mid += during;
          else
            done++;
        }
      else
        {
          done++;
        }
      if (temp_size (models, old) >= 0)
        leftovers++;
      g_hash_table_unref (old);

      list = catdog_models_list (models);
      for (j = 0; list[j]; j++)
        {
          cnn_model *m = NULL;

          CHECKF (file_size (list[j]) == total && same_bytes (list[j], big),
                  "kill %zu: %s is not the complete model", i, list[j]);
          CHECK_OK (cnn_model_load (list[j], &m));
          cnn_model_free (m);
          g_unlink (list[j]);
        }
      CHECK (g_strv_length (list) <= 1);
      g_strfreev (list);
    }
  printf ("killed installs: %d during the copy, %d finished first, "
          "%d hidden temporary files left\n", mid, done, leftovers);
  /* The test is only worth something if kills did land mid-copy. */
  CHECKF (mid >= 4, "only %d kills landed during an install", mid);

  /* A later install succeeds next to the leftovers, which stay hidden. */
  {
    GError *error = NULL;
    gchar  *path  = catdog_models_install (models, big, FALSE, &error);
    gchar **list  = catdog_models_list (models);

    CHECKF (path != NULL, "%s", error ? error->message : "");
    CHECK (g_strv_length (list) == 1);
    g_clear_error (&error);
    g_strfreev (list);
    g_free (path);
  }
  g_free (models);
}

int
main (int    argc,
      char **argv)
{
  GError    *error = NULL;
  cnn_model *m     = NULL;
  gchar     *cmd;

  gchar     *big;

  if (argc != 1)
    {
      fprintf (stderr, "usage: %s\n", argv[0]);
      return 2;
    }
  tmp = g_dir_make_tmp ("catdog-install-XXXXXX", &error);
  g_assert_no_error (error);

  test_install_and_refusals ();

  big = tmp_path ("article.safetensors");
  CHECK_OK (cnn_model_from_spec ("article", &m));
  CHECK_OK (cnn_model_init (m, 7));
  CHECK_OK (cnn_model_save (m, big, CNN_DTYPE_F32, NULL));
  cnn_model_free (m);
  test_killed_installs (big);
  g_free (big);

  cmd = g_strdup_printf ("rm -rf '%s'", tmp);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmp);
  g_free (cmd);
  g_free (tmp);
  return check_done ("test_install");
}
