#include "CImageSupport.h"

#include <png.h>
#include <jpeglib.h>
#include <zlib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *msg) {
    if (err && errlen) { snprintf(err, errlen, "%s", msg); }
}

/* Width x height is checked against CIS_MAX_PIXELS before the pixels are allocated: a header of a
   few bytes can claim 65535 x 65535 (12 GB of RGB), which must be refused, not attempted. */
static int too_many_pixels(unsigned long width, unsigned long height, const char *format, char *err, size_t errlen) {
    if ((unsigned long long)width * (unsigned long long)height <= CIS_MAX_PIXELS) return 0;
    if (err && errlen) {
        snprintf(err, errlen, "%s image of %lu x %lu pixels is larger than the %llu pixels allowed", format, width, height,
                 (unsigned long long)CIS_MAX_PIXELS);
    }
    return 1;
}

void cis_free(void *p) { free(p); }

int cis_decode_png(const unsigned char *data, size_t length, int channels, unsigned char **out,
                   int *width, int *height, char *err, size_t errlen) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, length)) {
        set_err(err, errlen, image.message[0] ? image.message : "not a PNG file");
        return 1;
    }
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    if (image.width == 0 || image.height == 0 || image.width > 65535 || image.height > 65535) {
        png_image_free(&image);
        set_err(err, errlen, "PNG dimensions out of range");
        return 1;
    }
    if (too_many_pixels(image.width, image.height, "PNG", err, errlen)) { png_image_free(&image); return 1; }
    size_t size = PNG_IMAGE_SIZE(image);
    unsigned char *buffer = malloc(size);
    if (!buffer) { png_image_free(&image); set_err(err, errlen, "out of memory"); return 1; }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        set_err(err, errlen, image.message[0] ? image.message : "corrupt PNG data");
        free(buffer);
        png_image_free(&image);
        return 1;
    }
    *out = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    return 0;
}

struct jpeg_error_context {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_error_exit(j_common_ptr cinfo) {
    struct jpeg_error_context *ctx = (struct jpeg_error_context *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->message);
    longjmp(ctx->jump, 1);
}

static void jpeg_silent(j_common_ptr cinfo) { (void)cinfo; }

int cis_decode_jpeg(const unsigned char *data, size_t length, int channels, unsigned char **out,
                    int *width, int *height, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_context ctx;
    unsigned char *volatile buffer = NULL;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.base);
    ctx.base.error_exit = jpeg_error_exit;
    ctx.base.output_message = jpeg_silent;
    if (setjmp(ctx.jump)) {
        set_err(err, errlen, ctx.message[0] ? ctx.message : "corrupt JPEG data");
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)length);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
        set_err(err, errlen, "not a JPEG file");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    if (too_many_pixels(cinfo.image_width, cinfo.image_height, "JPEG", err, errlen)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    cinfo.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_width == 0 || cinfo.output_height == 0 || cinfo.output_width > 65535 || cinfo.output_height > 65535) {
        set_err(err, errlen, "JPEG dimensions out of range");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
    buffer = malloc(stride * cinfo.output_height);
    if (!buffer) { set_err(err, errlen, "out of memory"); jpeg_destroy_decompress(&cinfo); return 1; }
    /* Stops at the first warning (corrupt or missing data) instead of decoding the rest as gray. */
    while (cinfo.output_scanline < cinfo.output_height && ctx.base.num_warnings == 0) {
        JSAMPROW row = buffer + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    /* A truncated file produces a warning and gray fill; treat it as an error. */
    if (ctx.base.num_warnings > 0) {
        set_err(err, errlen, "JPEG data is truncated or corrupt");
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    *out = buffer;
    return 0;
}

int cis_encode_png(const unsigned char *pixels, int width, int height, int channels,
                   unsigned char **out, size_t *outLength, char *err, size_t errlen) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, pixels, 0, NULL)) {
        set_err(err, errlen, image.message[0] ? image.message : "PNG encoding failed");
        return 1;
    }
    unsigned char *buffer = malloc(size);
    if (!buffer) { set_err(err, errlen, "out of memory"); return 1; }
    if (!png_image_write_to_memory(&image, buffer, &size, 0, pixels, 0, NULL)) {
        set_err(err, errlen, image.message[0] ? image.message : "PNG encoding failed");
        free(buffer);
        return 1;
    }
    *out = buffer;
    *outLength = size;
    return 0;
}

int cis_gunzip(const unsigned char *data, size_t length, size_t maxOutput, unsigned char **out,
               size_t *outLength, char *err, size_t errlen) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, 15 + 32) != Z_OK) { set_err(err, errlen, "zlib initialisation failed"); return 1; }
    size_t capacity = length * 4 + 1024, used = 0;
    unsigned char *buffer = malloc(capacity);
    if (!buffer) { inflateEnd(&s); set_err(err, errlen, "out of memory"); return 1; }
    s.next_in = (unsigned char *)data;
    s.avail_in = (uInt)length;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (used == capacity) {
            if (capacity >= maxOutput) { status = Z_MEM_ERROR; break; }
            capacity = capacity * 2 > maxOutput ? maxOutput : capacity * 2;
            unsigned char *bigger = realloc(buffer, capacity);
            if (!bigger) { status = Z_MEM_ERROR; break; }
            buffer = bigger;
        }
        s.next_out = buffer + used;
        s.avail_out = (uInt)(capacity - used);
        status = inflate(&s, Z_NO_FLUSH);
        used = capacity - s.avail_out;
        if (status == Z_BUF_ERROR && s.avail_in == 0) { status = Z_DATA_ERROR; break; }
        if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) break;
    }
    inflateEnd(&s);
    if (status != Z_STREAM_END) {
        free(buffer);
        set_err(err, errlen, status == Z_MEM_ERROR ? "inflated data too large" : "gzip data is truncated or corrupt");
        return 1;
    }
    *out = buffer;
    *outLength = used;
    return 0;
}
