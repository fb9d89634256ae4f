/* catdog-panel-buttons.c - the buttons under the model list: Browse...,
 * Install weights... (through catdog-models.c) and Make default. */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

static GtkFileFilter *
model_filter (void)
{
  GtkFileFilter *filter = gtk_file_filter_new ();

  gtk_file_filter_set_name (filter, _("Models (*.safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  return filter;
}

static gchar *
choose_model_file (CatdogPanel *panel,
                   const gchar *title,
                   const gchar *accept,
                   GtkWidget   *extra)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *chooser;
  gchar     *path = NULL;

  chooser = gtk_file_chooser_dialog_new (
    title,
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_FILE_CHOOSER_ACTION_OPEN,
    _("_Cancel"), GTK_RESPONSE_CANCEL, accept, GTK_RESPONSE_ACCEPT, NULL);
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), model_filter ());
  if (extra)
    gtk_file_chooser_set_extra_widget (GTK_FILE_CHOOSER (chooser), extra);
  if (gtk_dialog_run (GTK_DIALOG (chooser)) == GTK_RESPONSE_ACCEPT)
    path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  gtk_widget_destroy (chooser);
  return path;
}

static void
browse_clicked (GtkButton   *button,
                CatdogPanel *panel)
{
  gchar *path = choose_model_file (panel, _("Choose a Model File"), _("_Open"),
                                   NULL);

  if (path)
    {
      GFile *file = g_file_new_for_path (path);

      catdog_panel_set_file (panel, file);
      g_object_unref (file);
      catdog_panel_refresh (panel);
      g_free (path);
    }
}

static void
show_message (CatdogPanel    *panel,
              GtkMessageType  type,
              const gchar    *primary,
              const gchar    *secondary)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *dialog;

  dialog = gtk_message_dialog_new (
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT, type, GTK_BUTTONS_CLOSE,
    "%s", primary);
  gtk_message_dialog_format_secondary_text (GTK_MESSAGE_DIALOG (dialog), "%s",
                                            secondary);
  gtk_dialog_run (GTK_DIALOG (dialog));
  gtk_widget_destroy (dialog);
}

static gboolean
ask_replace (CatdogPanel *panel,
             const gchar *message)
{
  GtkWidget *toplevel = gtk_widget_get_toplevel (GTK_WIDGET (panel));
  GtkWidget *dialog;
  gint       response;

  dialog = gtk_message_dialog_new (
    GTK_IS_WINDOW (toplevel) ? GTK_WINDOW (toplevel) : NULL,
    GTK_DIALOG_MODAL | GTK_DIALOG_DESTROY_WITH_PARENT, GTK_MESSAGE_QUESTION,
    GTK_BUTTONS_NONE, "%s", message);
  gtk_message_dialog_format_secondary_text (
    GTK_MESSAGE_DIALOG (dialog), "%s",
    _("Replacing it changes the model for everything that uses it."));
  gtk_dialog_add_buttons (GTK_DIALOG (dialog), _("_Cancel"),
                          GTK_RESPONSE_CANCEL, _("_Replace"),
                          GTK_RESPONSE_ACCEPT, NULL);
  response = gtk_dialog_run (GTK_DIALOG (dialog));
  gtk_widget_destroy (dialog);
  return response == GTK_RESPONSE_ACCEPT;
}

static void
install_clicked (GtkButton   *button,
                 CatdogPanel *panel)
{
  GtkWidget *make_default;
  gchar     *source, *installed;
  GError    *error = NULL;

  make_default = gtk_check_button_new_with_mnemonic (
    _("Make it the _default model"));
  gtk_widget_show (make_default);
  source = choose_model_file (panel, _("Install Weights"), _("_Install"),
                              make_default);
  if (! source)
    return;

  installed = catdog_models_install (panel->models_dir, source, FALSE, &error);
  if (! installed &&
      g_error_matches (error, CATDOG_MODELS_ERROR, CATDOG_MODELS_ERROR_EXISTS) &&
      ask_replace (panel, error->message))
    {
      g_clear_error (&error);
      installed = catdog_models_install (panel->models_dir, source, TRUE,
                                         &error);
    }
  if (installed)
    {
      GFile *file = g_file_new_for_path (installed);

      if (gtk_toggle_button_get_active (GTK_TOGGLE_BUTTON (make_default)) &&
          ! catdog_models_set_default (panel->models_dir, installed, &error))
        {
          show_message (panel, GTK_MESSAGE_ERROR,
                        _("The model is installed, but could not be made the "
                          "default."), error->message);
          g_clear_error (&error);
        }
      catdog_panel_set_file (panel, file);
      g_object_unref (file);
      catdog_panel_refresh (panel);
    }
  else if (error &&
           ! g_error_matches (error, CATDOG_MODELS_ERROR,
                              CATDOG_MODELS_ERROR_EXISTS))
    {
      show_message (panel, GTK_MESSAGE_ERROR,
                    _("The weights were not installed."), error->message);
    }
  g_clear_error (&error);
  g_free (installed);
  g_free (source);
}

static void
default_clicked (GtkButton   *button,
                 CatdogPanel *panel)
{
  gchar  *path  = catdog_panel_get_model_path (panel);
  GError *error = NULL;

  if (path && catdog_models_set_default (panel->models_dir, path, &error))
    {
      /* It is the default now: follow it. */
      catdog_panel_set_file (panel, NULL);
      catdog_panel_refresh (panel);
    }
  else if (error)
    {
      show_message (panel, GTK_MESSAGE_ERROR,
                    _("The model could not be made the default."),
                    error->message);
      g_clear_error (&error);
    }
  g_free (path);
}

GtkWidget *
catdog_panel_build_buttons (CatdogPanel *panel)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *button;

  button = gtk_button_new_with_mnemonic (_("_Browse..."));
  g_signal_connect (button, "clicked", G_CALLBACK (browse_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  button = gtk_button_new_with_mnemonic (_("_Install weights..."));
  gtk_widget_set_tooltip_text (button,
                               _("Check a model file and copy it into your "
                                 "models folder"));
  g_signal_connect (button, "clicked", G_CALLBACK (install_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  panel->default_button = gtk_button_new_with_mnemonic (_("Make _default"));
  g_signal_connect (panel->default_button, "clicked",
                    G_CALLBACK (default_clicked), panel);
  gtk_box_pack_start (GTK_BOX (row), panel->default_button, FALSE, FALSE, 0);
  return row;
}
