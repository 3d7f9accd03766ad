/* Host tool: strata-encode IN.ppm OUT [--channels K] [--seq N] [--time MS]
 *                                       [--rgb565 | --rgb565be] [--stats]
 *            strata-encode --stream LIST OUT [--key-interval N] [--block B] [--dead-zone D]
 *
 * Feeds the encoder a binary PPM (P6, maxval 255) one row at a time, as a camera would:
 * the only frame-sized memory is the encoder's own workspace (static, no malloc).
 * --rgb565 (--rgb565be) converts each row to little- (big-) endian RGB565 first,
 * exercising the sensor's 16-bit paths.
 * --stats prints the workspace size to stderr.
 * --stream codes a sequence as one stream of predicted frames (strata_finish_stream):
 * LIST has a line per frame, "PPM CHANNELS SEQ KEY" (KEY 1: strata_request_key_frame
 * first); OUT gets each packet behind its length (uint32, little-endian). */
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

#ifndef STRATA_MAX_REFERENCE
#define STRATA_MAX_REFERENCE (8u << 20)
#endif

static uint8_t workspace[STRATA_MAX_WORKSPACE];
static uint8_t reference[STRATA_MAX_REFERENCE];
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

/* Encode one PPM into the encoder, row by row (frame: all but the size filled in). */
static int push_ppm(const char *path, strata_frame_t *frame, strata_encoder_t *enc, int stats)
{
    long w, h, maxval;
    int y;
    FILE *in = fopen(path, "rb");
    if (in == NULL) {
        return fail("cannot open the input");
    }
    if (fgetc(in) != 'P' || fgetc(in) != '6') {
        fclose(in);
        return fail("not a binary PPM (P6)");
    }
    w = ppm_int(in);
    h = ppm_int(in);
    maxval = ppm_int(in);
    if (w < 1 || w > STRATA_MAX_WIDTH || h < 1 || h > 65535 || maxval != 255) {
        fclose(in);
        return fail("PPM size out of range or maxval not 255");
    }
    frame->width = (uint16_t)w;
    frame->height = (uint16_t)h;
    if (strata_begin(enc, frame, workspace, sizeof workspace) != STRATA_OK) {
        fclose(in);
        return fail("bad frame parameters (size, --channels) or workspace too small");
    }
    if (stats) {
        fprintf(stderr, "workspace %lu bytes\n",
                (unsigned long)strata_workspace_size(frame->width, frame->height,
                                                     frame->channels));
    }
    for (y = 0; y < h; y++) {
        const uint8_t *row = row888;
        if (fread(row888, 3, (size_t)w, in) != (size_t)w) {
            fclose(in);
            return fail("PPM ends early");
        }
        if (frame->format != STRATA_RGB888) {
            to_rgb565(row888, row565, (int)w, frame->format == STRATA_RGB565_BE);
            row = row565;
        }
        if (strata_push_row(enc, row) != STRATA_OK) {
            fclose(in);
            return fail("push_row failed");
        }
    }
    fclose(in);
    return 0;
}

/* --stream LIST OUT [--key-interval N] [--block B] [--dead-zone D] */
static int stream(int argc, char **argv)
{
    strata_stream_t s;
    strata_encoder_t enc;
    unsigned key_interval = 50, block = 4, dead_zone = 1;
    static char line[1024], path[1000]; /* static: off the measured stack */
    FILE *list, *out;
    int i;
    for (i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--key-interval") && i + 1 < argc) {
            key_interval = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--block") && i + 1 < argc) {
            block = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--dead-zone") && i + 1 < argc) {
            dead_zone = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            return fail("unknown option");
        }
    }
    if (key_interval < 1 || key_interval > 65535 || block < 1 || block > 255 || dead_zone > 255 ||
        strata_stream_init(&s, reference, sizeof reference, (uint16_t)key_interval,
                           (uint8_t)block, (uint8_t)dead_zone) != STRATA_OK) {
        return fail("bad --key-interval, --block or --dead-zone");
    }
    list = fopen(argv[2], "r");
    out = fopen(argv[3], "wb");
    if (list == NULL || out == NULL) {
        return fail("cannot open the list or the output");
    }
    while (fgets(line, sizeof line, list) != NULL) {
        strata_frame_t frame = {0, 0, 0, STRATA_RGB888, 0, 0};
        unsigned channels, key;
        unsigned long seq;
        size_t len = 0;
        uint8_t size[4];
        if (sscanf(line, "%999s %u %lu %u", path, &channels, &seq, &key) != 4) {
            return fail("a list line is not: PPM CHANNELS SEQ KEY");
        }
        frame.channels = (uint8_t)channels;
        frame.seq = (uint32_t)seq;
        if (push_ppm(path, &frame, &enc, 0)) {
            return 1;
        }
        if (key) {
            strata_request_key_frame(&s);
        }
        if (strata_finish_stream(&enc, &s, packet, sizeof packet, &len) != STRATA_OK) {
            return fail("the packet does not fit, or the stream memory is too small");
        }
        for (i = 0; i < 4; i++) {
            size[i] = (uint8_t)(len >> (8 * i));
        }
        if (fwrite(size, 1, 4, out) != 4 || fwrite(packet, 1, len, out) != len) {
            return fail("cannot write the output");
        }
    }
    fclose(list);
    return fclose(out) != 0 ? fail("cannot write the output") : 0;
}

int main(int argc, char **argv)
{
    strata_frame_t frame = {0, 0, 0, STRATA_RGB888, 0, 0};
    strata_encoder_t enc;
    size_t len = 0;
    int stats = 0, i;
    FILE *out;
    if (argc >= 4 && !strcmp(argv[1], "--stream")) {
        return stream(argc, argv);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: %s IN.ppm OUT [--channels K] [--seq N] [--time MS] "
                        "[--rgb565 | --rgb565be] [--stats]\n"
                        "       %s --stream LIST OUT [--key-interval N] [--block B] "
                        "[--dead-zone D]\n", argv[0], argv[0]);
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
    if (push_ppm(argv[1], &frame, &enc, stats)) {
        return 1;
    }
    if (strata_finish(&enc, packet, sizeof packet, &len) != STRATA_OK) {
        return fail("the packet does not fit");
    }
    out = fopen(argv[2], "wb");
    if (out == NULL || fwrite(packet, 1, len, out) != len || fclose(out) != 0) {
        return fail("cannot write the output");
    }
    return 0;
}
