/* catdog-preview.h - the dialog's live preview (GTK 3, no libgimp): the
 * network run once on the pixels the plug-in would classify, in a worker
 * thread, its verdict, the mosaic of one conv layer, one channel large,
 * the Grad-CAM heat map over the photo, and channels picked by clicking.
 *
 * The plug-in hands it the pixels (catdog_preview_set_pixels(); it keeps
 * a copy at preview size only, at most CATDOG_PREVIEW_MAX_SIDE on a side,
 * and classifies that) and the model (catdog_preview_set_model()); each
 * of these runs the network again, and so does another conv layer for the
 * heat map (catdog_preview_set_heat_layer()).  Layer, colormap and top-K
 * only redraw
 * (catdog_preview_set_layer(), _set_colormap(), _set_top()).
 *
 * Properties:
 *   "channels"  string  the marked channels, as the "channels" argument
 *                       (catdog-channels.h): "conv3:5,17;conv4:2", "" for
 *                       none (read-only)
 *   "busy"      boolean the network is running (read-only)
 *
 * The mosaic takes the keyboard focus: the arrow keys move the focus tile
 * (shown large), space marks or unmarks it; a click marks or unmarks the
 * tile under the pointer, pointing shows it large.  Failures (no model,
 * a model that does not load, no pixels) show as a message in the pane. */
#ifndef CATDOG_PREVIEW_H
#define CATDOG_PREVIEW_H

#include <gtk/gtk.h>

#define CATDOG_PREVIEW_MAX_SIDE 480

#define CATDOG_TYPE_PREVIEW (catdog_preview_get_type ())
G_DECLARE_FINAL_TYPE (CatdogPreview, catdog_preview, CATDOG, PREVIEW, GtkBox)

GtkWidget   *catdog_preview_new           (void);

/* 8-bit sRGB, 3 (RGB) or 4 (RGBA) channels, rows stride bytes apart;
 * copied (reduced to preview size) before this returns. */
void         catdog_preview_set_pixels    (CatdogPreview *preview,
                                           const guint8  *pixels,
                                           gint           width,
                                           gint           height,
                                           gsize          stride,
                                           gint           channels);
/* The pixels could not be read: message shown in the pane. */
void         catdog_preview_set_error     (CatdogPreview *preview,
                                           const gchar   *message);
/* The model file; NULL: none.  The same path again changes nothing. */
void         catdog_preview_set_model     (CatdogPreview *preview,
                                           const gchar   *path);
/* The conv layer whose mosaic shows; NULL: none (the mosaic is empty). */
void         catdog_preview_set_layer     (CatdogPreview *preview,
                                           const gchar   *layer);
/* "gray" or "viridis". */
void         catdog_preview_set_colormap  (CatdogPreview *preview,
                                           const gchar   *colormap);
/* The mosaic shows the layer's top most active channels, most active
 * first; 0: all, in order. */
void         catdog_preview_set_top       (CatdogPreview *preview,
                                           gint           top);
/* The conv layer of the heat map over the photo; NULL or "": the last
 * one.  Another layer runs the network again. */
void         catdog_preview_set_heat_layer (CatdogPreview *preview,
                                            const gchar   *layer);
/* Test-time flip averaging of the verdict (cnn_net_forward_flip()); the
 * mosaic and the heat map show the image as it is.  A change runs the
 * network again. */
void         catdog_preview_set_tta       (CatdogPreview *preview,
                                           gboolean       tta);
/* Forgets the marks. */
void         catdog_preview_clear_marks   (CatdogPreview *preview);

/* After a run: TRUE with the verdict shown, its label (the model's word;
 * owned by the preview) and probability; FALSE while none is shown. */
gboolean     catdog_preview_get_verdict   (CatdogPreview *preview,
                                           const gchar  **label,
                                           gdouble       *probability);
/* The message shown for a failure, or NULL. */
const gchar *catdog_preview_get_error     (CatdogPreview *preview);
/* Channels the mosaic shows (0 without one) and the one at the focus
 * tile (-1: none). */
gint         catdog_preview_get_n_tiles   (CatdogPreview *preview);
gint         catdog_preview_get_focus_channel (CatdogPreview *preview);
/* The size of the preview's copy of the pixels (0 x 0 without one). */
void         catdog_preview_get_size      (CatdogPreview *preview,
                                           gint          *width,
                                           gint          *height);
/* The widgets, for tests and accessibility tools. */
GtkWidget   *catdog_preview_get_mosaic    (CatdogPreview *preview);
GtkWidget   *catdog_preview_get_photo     (CatdogPreview *preview);
GtkToggleButton *catdog_preview_get_heat_toggle (CatdogPreview *preview);
/* Microseconds from the pixels (or model) handed over to the verdict
 * shown, of the last run; and of the last mosaic rebuild (a new run,
 * colormap or top; 0 after a layer switch, which the caller times). */
gint64       catdog_preview_get_verdict_time (CatdogPreview *preview);
gint64       catdog_preview_get_redraw_time  (CatdogPreview *preview);
/* The text under the large channel: "conv3 #17, mean 0.412". */
const gchar *catdog_preview_get_channel_text (CatdogPreview *preview);

#endif /* CATDOG_PREVIEW_H */
