// Image and compression codecs for the Datasets layer: libpng, libjpeg(-turbo) and zlib behind a
// few functions that never abort the process. libjpeg reports errors by longjmp, which Swift
// cannot catch, so decoding lives here in C. Every function returns 0 on success, or non-zero
// with a message in `err` (NUL-terminated, at most errlen bytes). Buffers returned through `out`
// are malloc'ed; release them with cis_free.
#ifndef CIMAGESUPPORT_H
#define CIMAGESUPPORT_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The most pixels (width x height) an image may have: 2^26 (8192 x 8192); larger ones are refused
/// before anything is allocated.
#define CIS_MAX_PIXELS (1ULL << 26)

/// Decodes a PNG to 8-bit pixels with `channels` (1 = gray, 3 = RGB) interleaved, row-major.
int cis_decode_png(const unsigned char *data, size_t length, int channels, unsigned char **out,
                   int *width, int *height, char *err, size_t errlen);

/// Decodes a JPEG to 8-bit pixels with `channels` (1 = gray, 3 = RGB).
int cis_decode_jpeg(const unsigned char *data, size_t length, int channels, unsigned char **out,
                    int *width, int *height, char *err, size_t errlen);

/// Encodes 8-bit pixels (1 = gray, 3 = RGB) as a PNG in memory.
int cis_encode_png(const unsigned char *pixels, int width, int height, int channels,
                   unsigned char **out, size_t *outLength, char *err, size_t errlen);

/// Inflates gzip (or zlib) data whose inflated size is unknown; at most maxOutput bytes.
int cis_gunzip(const unsigned char *data, size_t length, size_t maxOutput, unsigned char **out,
               size_t *outLength, char *err, size_t errlen);

void cis_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
