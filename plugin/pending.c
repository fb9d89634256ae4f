/* pending.c - new layers go into the image all at once, or not at all.
 *
 * Every layer the plug-in adds is created and filled while it is still
 * detached from the layer tree (a CatdogPending holds it); only when all
 * pixels are written are the groups and layers inserted, inside one undo
 * group.  A failure on the way (a bad layer name, no memory, a heat map
 * that cannot be computed) therefore deletes the detached layers and
 * leaves the image as it was.
 *
 * What a CatdogPending holds, in the order it goes into the image:
 * - at most one outer group (the feature maps), holding batches: a
 *   sub-group each, or (a batch without a name) layers straight in the
 *   outer group;
 * - top-level layers above that group (the heat map), the last added on
 *   top.
 * Calls only errors.c. */
#include "catdog-plugin.h"

typedef struct
{
  gchar     *name;     /* sub-group name; NULL: straight into the outer group */
  GPtrArray *layers;   /* GimpLayer *, detached until inserted */
  guint      inserted; /* how many of layers are in the image */
} Batch;

struct _CatdogPending
{
  gchar     *group_name; /* the outer group; NULL: none */
  GPtrArray *batches;    /* Batch *, the outer group's contents */
  GPtrArray *above;      /* GimpLayer *, top-level, above the group; the
                            last added goes on top */
  guint      above_inserted;
};

static void
batch_free (gpointer data)
{
  Batch *batch = data;

  g_free (batch->name);
  g_ptr_array_unref (batch->layers);
  g_free (batch);
}

CatdogPending *
catdog_pending_new (void)
{
  CatdogPending *pending = g_new0 (CatdogPending, 1);

  pending->batches = g_ptr_array_new_with_free_func (batch_free);
  pending->above   = g_ptr_array_new ();
  return pending;
}

/* Deletes the layers that never made it into the image. */
void
catdog_pending_free (CatdogPending *pending)
{
  if (! pending)
    return;
  for (guint b = 0; b < pending->batches->len; b++)
    {
      Batch *batch = g_ptr_array_index (pending->batches, b);

      for (guint i = batch->inserted; i < batch->layers->len; i++)
        gimp_item_delete (GIMP_ITEM (g_ptr_array_index (batch->layers, i)));
    }
  for (guint i = pending->above_inserted; i < pending->above->len; i++)
    gimp_item_delete (GIMP_ITEM (g_ptr_array_index (pending->above, i)));
  g_ptr_array_unref (pending->batches);
  g_ptr_array_unref (pending->above);
  g_free (pending->group_name);
  g_free (pending);
}

gboolean
catdog_pending_has_group (const CatdogPending *pending)
{
  return pending->group_name != NULL;
}

void
catdog_pending_set_group (CatdogPending *pending,
                          const gchar   *group_name)
{
  g_return_if_fail (pending->group_name == NULL);

  pending->group_name = g_strdup (group_name);
}

void
catdog_pending_begin_batch (CatdogPending *pending,
                            const gchar   *name)
{
  Batch *batch = g_new0 (Batch, 1);

  batch->name   = g_strdup (name);
  batch->layers = g_ptr_array_new ();
  g_ptr_array_add (pending->batches, batch);
}

void
catdog_pending_add_to_group (CatdogPending *pending,
                             GimpLayer     *layer)
{
  Batch *batch;

  g_return_if_fail (pending->batches->len > 0);

  batch = g_ptr_array_index (pending->batches, pending->batches->len - 1);
  g_ptr_array_add (batch->layers, layer);
}

void
catdog_pending_add_layer (CatdogPending *pending,
                          GimpLayer     *layer)
{
  g_ptr_array_add (pending->above, layer);
}

GimpLayer *
catdog_layer_new (GimpImage      *image,
                  const gchar    *name,
                  gint            width,
                  gint            height,
                  GimpImageType   type,
                  gdouble         opacity,
                  GError        **error)
{
  GimpLayer *layer = gimp_layer_new (image, name, width, height, type,
                                     opacity, GIMP_LAYER_MODE_NORMAL);

  if (! layer)
    g_set_error (error, CATDOG_ERROR, 0,
                 _("Could not create the layer \"%s\" (%d x %d): %s"),
                 name, width, height, catdog_pdb_error ());
  return layer;
}

/* Puts the outer group and the sub-groups and layers it holds into the
 * image at (parent, position), in order, top to bottom.  *outer gets the
 * group once it is in the image. */
static gboolean
insert_group (CatdogPending  *pending,
              GimpImage      *image,
              GimpLayer      *parent,
              gint            position,
              GimpLayer     **outer)
{
  GimpLayer *group = GIMP_LAYER (gimp_group_layer_new (image,
                                                       pending->group_name));
  gboolean   ok    = FALSE;

  *outer = NULL;
  if (group && gimp_image_insert_layer (image, group, parent, position))
    {
      *outer = group;
      ok     = TRUE;
    }
  else if (group)
    {
      gimp_item_delete (GIMP_ITEM (group));
    }

  for (guint b = 0; ok && b < pending->batches->len; b++)
    {
      Batch     *batch = g_ptr_array_index (pending->batches, b);
      GimpLayer *into  = group;

      if (batch->name)
        {
          into = GIMP_LAYER (gimp_group_layer_new (image, batch->name));
          ok   = into && gimp_image_insert_layer (image, into, group, (gint) b);
          if (! ok && into)
            gimp_item_delete (GIMP_ITEM (into));
        }
      for (guint i = 0; ok && i < batch->layers->len; i++)
        {
          ok = gimp_image_insert_layer (image,
                                        g_ptr_array_index (batch->layers, i),
                                        into, (gint) i);
          if (ok)
            batch->inserted = i + 1;
        }
    }
  return ok;
}

gboolean
catdog_pending_insert (CatdogPending  *pending,
                       GimpImage      *image,
                       GimpLayer      *above,
                       GError        **error)
{
  GimpLayer *parent   = NULL;
  GimpLayer *outer    = NULL;
  gint       position = 0;
  gboolean   ok       = TRUE;

  if (above)
    {
      parent   = GIMP_LAYER (gimp_item_get_parent (GIMP_ITEM (above)));
      position = gimp_image_get_item_position (image, GIMP_ITEM (above));
    }

  gimp_image_undo_group_start (image);
  gimp_image_freeze_layers (image);

  /* From the bottom up, each new item at `position` pushes the earlier
   * ones down: the group right above `above`, the other layers above it,
   * the last added on top. */
  if (pending->group_name)
    ok = insert_group (pending, image, parent, position, &outer);
  for (guint i = 0; ok && i < pending->above->len; i++)
    {
      ok = gimp_image_insert_layer (image,
                                    g_ptr_array_index (pending->above, i),
                                    parent, position);
      if (ok)
        pending->above_inserted = i + 1;
    }

  if (! ok)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Could not add the new layers: %s"), catdog_pdb_error ());
      /* Removing the group takes whatever was already inserted with it;
       * catdog_pending_free() deletes the rest. */
      if (outer)
        gimp_image_remove_layer (image, outer);
      for (guint i = 0; i < pending->above_inserted; i++)
        gimp_image_remove_layer (image, g_ptr_array_index (pending->above, i));
      g_ptr_array_remove_range (pending->above, 0, pending->above_inserted);
      pending->above_inserted = 0;
    }

  gimp_image_thaw_layers (image);
  gimp_image_undo_group_end (image);
  return ok;
}
