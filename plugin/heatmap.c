/* heatmap.c - where the network looked, as a layer: Grad-CAM, occlusion
 * or integrated gradients (the "heatmap-method" argument).
 *
 * cnn_net_gradcam() gives a map the size of one conv layer's output (9x9
 * for the last conv layer of the shipped model) with values in [0, 1],
 * computed on the logit; cnn_cam_render() stretches it bilinearly over
 * the part of the classified region the network sees (all of it, or the
 * centred crop of a "crop" model), 0 elsewhere, and scales it so that its
 * hottest pixel is 255: the same map as `catdog cam --out` writes for a
 * photo.  Occlusion (window 15, stride 8, blur) and integrated gradients
 * (black baseline, the core's steps as needed for 1% completeness from
 * 32 steps, capped at CATDOG_HEATMAP_IG_MAX_STEPS for interactive use)
 * give maps at the network's input size, made non-negative and divided
 * by their maximum as `catdog cam` does, then rendered the same way; they
 * take a second or a few, with progress.  The layer covers exactly the classified region
 * (the canvas, or the selection's bounding box) and shows the value v as
 * colour and opacity at once: transparent where the
 * network did not look, through red and orange to yellow where it looked
 * most (R = 255, G = v, B = 0, alpha = v), at CATDOG_HEATMAP_OPACITY in
 * normal mode, so the photo shows through everywhere and stays untouched
 * where the map is 0.  A grayscale image cannot hold colours: there the
 * layer is white with the same alpha.
 *
 * The map is rendered at the region's size, or at most
 * CATDOG_HEATMAP_MAX_SIDE on a side and then enlarged with nearest
 * neighbour a strip at a time: it is smooth at that scale already, and a
 * huge image never needs a full-size buffer.
 *
 * Calls taps.c, pending.c, strips.c, scale.c and errors.c. */
#include "catdog-plugin.h"

#define CATDOG_HEATMAP_OPACITY 75.0

/* The strip writer's colour step: a map value v becomes (255, v, 0, v),
 * or on a grayscale image (255, v). */
static void
colorize (const guint8 *values,
          gsize         n,
          guint8       *out,
          gpointer      rgb)
{
  for (gsize i = 0; i < n; i++)
    {
      guint8 v = values[i];

      if (rgb)
        {
          out[0] = 255;
          out[1] = v;
          out[2] = 0;
          out[3] = v;
          out += 4;
        }
      else
        {
          out[0] = 255;
          out[1] = v;
          out += 2;
        }
    }
}

/* Progress of the slow methods: from the range's start to its end. */
typedef struct
{
  gdouble start, end;
} ProgressRange;

static void
progress (double   fraction,
          void    *data)
{
  const ProgressRange *r = data;

  gimp_progress_update (r->start + (r->end - r->start) * fraction);
}

/* The map of input by occlusion or integrated gradients at the input's
 * size (in_h x in_w floats in map), normalised to [0, 1]. */
static cnn_status
input_map (const cnn_model     *model,
           cnn_explain_method   method,
           const float         *input,
           ProgressRange       *range,
           float               *map)
{
  const gsize cells = (gsize) model->in_h * (gsize) model->in_w;
  cnn_status  st;
  float       top = 0.0f;

  if (method == CNN_EXPLAIN_OCCLUSION)
    {
      cnn_occlusion_options o;
      cnn_net              *batch_net = NULL;

      cnn_occlusion_options_init (&o);
      o.progress      = progress;
      o.progress_data = range;
      st = cnn_net_create (model, CATDOG_HEATMAP_BATCH, &batch_net);
      if (st == CNN_OK)
        st = cnn_net_set_threads (batch_net, 0);
      if (st == CNN_OK)
        st = cnn_occlusion_map (batch_net, CATDOG_HEATMAP_BATCH, input, &o,
                                map, cells, NULL);
      cnn_net_free (batch_net);
    }
  else
    {
      cnn_grad_options go = { -1, CATDOG_HEATMAP_BATCH, 0,
                              CNN_PRECISION_F32 };
      cnn_ig_options   o;
      cnn_grad        *grad = NULL;

      cnn_ig_options_init (&o);
      o.max_steps     = CATDOG_HEATMAP_IG_MAX_STEPS;
      o.progress      = progress;
      o.progress_data = range;
      st = cnn_grad_create (model, &go, &grad);
      if (st == CNN_OK)
        st = cnn_integrated_gradients (grad, input, &o, NULL, map, cells,
                                       NULL);
      cnn_grad_free (grad);
    }
  if (st != CNN_OK)
    return st;
  for (gsize i = 0; i < cells; i++)
    top = map[i] > top ? map[i] : top;
  for (gsize i = 0; i < cells; i++)
    map[i] = top > 0.0f && map[i] > 0.0f ? map[i] / top : 0.0f;
  return CNN_OK;
}

GimpLayer *
catdog_heatmap_layer (GimpImage           *image,
                      const cnn_model     *model,
                      cnn_net             *net,
                      const CatdogHeatmap *spec,
                      const CatdogPixels  *pixels,
                      GError             **error)
{
  GimpImageBaseType  base   = gimp_image_get_base_type (image);
  gboolean           rgb    = (base == GIMP_RGB);
  gint               width  = pixels->region_width;
  gint               height = pixels->region_height;
  const cnn_layer   *conv   = NULL;
  cnn_tensor_view    view;
  GimpLayer         *layer  = NULL;
  gfloat            *cam    = NULL;
  guint8            *map    = NULL;
  gint               tap, map_width, map_height, cam_w, cam_h;
  gsize              n_cam;
  cnn_status         st;
  gchar             *name;
  ProgressRange      range  = { spec->progress_start, spec->progress_end };

  if (base == GIMP_INDEXED)
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("A heat map cannot be added to an indexed image: its "
                     "palette would distort it. Convert it to RGB "
                     "(Image > Mode > RGB) or turn the heat map off."));
      return NULL;
    }
  if (spec->method == CNN_EXPLAIN_GRADCAM)
    {
      if (! catdog_find_tap (net, spec->layer_name, &tap, error))
        return NULL;
      st = cnn_net_tap (net, tap, &view, &conv);
      if (st != CNN_OK)
        {
          catdog_set_core_error (error, st, _("Heat map"));
          return NULL;
        }
      cam_w = view.w;
      cam_h = view.h;
    }
  else
    {
      cam_w = model->in_w;
      cam_h = model->in_h;
    }

  if (width <= CATDOG_HEATMAP_MAX_SIDE && height <= CATDOG_HEATMAP_MAX_SIDE)
    {
      map_width  = width;
      map_height = height;
    }
  else
    {
      catdog_fit_size (width, height, CATDOG_HEATMAP_MAX_SIDE,
                       CATDOG_HEATMAP_MAX_SIDE, &map_width, &map_height);
    }

  /* The map sizes come from the loaded (validated) model and the bound
   * above: no overflow. */
  n_cam = (gsize) cam_w * (gsize) cam_h;
  if (! (cam = g_try_new (gfloat, n_cam)) ||
      ! (map = g_try_malloc0 ((gsize) map_width * (gsize) map_height)))
    {
      g_set_error (error, CATDOG_ERROR, 0,
                   _("Not enough memory for the heat map."));
      goto out;
    }

  if (spec->method == CNN_EXPLAIN_GRADCAM)
    st = cnn_net_gradcam (net, 0, tap, cam, n_cam, NULL);
  else
    st = input_map (model, spec->method, spec->input, &range, cam);
  if (st == CNN_OK)
    st = cnn_cam_render (model, cam, cam_h, cam_w, map_width, map_height,
                         map, (size_t) map_width);
  if (st != CNN_OK)
    {
      gchar *prefix = conv ? g_strdup_printf (_("Cannot compute the heat map "
                                                "at %s"), conv->name)
                           : g_strdup (_("Cannot compute the heat map"));

      catdog_set_core_error (error, st, prefix);
      g_free (prefix);
      goto out;
    }

  if (spec->method == CNN_EXPLAIN_OCCLUSION)
    /* TRANSLATORS: name of the heat-map layer made by occlusion */
    name = g_strdup (_("Occlusion"));
  else if (spec->method == CNN_EXPLAIN_INTEGRATED_GRADIENTS)
    /* TRANSLATORS: name of the heat-map layer made by integrated gradients */
    name = g_strdup (_("Integrated gradients"));
  else
    /* TRANSLATORS: name of the heat-map layer; %s is a conv layer, "conv5" */
    name = g_strdup_printf (_("Grad-CAM (%s)"), conv->name);
  layer = catdog_layer_new (image, name, width, height,
                            rgb ? GIMP_RGBA_IMAGE : GIMP_GRAYA_IMAGE,
                            CATDOG_HEATMAP_OPACITY, error);
  g_free (name);
  if (! layer)
    goto out;

  gimp_layer_set_offsets (layer, pixels->region_x, pixels->region_y);
  if (! catdog_write_strips (layer,
                             &(CatdogPicture) { map, map_width, map_height,
                                                (gsize) map_width, 1 },
                             rgb ? 4 : 2, colorize, GINT_TO_POINTER (rgb),
                             error))
    {
      gimp_item_delete (GIMP_ITEM (layer));
      layer = NULL;
    }

out:
  g_free (map);
  g_free (cam);
  return layer;
}
