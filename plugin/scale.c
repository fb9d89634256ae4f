/* scale.c - enlarging and reducing feature maps for their layers.
 *
 * Plain integer arithmetic so that a test can recompute every pixel:
 * nearest neighbour keeps each map pixel a crisp block (the values stay
 * exactly those of the renderer), a box average keeps the 1-pixel gaps
 * of a reduced mosaic visible as darker lines instead of dropping them.
 * Pure arithmetic: calls nothing else in the plug-in. */
#include "catdog-plugin.h"

void
catdog_fit_size (gint  width,
                 gint  height,
                 gint  max_width,
                 gint  max_height,
                 gint *out_width,
                 gint *out_height)
{
  gint64 w = MAX (width, 1);
  gint64 h = MAX (height, 1);

  /* Compare the aspect ratios without rounding: max_w / w <= max_h / h. */
  if ((gint64) max_width * h <= (gint64) max_height * w)
    {
      *out_width  = max_width;
      *out_height = (gint) CLAMP ((2 * h * max_width + w) / (2 * w),
                                  1, max_height);
    }
  else
    {
      *out_height = max_height;
      *out_width  = (gint) CLAMP ((2 * w * max_height + h) / (2 * h),
                                  1, max_width);
    }
}

/* Source range [*first, *last) that destination index d covers. */
static void
source_range (gint  d,
              gint  src_n,
              gint  dst_n,
              gint *first,
              gint *last)
{
  if (dst_n >= src_n)
    {
      *first = (gint) (((gint64) 2 * d + 1) * src_n / ((gint64) 2 * dst_n));
      *last  = *first + 1;
    }
  else
    {
      *first = (gint) ((gint64) d * src_n / dst_n);
      *last  = (gint) ((gint64) (d + 1) * src_n / dst_n);
    }
}

void
catdog_resample_rows (const CatdogPicture *src,
                      gint                 dst_width,
                      gint                 dst_height,
                      gint                 row0,
                      gint                 row1,
                      guint8              *dst)
{
  gint channels = src->channels;

  for (gint y = row0; y < row1; y++)
    {
      guint8 *out = dst + (gsize) (y - row0) * dst_width * channels;
      gint    y0, y1;

      source_range (y, src->height, dst_height, &y0, &y1);

      for (gint x = 0; x < dst_width; x++)
        {
          gint x0, x1;

          source_range (x, src->width, dst_width, &x0, &x1);

          for (gint c = 0; c < channels; c++)
            {
              guint64 sum = 0;
              guint64 n   = (guint64) (y1 - y0) * (guint64) (x1 - x0);

              for (gint sy = y0; sy < y1; sy++)
                {
                  const guint8 *row = src->pixels + (gsize) sy * src->stride;

                  for (gint sx = x0; sx < x1; sx++)
                    sum += row[(gsize) sx * channels + c];
                }
              out[(gsize) x * channels + c] = (guint8) ((sum + n / 2) / n);
            }
        }
    }
}
