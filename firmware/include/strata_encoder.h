/*
 * Strata camera encoder: camera rows in, one frame packet (docs/bitstream.md) out.
 *
 * C99, no malloc, no dependencies. The frame is never held whole: rows stream through
 * the three INT8 convolutions of the MCUCoder encoder in stripes (each layer keeps only
 * the input rows its kernel still needs), and only the final latent (k channels at
 * 1/8 resolution, one byte per value) is kept until the entropy coder runs. The
 * arithmetic is TFLite's reference INT8 arithmetic, so the latent is bit-identical to
 * the committed .tflite model's and the packet byte-identical to the Python codec's.
 *
 * Usage, per frame:
 *
 *     static uint8_t work[...];                         // >= strata_workspace_size(...)
 *     strata_encoder_t enc;
 *     strata_frame_t f = {width, height, channels, STRATA_RGB888, seq, time_ms};
 *     strata_begin(&enc, &f, work, sizeof work);
 *     for (y = 0; y < height; y++) strata_push_row(&enc, row_y);
 *     strata_finish(&enc, packet, capacity, &packet_len);
 *
 * The encoder never reads a row after strata_push_row returns: the camera's line
 * buffer can be reused at once.
 */
#ifndef STRATA_ENCODER_H
#define STRATA_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits of this build (the model's layer count and channel count must fit them). */
#define STRATA_MAX_LAYERS 4
#define STRATA_MAX_CHANNELS 32

typedef enum {
    STRATA_RGB888 = 0,   /* 3 bytes per pixel: R, G, B */
    STRATA_RGB565 = 1,   /* 2 bytes per pixel: little-endian uint16, R in bits 15..11 */
    STRATA_RGB565_BE = 2 /* the same, high byte first (the usual DVP sensor byte order) */
} strata_pixel_format_t;

typedef enum {
    STRATA_OK = 0,
    STRATA_ERR_ARG = -1,       /* size 0, channels out of 1..model channels, bad format */
    STRATA_ERR_WORKSPACE = -2, /* workspace smaller than strata_workspace_size() */
    STRATA_ERR_STATE = -3,     /* call out of order (a row too many, finish too early) */
    STRATA_ERR_NO_SPACE = -4   /* the packet does not fit the output buffer */
} strata_status_t;

/* What the packet header says about the frame, plus how rows arrive. */
typedef struct {
    uint16_t width;  /* pixels, 1..65535 */
    uint16_t height; /* pixels, 1..65535 */
    uint8_t channels; /* latent channels to send, 1..strata_model_channels() (quality tier) */
    strata_pixel_format_t format;
    uint32_t seq;             /* frame sequence number */
    uint64_t capture_time_ms; /* ms since the Unix epoch, 0 = unknown */
} strata_frame_t;

/* Encoder state. Allocate it anywhere (stack, static); its fields are private. */
typedef struct {
    strata_frame_t frame;
    int32_t in_w[STRATA_MAX_LAYERS], in_h[STRATA_MAX_LAYERS]; /* each layer's input */
    uint16_t out_w, out_h;                                   /* latent grid */
    int32_t avail[STRATA_MAX_LAYERS];    /* last input row stored, per layer */
    uint16_t next_out[STRATA_MAX_LAYERS]; /* next output row to compute, per layer */
    int8_t *ring[STRATA_MAX_LAYERS];      /* rolling window of each layer's input rows */
    uint8_t *latent;                      /* [channel][y][x] symbol indices */
    uint32_t rows_pushed;
    int state;
} strata_encoder_t;

/* Working memory strata_begin needs for this frame geometry (0 if invalid). */
size_t strata_workspace_size(uint16_t width, uint16_t height, uint8_t channels);

/* An output capacity that always suffices for strata_finish. */
size_t strata_packet_max_size(uint16_t width, uint16_t height, uint8_t channels);

/* model_id of the compiled-in model (weights and entropy tables) and its channel count. */
uint32_t strata_model_id(void);
uint8_t strata_model_channels(void);

/* Start a frame. `workspace` (any alignment) stays in use until strata_finish. */
strata_status_t strata_begin(strata_encoder_t *enc, const strata_frame_t *frame,
                             void *workspace, size_t workspace_size);

/* Feed the next camera row (top to bottom): width pixels in frame->format. */
strata_status_t strata_push_row(strata_encoder_t *enc, const uint8_t *row);

/* After the last row: entropy-code and write the packet into out[0..capacity). */
strata_status_t strata_finish(strata_encoder_t *enc, uint8_t *out, size_t capacity,
                              size_t *length);

/*
 * Predicted frames (docs/bitstream.md, "Predicted frames"): a stream keeps, per channel,
 * the symbols the decoder holds (closed loop: what was sent), and strata_finish_stream
 * sends version 2 packets exactly as mcucoder.predictive.PredictiveEncoder does: key
 * frames at the interval, on request, on a size change, when nothing is predicted;
 * otherwise per block skip flags and residuals, and intra per channel where that is
 * smaller (a scene change) or where there is no reference (more channels than before).
 *
 *     static uint8_t ref[...];                          // >= strata_stream_memory_size(...)
 *     strata_stream_t s;
 *     strata_stream_init(&s, ref, sizeof ref, 50, 4, 1); // key interval, block, dead zone
 *     per frame: strata_begin, strata_push_row..., then
 *     strata_finish_stream(&enc, &s, packet, capacity, &len);
 *     strata_request_key_frame(&s);                     // lost packet, live view, new tier
 */
typedef struct {
    uint8_t *memory;  /* reference symbols [channel][h8][w8], block flags, residual counts */
    size_t size;
    uint16_t key_interval; /* frames from one key frame to the next (1: intra only) */
    uint8_t block, dead_zone;
    uint8_t held;          /* channels with a reference (0: the next frame is a key frame) */
    uint8_t key_requested;
    uint16_t w8, h8;       /* latent grid of the reference */
    uint32_t ref_seq;      /* seq of the frame the reference is */
    uint32_t since_key;
    uint8_t last_key;      /* 1 if the last packet was a key frame */
    uint8_t last_motion;   /* its motion field: percent of blocks changed, 255 unknown */
} strata_stream_t;

/* Memory a stream needs for frames up to this size (0 if too large: at most 65,535 latent
 * cells, 2048x2048 pixels): the reference of every channel (channels x H/8 x W/8 bytes),
 * a bit per block and the residual counts of one channel (2,041 bytes). */
size_t strata_stream_memory_size(uint16_t width, uint16_t height);

/* Start a stream (the first frame is a key frame). key_interval >= 1, block 1..255. */
strata_status_t strata_stream_init(strata_stream_t *s, void *memory, size_t size,
                                   uint16_t key_interval, uint8_t block, uint8_t dead_zone);

/* The next frame is a key frame (after a lost packet, a live view opened, a tier change). */
void strata_request_key_frame(strata_stream_t *s);

/* An output capacity that always suffices for strata_finish_stream. */
size_t strata_stream_packet_max_size(uint16_t width, uint16_t height, uint8_t channels);

/* strata_finish for a stream: the frame as a version 2 key or predicted packet; the
 * reference then holds what the decoder will hold. On an error the packet is not sent
 * and the next frame is a key frame. */
strata_status_t strata_finish_stream(strata_encoder_t *enc, strata_stream_t *s, uint8_t *out,
                                     size_t capacity, size_t *length);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_ENCODER_H */
