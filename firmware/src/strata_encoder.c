/* Row-streaming execution of the encoder graph (PAD + CONV_2D per layer).
 *
 * Layer i keeps a ring of kh_i input rows (row y in slot y % kh_i). As soon as the last
 * row an output row needs has arrived, that output row is computed straight into the
 * next layer's ring, so each layer holds only its kernel's height of rows and the frame
 * itself never sits in RAM. The last layer's rows go through the symbol lookup into the
 * latent, which the entropy coder needs whole (rANS codes backwards). */
#include "strata_encoder.h"

#include <string.h>

#include "strata_conv.h"
#include "strata_model.h"
#include "strata_packet.h"
#include "strata_predict.h"
#include "strata_profile.h"

#define DOWNSCALE 8 /* frame padded to a multiple of 8 by edge replication (bitstream.md) */
#define MAX_KERNEL 8

enum { STATE_IDLE, STATE_ROWS, STATE_DONE };

STRATA_PROFILE_MARKERS

typedef char layers_fit[(STRATA_N_LAYERS <= STRATA_MAX_LAYERS &&
                         STRATA_OUT_CHANNELS <= STRATA_MAX_CHANNELS)
                            ? 1
                            : -1];

uint32_t strata_model_id(void)
{
    return STRATA_MODEL_ID;
}

uint8_t strata_model_channels(void)
{
    return STRATA_OUT_CHANNELS;
}

static int out_size(int in, int k, int stride, int pad0, int pad1)
{
    return (in + pad0 + pad1 - k) / stride + 1;
}

static size_t ring_row_bytes(const strata_encoder_t *e, int i)
{
    return (size_t)e->in_w[i] * strata_layers[i].cin;
}

/* Geometry of every layer for a frame; returns the workspace bytes (0: invalid). */
static size_t plan(strata_encoder_t *e, uint16_t width, uint16_t height, uint8_t channels)
{
    int w = (width + DOWNSCALE - 1) / DOWNSCALE * DOWNSCALE;
    int h = (height + DOWNSCALE - 1) / DOWNSCALE * DOWNSCALE;
    size_t bytes = 0;
    int i;
    if (width == 0 || height == 0 || channels < 1 || channels > STRATA_OUT_CHANNELS) {
        return 0;
    }
    for (i = 0; i < STRATA_N_LAYERS; i++) {
        const strata_conv_t *L = &strata_layers[i];
        if (L->kh > MAX_KERNEL) {
            return 0;
        }
        e->in_w[i] = w;
        e->in_h[i] = h;
        bytes += (size_t)L->kh * ring_row_bytes(e, i);
        w = out_size(w, L->kw, L->stride, L->pad_left, L->pad_right);
        h = out_size(h, L->kh, L->stride, L->pad_top, L->pad_bottom);
    }
    if (w * DOWNSCALE != e->in_w[0] || h * DOWNSCALE != e->in_h[0]) {
        return 0; /* not the 1/8 latent the bitstream promises */
    }
    e->out_w = (uint16_t)w;
    e->out_h = (uint16_t)h;
    bytes += (size_t)w * h * channels; /* latent */
    return bytes;
}

size_t strata_workspace_size(uint16_t width, uint16_t height, uint8_t channels)
{
    strata_encoder_t e;
    return plan(&e, width, height, channels);
}

size_t strata_packet_max_size(uint16_t width, uint16_t height, uint8_t channels)
{
    /* a symbol costs at most 12 bits (frequencies are >= 1 of 4096), a chunk its 4-byte
     * state more; 2 bytes per symbol leaves ample room */
    const size_t n = (size_t)((width + 7) / 8) * ((height + 7) / 8);
    return STRATA_HEADER_SIZE + (size_t)channels * (5 + 4 + 2 * n) + STRATA_CRC_SIZE;
}

strata_status_t strata_begin(strata_encoder_t *enc, const strata_frame_t *frame,
                             void *workspace, size_t workspace_size)
{
    uint8_t *p = (uint8_t *)workspace;
    size_t need;
    int i;
    if (enc == NULL || frame == NULL || workspace == NULL ||
        (frame->format != STRATA_RGB888 && frame->format != STRATA_RGB565 &&
         frame->format != STRATA_RGB565_BE)) {
        return STRATA_ERR_ARG;
    }
    memset(enc, 0, sizeof *enc);
    need = plan(enc, frame->width, frame->height, frame->channels);
    if (need == 0) {
        return STRATA_ERR_ARG;
    }
    if (workspace_size < need) {
        return STRATA_ERR_WORKSPACE;
    }
    enc->frame = *frame;
    for (i = 0; i < STRATA_N_LAYERS; i++) {
        enc->ring[i] = (int8_t *)p;
        p += (size_t)strata_layers[i].kh * ring_row_bytes(enc, i);
        enc->avail[i] = -1;
    }
    enc->latent = p;
    enc->state = STATE_ROWS;
    return STRATA_OK;
}

static int8_t *ring_slot(const strata_encoder_t *e, int i, int y)
{
    return e->ring[i] + (size_t)(y % strata_layers[i].kh) * ring_row_bytes(e, i);
}

/* Compute the next output row of layer i if all its input rows have arrived. */
static int step(strata_encoder_t *e, int i)
{
    const strata_conv_t *L = &strata_layers[i];
    const int in_h = e->in_h[i];
    const int out_w = i + 1 < STRATA_N_LAYERS ? e->in_w[i + 1] : e->out_w;
    const int out_h = i + 1 < STRATA_N_LAYERS ? e->in_h[i + 1] : e->out_h;
    const int oy = e->next_out[i];
    const int first = oy * L->stride - L->pad_top;
    const int last = first + L->kh - 1 < in_h - 1 ? first + L->kh - 1 : in_h - 1;
    const int8_t *rows[MAX_KERNEL];
    int ky;
    if (oy >= out_h || last > e->avail[i]) {
        return 0;
    }
    for (ky = 0; ky < L->kh; ky++) {
        const int y = first + ky;
        rows[ky] = y < 0 || y >= in_h ? NULL : ring_slot(e, i, y);
    }
    e->next_out[i]++;
    STRATA_PROF_CONV(i);
    if (i + 1 < STRATA_N_LAYERS) {
        strata_conv_row(L, rows, e->in_w[i], out_w, L->cout, ring_slot(e, i + 1, oy), L->cout,
                        1);
        STRATA_PROF(encoder);
        e->avail[i + 1] = oy;
    } else {
        const int k = e->frame.channels;
        const size_t plane = (size_t)e->out_w * e->out_h;
        int x, c;
        /* int8 outputs straight into the latent planes, then symbols in place */
        strata_conv_row(L, rows, e->in_w[i], out_w, k, (int8_t *)e->latent + (size_t)oy * out_w,
                        1, (int)plane);
        STRATA_PROF(encoder);
        for (c = 0; c < k; c++) {
            uint8_t *dst = e->latent + c * plane + (size_t)oy * out_w;
            for (x = 0; x < out_w; x++) {
                dst[x] = strata_symbol_index(c, (int8_t)dst[x]);
            }
        }
    }
    return 1;
}

/* Run every computable row, depth first: after each row of layer i, the layers below it
 * compute all they can before layer i goes on. So a row written into layer i + 1's ring
 * only replaces row oy - kh, which layer i + 1 has then finished with (its next row
 * needed row oy). One stack frame at a time, no recursion. */
static void run(strata_encoder_t *e)
{
    int i = 0;
    for (;;) {
        if (step(e, i)) {
            i += i + 1 < STRATA_N_LAYERS;
        } else if (i-- == 0) {
            return;
        }
    }
}

/* Camera pixels -> the model's int8 input, right edge replicated to the padded width. */
static void quantise_row(const strata_encoder_t *e, const uint8_t *src, int8_t *dst)
{
    const int w = e->frame.width;
    const int wp = e->in_w[0];
    int x, c;
    if (e->frame.format == STRATA_RGB888) {
        for (x = 0; x < 3 * w; x++) {
            dst[x] = strata_input_lut[src[x]];
        }
    } else {
        const int hi = e->frame.format == STRATA_RGB565_BE ? 0 : 1; /* high byte's index */
        for (x = 0; x < w; x++) {
            /* 5/6-bit fields widened by bit replication, as sensors and PIL do */
            const unsigned v =
                ((unsigned)src[2 * x + hi] << 8) | (unsigned)src[2 * x + (1 - hi)];
            const unsigned r = v >> 11, g = (v >> 5) & 63u, b = v & 31u;
            dst[3 * x + 0] = strata_input_lut[(r << 3) | (r >> 2)];
            dst[3 * x + 1] = strata_input_lut[(g << 2) | (g >> 4)];
            dst[3 * x + 2] = strata_input_lut[(b << 3) | (b >> 2)];
        }
    }
    for (x = w; x < wp; x++) {
        for (c = 0; c < 3; c++) {
            dst[3 * x + c] = dst[3 * (w - 1) + c];
        }
    }
}

strata_status_t strata_push_row(strata_encoder_t *enc, const uint8_t *row)
{
    int y;
    if (enc == NULL || row == NULL) {
        return STRATA_ERR_ARG;
    }
    if (enc->state != STATE_ROWS || enc->rows_pushed >= enc->frame.height) {
        return STRATA_ERR_STATE;
    }
    y = (int)enc->rows_pushed++;
    STRATA_PROF(input);
    quantise_row(enc, row, ring_slot(enc, 0, y));
    enc->avail[0] = y;
    STRATA_PROF(encoder);
    run(enc);
    /* bottom edge replication up to the padded height, from the previous slot (the
     * last real row's slot may be reused by then) */
    for (y = y + 1; enc->rows_pushed == enc->frame.height && y < enc->in_h[0]; y++) {
        STRATA_PROF(input);
        memmove(ring_slot(enc, 0, y), ring_slot(enc, 0, y - 1), ring_row_bytes(enc, 0));
        enc->avail[0] = y;
        STRATA_PROF(encoder);
        run(enc);
    }
    if (enc->rows_pushed == enc->frame.height) {
        enc->state = STATE_DONE;
    }
    STRATA_PROF(caller);
    return STRATA_OK;
}

strata_status_t strata_finish(strata_encoder_t *enc, uint8_t *out, size_t capacity,
                              size_t *length)
{
    strata_status_t st;
    if (enc == NULL || out == NULL || length == NULL) {
        return STRATA_ERR_ARG;
    }
    if (enc->state != STATE_DONE) {
        return STRATA_ERR_STATE;
    }
    STRATA_PROF(packet);
    st = strata_packetise(&enc->frame, enc->latent, enc->out_w, enc->out_h, out, capacity,
                          length);
    STRATA_PROF(caller);
    if (st == STRATA_OK) {
        enc->state = STATE_IDLE;
    }
    return st;
}

strata_status_t strata_finish_stream(strata_encoder_t *enc, strata_stream_t *s, uint8_t *out,
                                     size_t capacity, size_t *length)
{
    strata_status_t st;
    if (enc == NULL || s == NULL || s->memory == NULL || out == NULL || length == NULL) {
        return STRATA_ERR_ARG;
    }
    if (enc->state != STATE_DONE) {
        return STRATA_ERR_STATE;
    }
    STRATA_PROF(predict);
    st = strata_code_stream(&enc->frame, enc->latent, enc->out_w, enc->out_h, s, out, capacity,
                            length);
    STRATA_PROF(caller);
    if (st == STRATA_OK) {
        enc->state = STATE_IDLE;
    }
    return st;
}
