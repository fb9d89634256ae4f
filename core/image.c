/* image.c - JPEG decoding with libjpeg-turbo: scaled decoding, EXIF
 * orientation, CMYK/YCCK conversion and strict limits.  Images are
 * untrusted input: every size is checked before anything is allocated for
 * it, and libjpeg's fatal errors come back here through longjmp instead of
 * ending the process. */
#include "cnn_internal.h"

#include <limits.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* A JPEG file larger than this is refused before it is read. */
#define MAX_FILE_BYTES ((size_t)512 << 20)
/* libjpeg's own working memory.  A baseline decode needs a few MB; a
 * progressive one keeps every DCT coefficient (about 2 bytes per sample),
 * which for a hostile header could be many GB. */
#define MAX_DECODER_BYTES ((long)1 << 30)
/* Progressive files normally have about 10 scans; thousands of tiny scans
 * are a known way to make a small file take minutes to decode. */
#define MAX_SCANS 1000
/* Scans can also be few but each cover the whole image: the work is the
 * blocks all scans read.  libjpeg's own progressive files read each block
 * about 6 times (the DC scans and 4 AC scans for luma); beyond this many
 * passes over the whole image, or MIN_SCAN_BLOCKS for small images, a file
 * is refused.  Repeating one 99-byte scan of an 8192 x 8192 image 980
 * times (a 0.5 MB file) would otherwise take about 20 s. */
#define MAX_SCAN_PASSES 32
#define MIN_SCAN_BLOCKS ((uint64_t)1 << 22)

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int code;      /* libjpeg message code of the failure */
    int warning;   /* the failure was a warning we treat as fatal */
    int too_many_scans;
    int too_much_work;
    int last_scan;           /* input_scan_number already counted */
    uint64_t scan_blocks;    /* blocks read by the scans so far */
    uint64_t block_budget;
} jpeg_guard;

/* State that must survive a longjmp out of libjpeg: it lives on the heap,
 * not in the frame of the function that calls setjmp (whose modified
 * locals would be indeterminate after the jump). */
typedef struct {
    const char *name;
    struct jpeg_decompress_struct cinfo;
    jpeg_guard err;
    struct jpeg_progress_mgr progress;
    int created;
    uint8_t *decoded;  /* stored orientation */
    uint8_t *row;      /* one CMYK scanline */
} jpeg_job;

static void guard_error_exit(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    g->code = g->pub.msg_code;
    (*g->pub.format_message)(cinfo, g->message);
    longjmp(g->jump, 1);
}

/* Warnings that mean pixels are missing or wrong stop the decode; the rest
 * (unknown JFIF revision, junk bytes between markers, ...) are harmless. */
static void guard_emit_message(j_common_ptr cinfo, int level)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (level >= 0) return; /* trace output */
    g->pub.num_warnings++;
    switch (g->pub.msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        g->code = g->pub.msg_code;
        g->warning = 1;
        (*g->pub.format_message)(cinfo, g->message);
        longjmp(g->jump, 1);
    default:
        break;
    }
}

static void guard_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* libjpeg calls this at least once per scan (and per row of blocks), so
 * each scan is counted when it starts, before its data is decoded. */
static void scan_limit_monitor(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo; /* only installed on one */
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (d->input_scan_number > MAX_SCANS) {
        g->too_many_scans = 1;
        longjmp(g->jump, 1);
    }
    if (d->input_scan_number == g->last_scan) return;
    g->last_scan = d->input_scan_number;
    for (int i = 0; i < d->comps_in_scan && i < MAX_COMPS_IN_SCAN; i++) {
        const jpeg_component_info *c = d->cur_comp_info[i];
        if (c) g->scan_blocks += (uint64_t)c->width_in_blocks * c->height_in_blocks;
    }
    if (g->scan_blocks > g->block_budget) {
        g->too_much_work = 1;
        longjmp(g->jump, 1);
    }
}

/* The scans' block budget of a file whose header has been read. */
static uint64_t scan_block_budget(j_decompress_ptr d)
{
    uint64_t blocks = 0;
    for (int i = 0; i < d->num_components; i++)
        blocks += (uint64_t)d->comp_info[i].width_in_blocks * d->comp_info[i].height_in_blocks;
    uint64_t budget = blocks * MAX_SCAN_PASSES;
    return budget > MIN_SCAN_BLOCKS ? budget : MIN_SCAN_BLOCKS;
}

/* What a buffer that is not a JPEG looks like, for the error message.
 * Returns CNN_ERR_UNSUPPORTED for other image formats, else
 * CNN_ERR_FORMAT. */
static cnn_status describe_non_jpeg(const uint8_t *p, size_t n, const char **what)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(p, png_sig, 8) == 0) { *what = "a PNG image"; return CNN_ERR_UNSUPPORTED; }
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) {
        *what = "a GIF image";
        return CNN_ERR_UNSUPPORTED;
    }
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) {
        *what = "a WebP image";
        return CNN_ERR_UNSUPPORTED;
    }
    if (n >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0)) {
        *what = "a TIFF image";
        return CNN_ERR_UNSUPPORTED;
    }
    if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
        *what = "an ISO media file (HEIF, AVIF or video)";
        return CNN_ERR_UNSUPPORTED;
    }
    if (n >= 14 && p[0] == 'B' && p[1] == 'M') { *what = "a BMP image"; return CNN_ERR_UNSUPPORTED; }
    if (n >= 5 && memcmp(p, "%PDF-", 5) == 0) { *what = "a PDF document"; return CNN_ERR_FORMAT; }

    /* Text: no control characters other than white space in the first
     * bytes (binary data almost always has some). */
    size_t look = n < 512 ? n : 512;
    int text = 1;
    for (size_t i = 0; i < look && text; i++) {
        uint8_t c = p[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f)
            text = 0;
    }
    *what = text ? "text" : NULL;
    return CNN_ERR_FORMAT;
}

/* ---- EXIF orientation ---------------------------------------------- */

static unsigned tiff_u16(const uint8_t *p, int big)
{
    return big ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t tiff_u32(const uint8_t *p, int big)
{
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* Orientation tag (0x0112) of IFD0 in an APP1 "Exif" payload, or 0 when
 * absent or malformed: a broken EXIF block must not stop a photo from
 * decoding, it only loses its orientation. */
static int exif_orientation(const uint8_t *p, size_t n)
{
    static const uint8_t exif_id[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (n < 6 || memcmp(p, exif_id, 6) != 0) return 0;
    const uint8_t *t = p + 6; /* TIFF header; offsets are relative to it */
    size_t tn = n - 6;
    if (tn < 8) return 0;
    int big;
    if (t[0] == 'I' && t[1] == 'I') big = 0;
    else if (t[0] == 'M' && t[1] == 'M') big = 1;
    else return 0;
    if (tiff_u16(t + 2, big) != 42) return 0;
    uint64_t ifd = tiff_u32(t + 4, big);
    if (ifd + 2 > tn) return 0;
    unsigned count = tiff_u16(t + ifd, big);
    if (ifd + 2 + (uint64_t)count * 12 > tn) return 0;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *e = t + ifd + 2 + (size_t)i * 12;
        if (tiff_u16(e, big) != 0x0112) continue;
        /* SHORT (type 3), one value, stored in the first 2 value bytes. */
        if (tiff_u16(e + 2, big) != 3 || tiff_u32(e + 4, big) != 1) return 0;
        unsigned v = tiff_u16(e + 8, big);
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* EXIF orientation of a JPEG buffer (1 when absent): walks the marker
 * segments up to the first scan and reads the first APP1 "Exif" block
 * that has a valid orientation.  Done here rather than through
 * jpeg_save_markers() so that no marker data is ever copied. */
static int find_orientation(const uint8_t *p, size_t n)
{
    size_t pos = 2; /* after SOI */
    while (pos + 4 <= n) {
        if (p[pos] != 0xff) return 1;
        uint8_t marker = p[pos + 1];
        if (marker == 0xff) { /* fill byte */
            pos++;
            continue;
        }
        if (marker == 0xda || marker == 0xd9) return 1; /* SOS, EOI */
        if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { /* no length */
            pos += 2;
            continue;
        }
        size_t len = (size_t)p[pos + 2] << 8 | p[pos + 3];
        if (len < 2 || len > n - pos - 2) return 1;
        if (marker == 0xe1) {
            int o = exif_orientation(p + pos + 4, len - 2);
            if (o) return o;
        }
        pos += 2 + len;
    }
    return 1;
}

/* Display pixel (dx, dy) comes from stored pixel
 *   sx = ax*dx + bx*dy + cx*(W-1),  sy = ay*dx + by*dy + cy*(H-1)
 * for the stored size W x H (EXIF 2.3, tag 0x0112). */
static const struct { int ax, bx, cx, ay, by, cy; } orient_map[9] = {
    [1] = {1, 0, 0, 0, 1, 0},   /* as stored */
    [2] = {-1, 0, 1, 0, 1, 0},  /* mirrored left-right */
    [3] = {-1, 0, 1, 0, -1, 1}, /* rotated 180 */
    [4] = {1, 0, 0, 0, -1, 1},  /* mirrored top-bottom */
    [5] = {0, 1, 0, 1, 0, 0},   /* transposed */
    [6] = {0, 1, 0, -1, 0, 1},  /* needs 90 degrees clockwise */
    [7] = {0, -1, 1, -1, 0, 1}, /* transversed */
    [8] = {0, -1, 1, 1, 0, 0},  /* needs 90 degrees counter-clockwise */
};

static void apply_orientation(const uint8_t *src, int w, int h, int ch, int o,
                              uint8_t *dst)
{
    int dw = o >= 5 ? h : w, dh = o >= 5 ? w : h;
    ptrdiff_t sstride = (ptrdiff_t)w * ch;
    ptrdiff_t step_x = (ptrdiff_t)orient_map[o].ax * ch + (ptrdiff_t)orient_map[o].ay * sstride;
    ptrdiff_t step_y = (ptrdiff_t)orient_map[o].bx * ch + (ptrdiff_t)orient_map[o].by * sstride;
    ptrdiff_t origin = (ptrdiff_t)orient_map[o].cx * (w - 1) * ch +
                       (ptrdiff_t)orient_map[o].cy * (h - 1) * sstride;
    for (int dy = 0; dy < dh; dy++) {
        ptrdiff_t s = origin + dy * step_y;
        uint8_t *d = dst + (size_t)dy * (size_t)dw * (size_t)ch;
        for (int dx = 0; dx < dw; dx++, s += step_x, d += ch)
            for (int c = 0; c < ch; c++) d[c] = src[s + c];
    }
}

/* ---- CMYK ---------------------------------------------------------- */

static uint8_t mul255(unsigned a, unsigned b) { return (uint8_t)((2 * a * b + 255) / 510); }

/* Naive CMYK -> RGB, R = (1 - C)(1 - K) (as GIMP's babl does without a
 * profile).  Adobe applications write inverted samples (255 = no ink) and
 * mark their files with an APP14 "Adobe" segment. */
static void cmyk_row_to_rgb(const uint8_t *in, int w, int adobe, uint8_t *out)
{
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        unsigned c = in[0], m = in[1], y = in[2], k = in[3];
        if (!adobe) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        out[0] = mul255(c, k);
        out[1] = mul255(m, k);
        out[2] = mul255(y, k);
    }
}

/* ---- decoding ------------------------------------------------------ */

static cnn_status map_libjpeg_failure(jpeg_job *job, size_t size)
{
    const jpeg_guard *g = &job->err;
    if (g->too_many_scans)
        return cnn_fail(CNN_ERR_LIMIT, "%s: progressive JPEG with more than %d scans", job->name,
                        MAX_SCANS);
    if (g->too_much_work)
        return cnn_fail(CNN_ERR_LIMIT,
                        "%s: progressive JPEG whose scans read the image more than %d times "
                        "over (scan %d); refused as too slow to decode", job->name,
                        MAX_SCAN_PASSES, g->last_scan);
    if (g->warning && g->code == JWRN_JPEG_EOF)
        return cnn_fail(CNN_ERR_FORMAT, "%s: truncated JPEG (data ends after %zu bytes)",
                        job->name, size);
    if (g->warning)
        return cnn_fail(CNN_ERR_FORMAT, "%s: corrupt JPEG data (%s)", job->name, g->message);
    switch (g->code) {
    case JERR_NO_BACKING_STORE:
        /* libjpeg's answer when its whole-image buffers exceed
         * max_memory_to_use: it would need a temporary file. */
        return cnn_fail(CNN_ERR_LIMIT,
                        "%s: decoding needs more than the decoder memory limit of %ld MiB",
                        job->name, MAX_DECODER_BYTES >> 20);
    case JERR_OUT_OF_MEMORY:
        return cnn_fail(CNN_ERR_NOMEM, "%s: out of memory while decoding (%s)", job->name,
                        g->message);
    case JERR_IMAGE_TOO_BIG:
        return cnn_fail(CNN_ERR_LIMIT, "%s: %s", job->name, g->message);
    case JERR_BAD_PRECISION:
    case JERR_SOF_UNSUPPORTED:
    case JERR_NOT_COMPILED:
    case JERR_CONVERSION_NOTIMPL:
        return cnn_fail(CNN_ERR_UNSUPPORTED, "%s: unsupported JPEG (%s)", job->name, g->message);
    default:
        return cnn_fail(CNN_ERR_FORMAT, "%s: corrupt JPEG (%s)", job->name, g->message);
    }
}

/* Smallest M/8 scale that keeps the displayed image at least min_w x
 * min_h (1/1 when none does, or when both are 0); leaves cinfo's output
 * size computed. */
static void choose_scale(j_decompress_ptr cinfo, int swapped, int min_w, int min_h)
{
    for (unsigned num = 1; num <= 8 && (min_w > 0 || min_h > 0); num++) {
        cinfo->scale_num = num;
        cinfo->scale_denom = 8;
        jpeg_calc_output_dimensions(cinfo);
        uint64_t w = swapped ? cinfo->output_height : cinfo->output_width;
        uint64_t h = swapped ? cinfo->output_width : cinfo->output_height;
        if (w >= (uint64_t)min_w && h >= (uint64_t)min_h) return;
    }
    cinfo->scale_num = 8;
    cinfo->scale_denom = 8;
    jpeg_calc_output_dimensions(cinfo);
}

/* Everything that may longjmp back to decode_guarded(). */
static cnn_status decode_body(jpeg_job *job, const uint8_t *data, size_t size,
                              const cnn_image_options *opt, cnn_image *out)
{
    j_decompress_ptr cinfo = &job->cinfo;
    jpeg_create_decompress(cinfo);
    job->created = 1;
    cinfo->mem->max_memory_to_use = MAX_DECODER_BYTES;
    job->progress.progress_monitor = scan_limit_monitor;
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK)
        return cnn_fail(CNN_ERR_FORMAT, "%s: JPEG holds tables but no image", job->name);
    job->err.block_budget = scan_block_budget(cinfo);

    uint64_t max_pixels = opt && opt->max_pixels ? opt->max_pixels : CNN_MAX_IMAGE_PIXELS;
    uint64_t declared = (uint64_t)cinfo->image_width * cinfo->image_height;
    if (declared > max_pixels)
        return cnn_fail(CNN_ERR_LIMIT, "%s: image is %u x %u pixels (%.1f MP), more than the limit of %.1f MP",
                        job->name, (unsigned)cinfo->image_width, (unsigned)cinfo->image_height,
                        (double)declared / 1e6, (double)max_pixels / 1e6);

    int channels, cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        channels = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK; /* libjpeg turns YCCK into CMYK */
        channels = 3;
        cmyk = 1;
        break;
    default:
        return cnn_fail(CNN_ERR_UNSUPPORTED, "%s: JPEG colour space with %d components is not supported",
                        job->name, cinfo->num_components);
    }

    int orientation = find_orientation(data, size);
    int swapped = orientation >= 5;
    choose_scale(cinfo, swapped, opt ? opt->min_width : 0, opt ? opt->min_height : 0);

    uint64_t decoded = (uint64_t)cinfo->output_width * cinfo->output_height;
    if (decoded > CNN_MAX_DECODED_PIXELS)
        return cnn_fail(CNN_ERR_LIMIT, "%s: decoded image would be %u x %u pixels, more than the limit of %.1f MP",
                        job->name, (unsigned)cinfo->output_width, (unsigned)cinfo->output_height,
                        (double)CNN_MAX_DECODED_PIXELS / 1e6);
    /* JPEG dimensions are 16-bit: they fit an int. */
    int w = (int)cinfo->output_width, h = (int)cinfo->output_height;

    size_t row_bytes, total;
    if (!cnn_mul_size((size_t)w, (size_t)channels, &row_bytes) ||
        !cnn_mul_size(row_bytes, (size_t)h, &total))
        return cnn_fail(CNN_ERR_LIMIT, "%s: image size overflows", job->name);
    job->decoded = cnn_alloc(total, 1);
    if (!job->decoded) return cnn_fail_prefix(CNN_ERR_NOMEM, "%s", job->name);
    if (cmyk) {
        job->row = cnn_alloc((size_t)w, 4);
        if (!job->row) return cnn_fail_prefix(CNN_ERR_NOMEM, "%s", job->name);
    }

    jpeg_start_decompress(cinfo);
    if (cinfo->output_width != (JDIMENSION)w || cinfo->output_height != (JDIMENSION)h ||
        cinfo->output_components != (cmyk ? 4 : channels))
        return cnn_fail(CNN_ERR_FORMAT, "%s: decoder output differs from its header", job->name);
    while (cinfo->output_scanline < cinfo->output_height) {
        uint8_t *dst = job->decoded + (size_t)cinfo->output_scanline * row_bytes;
        JSAMPROW rows[1] = {cmyk ? job->row : dst};
        if (jpeg_read_scanlines(cinfo, rows, 1) != 1)
            return cnn_fail(CNN_ERR_FORMAT, "%s: decoder stopped at row %u", job->name,
                            (unsigned)cinfo->output_scanline);
        if (cmyk) cmyk_row_to_rgb(job->row, w, cinfo->saw_Adobe_marker, dst);
    }
    /* jpeg_finish_decompress() is skipped on purpose: every pixel is in,
     * and a file that only lacks its final EOI marker is not worth
     * refusing. */

    if (orientation != 1) {
        uint8_t *turned = cnn_alloc(total, 1);
        if (!turned) return cnn_fail_prefix(CNN_ERR_NOMEM, "%s", job->name);
        apply_orientation(job->decoded, w, h, channels, orientation, turned);
        free(job->decoded);
        job->decoded = turned;
        if (swapped) {
            int t = w;
            w = h;
            h = t;
            row_bytes = (size_t)w * (size_t)channels;
        }
    }

    out->width = w;
    out->height = h;
    out->channels = channels;
    out->stride = row_bytes;
    out->pixels = job->decoded;
    job->decoded = NULL;
    return CNN_OK;
}

static cnn_status decode_guarded(jpeg_job *job, const uint8_t *data, size_t size,
                                 const cnn_image_options *opt, cnn_image *out)
{
    if (setjmp(job->err.jump)) return map_libjpeg_failure(job, size);
    return decode_body(job, data, size, opt, out);
}

static cnn_status decode(const char *name, const uint8_t *data, size_t size,
                         const cnn_image_options *opt, cnn_image *out)
{
    if (size == 0) return cnn_fail(CNN_ERR_FORMAT, "%s: empty file (0 bytes)", name);
    if (size < 2 || data[0] != 0xff || data[1] != 0xd8) {
        const char *what;
        cnn_status s = describe_non_jpeg(data, size, &what);
        if (what) return cnn_fail(s, "%s: not a JPEG file (it looks like %s)", name, what);
        return cnn_fail(s, "%s: not a JPEG file (starts with bytes %02x %02x)", name, data[0],
                        size > 1 ? data[1] : 0);
    }
#if SIZE_MAX > ULONG_MAX
    if (size > ULONG_MAX)
        return cnn_fail(CNN_ERR_LIMIT, "%s: %zu bytes is too large for the decoder", name, size);
#endif

    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return cnn_fail(CNN_ERR_NOMEM, "%s: out of memory", name);
    job->name = name;
    job->cinfo.err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = guard_error_exit;
    job->err.pub.emit_message = guard_emit_message;
    job->err.pub.output_message = guard_output_message;
    job->err.block_budget = UINT64_MAX; /* until the header is read */

    cnn_status s = decode_guarded(job, data, size, opt, out);
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
    free(job->decoded);
    free(job->row);
    free(job);
    return s;
}

static cnn_status check_call(const cnn_image_options *opt, cnn_image *out)
{
    if (!out) return cnn_fail(CNN_ERR_ARG, "image load: out is NULL");
    memset(out, 0, sizeof *out);
    if (opt && (opt->min_width < 0 || opt->min_height < 0))
        return cnn_fail(CNN_ERR_ARG, "image load: negative minimum size %d x %d", opt->min_width,
                        opt->min_height);
    return CNN_OK;
}

cnn_status cnn_image_load(const char *path, const cnn_image_options *opt, cnn_image *out)
{
    cnn_status s = check_call(opt, out);
    if (s != CNN_OK) return s;
    if (!path) return cnn_fail(CNN_ERR_ARG, "image load: path is NULL");
    void *data;
    size_t size;
    s = cnn_read_file(path, MAX_FILE_BYTES, &data, &size);
    if (s != CNN_OK) return s;
    s = decode(path, data, size, opt, out);
    free(data);
    return s;
}

cnn_status cnn_image_load_memory(const void *data, size_t size, const cnn_image_options *opt,
                                 cnn_image *out)
{
    cnn_status s = check_call(opt, out);
    if (s != CNN_OK) return s;
    if (!data && size) return cnn_fail(CNN_ERR_ARG, "image load: data is NULL");
    return decode("image in memory", data, size, opt, out);
}

void cnn_image_free(cnn_image *img)
{
    if (!img) return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
