/* catdog-preview-private.h - what the preview's two files share:
 * catdog-preview.c (the object, the run, the verdict) and
 * catdog-preview-draw.c (photo, heat map, mosaic, large channel, marks).
 * The public API is catdog-preview.h. */
#ifndef CATDOG_PREVIEW_PRIVATE_H
#define CATDOG_PREVIEW_PRIVATE_H

#include "catdog-preview.h"
#include "catdog-channels.h"
#include "cnn.h"

/* One finished run: the network with its feature maps, the verdict, the
 * Grad-CAM map of the heat map's conv layer (NULL when it failed). */
typedef struct
{
  cnn_model *model;
  cnn_net   *net;
  gchar      label[32];
  gdouble    probability;
  float     *cam;
  gint       cam_w;
  gint       cam_h;
} CatdogPreviewRun;

struct _CatdogPreview
{
  GtkBox            parent_instance;

  GtkWidget        *spinner;
  GtkWidget        *status;
  GtkWidget        *photo;
  GtkWidget        *heat_check;
  GtkWidget        *mosaic;
  GtkWidget        *channel;
  GtkWidget        *channel_label;

  gchar            *model_path;
  GBytes           *pixels;        /* RGB at preview size */
  gint              width;
  gint              height;
  guint             generation;    /* of the latest run started */
  gboolean          busy;
  gboolean          disposed;
  gint64            started_us;
  gint64            verdict_us;    /* pixels or model to verdict */
  CatdogPreviewRun *run;
  gchar            *error;

  gchar            *layer;
  gchar            *heat_layer;    /* NULL: the last conv layer */
  gboolean          tta;           /* test-time flip averaging */
  cnn_colormap      colormap;
  gint              top;
  GPtrArray        *marks;         /* CatdogChannelPick */

  /* What is drawn, rebuilt by catdog_preview_redraw(). */
  GdkPixbuf        *photo_pixbuf;
  GdkPixbuf        *heat_pixbuf;   /* RGBA, the photo's size */
  GdkPixbuf        *mosaic_pixbuf;
  GdkPixbuf        *channel_pixbuf;
  gint              tap;           /* of the mosaic; -1: none */
  gint              n_tiles;
  gint             *order;         /* tile -> channel */
  gfloat           *means;         /* channel -> mean activation */
  gint              cols;
  gint              tile_w;
  gint              tile_h;
  gint              focus;         /* tile; -1: none */
  gint              hover;         /* tile; -1: none */
  gint64            redraw_us;     /* the last mosaic rebuild */
};

/* catdog-preview.c */
void catdog_preview_run_free       (CatdogPreviewRun *run);
void catdog_preview_notify_channels (CatdogPreview   *preview);
/* Sets *field to a copy of value; FALSE when it was that already. */
gboolean catdog_preview_take_string (gchar       **field,
                                     const gchar  *value);

/* catdog-preview-draw.c */
/* The views under the status line. */
void catdog_preview_build_views    (CatdogPreview *preview);
/* New pixels: the photo view. */
void catdog_preview_photo_changed  (CatdogPreview *preview);
/* New run, layer, colormap or top: heat map, mosaic and large channel. */
void catdog_preview_redraw         (CatdogPreview *preview);
/* After a run: drops marks the new network has no room for. */
void catdog_preview_keep_marks     (CatdogPreview *preview);
void catdog_preview_clear_pictures (CatdogPreview *preview);

#endif /* CATDOG_PREVIEW_PRIVATE_H */
