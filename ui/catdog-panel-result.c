/* catdog-panel-result.c - the panel's verdict, shown once the image has
 * been classified: the label and a confidence bar. */
#include "catdog-panel-private.h"

#include <string.h>

#include <glib/gi18n-lib.h>

void
catdog_panel_show_result (CatdogPanel *panel,
                          const gchar *label,
                          gdouble      probability)
{
  gchar *markup, *percent;

  g_return_if_fail (CATDOG_IS_PANEL (panel));

  /* The label is the model's own word ("dog"), not translated. */
  markup = g_markup_printf_escaped ("<span size='x-large' weight='bold'>%s"
                                    "</span>", label);
  gtk_label_set_markup (GTK_LABEL (panel->result_label), markup);
  /* TRANSLATORS: text on the confidence bar: "87.3% confidence" */
  percent = g_strdup_printf (_("%.1f%% confidence"), 100.0 * probability);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (panel->result_bar),
                                 CLAMP (probability, 0.0, 1.0));
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (panel->result_bar), percent);
  gtk_widget_show_all (panel->result_box);
  g_free (percent);
  g_free (markup);
}

GtkWidget *
catdog_panel_build_result_section (CatdogPanel *panel)
{
  panel->result_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  panel->result_label = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (panel->result_label), 0.0);
  panel->result_bar = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (panel->result_bar), TRUE);
  gtk_box_pack_start (GTK_BOX (panel->result_box), panel->result_label,
                      FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (panel->result_box), panel->result_bar,
                      FALSE, FALSE, 0);
  return catdog_panel_framed (_("Result"), panel->result_box);
}
