/* Host tool: strata-encode IN.ppm OUT [--channels K] [--seq N] [--time MS]
 *                                       [--rgb565 | --rgb565be] [--stats]
 *
 * Feeds the encoder a binary PPM (P6, maxval 255) one row at a time, as a camera would:
 * the only frame-sized memory is the encoder's own workspace (static, no malloc).
 * --rgb565 (--rgb565be) converts each row to little- (big-) endian RGB565 first,
 * exercising the sensor's 16-bit paths.
 * --stats prints the workspace size to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata_encoder.h"

/* Static buffers; the bare-metal builds (firmware/arm) set smaller limits. */
#ifndef STRATA_MAX_WORKSPACE
#define STRATA_MAX_WORKSPACE (8u << 20)
#endif
#ifndef STRATA_MAX_PACKET
#define STRATA_MAX_PACKET (4u << 20) /* the receivers' packet limit (docs/bitstream.md) */
#endif
#ifndef STRATA_MAX_WIDTH
#define STRATA_MAX_WIDTH 65535
#endif

static uint8_t workspace[STRATA_MAX_WORKSPACE];
static uint8_t packet[STRATA_MAX_PACKET];
static uint8_t row888[3 * STRATA_MAX_WIDTH];
static uint8_t row565[2 * STRATA_MAX_WIDTH];

static int fail(const char *msg)
{
    fprintf(stderr, "strata-encode: %s\n", msg);
    return 1;
}

/* Next header integer of a PPM, skipping whitespace and comments. */
static long ppm_int(FILE *f)
{
    int c = fgetc(f);
    long v = 0;
    while (c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if (c == '#') {
            while (c != '\n' && c != EOF) {
                c = fgetc(f);
            }
        }
        c = fgetc(f);
    }
    if (c < '0' || c > '9') {
        return -1;
    }
    while (c >= '0' && c <= '9') {
        v = v * 10 + (c - '0');
        if (v > 1000000) {
            return -1;
        }
        c = fgetc(f);
    }
    return v; /* the single whitespace after the last field is consumed here */
}

static void to_rgb565(const uint8_t *src, uint8_t *dst, int w, int big_endian)
{
    int x;
    for (x = 0; x < w; x++) {
        const unsigned v = ((unsigned)(src[3 * x] >> 3) << 11) |
                           ((unsigned)(src[3 * x + 1] >> 2) << 5) | (src[3 * x + 2] >> 3);
        dst[2 * x + big_endian] = (uint8_t)v;
        dst[2 * x + 1 - big_endian] = (uint8_t)(v >> 8);
    }
}

int main(int argc, char **argv)
{
    strata_frame_t frame = {0, 0, 0, STRATA_RGB888, 0, 0};
    strata_encoder_t enc;
    long w, h, maxval;
    size_t len = 0;
    int stats = 0, i, y;
    FILE *in, *out;
    if (argc < 3) {
        fprintf(stderr, "usage: %s IN.ppm OUT [--channels K] [--seq N] [--time MS] "
                        "[--rgb565 | --rgb565be] [--stats]\n", argv[0]);
        return 2;
    }
    frame.channels = strata_model_channels();
    for (i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--channels") && i + 1 < argc) {
            frame.channels = (uint8_t)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seq") && i + 1 < argc) {
            frame.seq = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--time") && i + 1 < argc) {
            frame.capture_time_ms = (uint64_t)strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--rgb565")) {
            frame.format = STRATA_RGB565;
        } else if (!strcmp(argv[i], "--rgb565be")) {
            frame.format = STRATA_RGB565_BE;
        } else if (!strcmp(argv[i], "--stats")) {
            stats = 1;
        } else {
            return fail("unknown option");
        }
    }
    in = fopen(argv[1], "rb");
    if (in == NULL) {
        return fail("cannot open the input");
    }
    if (fgetc(in) != 'P' || fgetc(in) != '6') {
        return fail("not a binary PPM (P6)");
    }
    w = ppm_int(in);
    h = ppm_int(in);
    maxval = ppm_int(in);
    if (w < 1 || w > STRATA_MAX_WIDTH || h < 1 || h > 65535 || maxval != 255) {
        return fail("PPM size out of range or maxval not 255");
    }
    frame.width = (uint16_t)w;
    frame.height = (uint16_t)h;
    if (strata_begin(&enc, &frame, workspace, sizeof workspace) != STRATA_OK) {
        return fail("bad frame parameters (size, --channels) or workspace too small");
    }
    if (stats) {
        fprintf(stderr, "workspace %lu bytes\n",
                (unsigned long)strata_workspace_size(frame.width, frame.height, frame.channels));
    }
    for (y = 0; y < h; y++) {
        const uint8_t *row = row888;
        if (fread(row888, 3, (size_t)w, in) != (size_t)w) {
            return fail("PPM ends early");
        }
        if (frame.format != STRATA_RGB888) {
            to_rgb565(row888, row565, (int)w, frame.format == STRATA_RGB565_BE);
            row = row565;
        }
        if (strata_push_row(&enc, row) != STRATA_OK) {
            return fail("push_row failed");
        }
    }
    fclose(in);
    if (strata_finish(&enc, packet, sizeof packet, &len) != STRATA_OK) {
        return fail("the packet does not fit");
    }
    out = fopen(argv[2], "wb");
    if (out == NULL || fwrite(packet, 1, len, out) != len || fclose(out) != 0) {
        return fail("cannot write the output");
    }
    return 0;
}
