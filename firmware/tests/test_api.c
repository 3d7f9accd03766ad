/* The public API's contract, beyond what strata-encode exercises: argument and order
 * errors, the workspace and output limits, a reused encoder. Prints "ok" or the failed
 * check and exits non-zero (run by tests/firmware/test_encoder.py). */
#include <stdio.h>
#include <string.h>

#include "strata_encoder.h"

#define W 37
#define H 21

static uint8_t work[64 << 10];
static uint8_t packet[64 << 10];
static uint8_t row[3 * W];
static uint8_t stream_memory[4 << 10];

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            printf("FAILED line %d: %s\n", __LINE__, #cond);          \
            return 1;                                                 \
        }                                                             \
    } while (0)

/* Noise rows: the costliest content for the entropy coder. */
static void fill_row(int y)
{
    unsigned s = 2463534242u + (unsigned)y * 7919u;
    int i;
    for (i = 0; i < 3 * W; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        row[i] = (uint8_t)s;
    }
}

static strata_status_t encode(strata_encoder_t *e, const strata_frame_t *f, size_t cap,
                              size_t *len)
{
    strata_status_t st = strata_begin(e, f, work, strata_workspace_size(f->width, f->height,
                                                                         f->channels));
    int y;
    for (y = 0; st == STRATA_OK && y < f->height; y++) {
        fill_row(y);
        st = strata_push_row(e, row);
    }
    return st == STRATA_OK ? strata_finish(e, packet, cap, len) : st;
}

/* The next frame of a stream (seq one up), every frame the same noise. */
static strata_status_t encode_stream(strata_encoder_t *e, strata_frame_t *f, strata_stream_t *s,
                                     size_t cap, size_t *len)
{
    strata_status_t st;
    int y;
    f->seq++;
    st = strata_begin(e, f, work, strata_workspace_size(f->width, f->height, f->channels));
    for (y = 0; st == STRATA_OK && y < f->height; y++) {
        fill_row(y);
        st = strata_push_row(e, row);
    }
    return st == STRATA_OK ? strata_finish_stream(e, s, packet, cap, len) : st;
}

/* Streams: arguments, their memory, frame types, an error making the next frame a key
 * frame, a requested key frame. packet[2] is the version, packet[3] the frame type. */
static int check_stream(strata_frame_t *f)
{
    const size_t mem = strata_stream_memory_size(W, H);
    strata_encoder_t e;
    strata_stream_t s;
    size_t len = 0;
    CHECK(mem == 12 * 5 * 3 + 2 + 1 + 2040); /* 37x21: a 5x3 latent */
    CHECK(mem <= sizeof stream_memory);
    CHECK(strata_stream_memory_size(0, H) == 0 && strata_stream_memory_size(4096, 4096) == 0);
    CHECK(strata_stream_init(&s, stream_memory, mem, 0, 4, 1) == STRATA_ERR_ARG);
    CHECK(strata_stream_init(&s, stream_memory, mem, 50, 0, 1) == STRATA_ERR_ARG);
    CHECK(strata_stream_init(NULL, stream_memory, mem, 50, 4, 1) == STRATA_ERR_ARG);
    CHECK(strata_stream_init(&s, stream_memory, mem - 1, 50, 4, 1) == STRATA_OK);
    CHECK(encode_stream(&e, f, &s, sizeof packet, &len) == STRATA_ERR_WORKSPACE);
    CHECK(strata_finish_stream(&e, NULL, packet, sizeof packet, &len) == STRATA_ERR_ARG);
    CHECK(strata_stream_init(&s, stream_memory, mem, 50, 4, 1) == STRATA_OK);
    CHECK(strata_finish_stream(&e, &s, packet, sizeof packet, &len) == STRATA_OK);
    CHECK(packet[2] == 2 && packet[3] == 0 && packet[30] == 255); /* key, motion unknown */
    CHECK(strata_finish_stream(&e, &s, packet, sizeof packet, &len) == STRATA_ERR_STATE);
    CHECK(len <= strata_stream_packet_max_size(W, H, f->channels));
    CHECK(encode_stream(&e, f, &s, sizeof packet, &len) == STRATA_OK);
    CHECK(packet[3] == 1 && packet[30] == 0); /* the same frame: predicted, nothing moved */
    CHECK(len == 31 + 4 + (size_t)f->channels * (1 + 1 + 2)); /* length, mode, check */
    CHECK(encode_stream(&e, f, &s, 40, &len) == STRATA_ERR_NO_SPACE);
    CHECK(encode_stream(&e, f, &s, sizeof packet, &len) == STRATA_OK && packet[3] == 0);
    CHECK(encode_stream(&e, f, &s, sizeof packet, &len) == STRATA_OK && packet[3] == 1);
    strata_request_key_frame(&s);
    CHECK(encode_stream(&e, f, &s, sizeof packet, &len) == STRATA_OK && packet[3] == 0);
    return 0;
}

int main(void)
{
    const uint8_t k = strata_model_channels();
    strata_frame_t f = {W, H, 0, STRATA_RGB888, 1, 2};
    strata_encoder_t e;
    size_t need, len = 0, len2 = 0;
    static uint8_t first[sizeof packet];
    f.channels = k;
    need = strata_workspace_size(W, H, k);

    /* arguments */
    CHECK(need > 0 && need <= sizeof work);
    CHECK(strata_workspace_size(0, H, k) == 0 && strata_workspace_size(W, 0, k) == 0);
    CHECK(strata_workspace_size(W, H, 0) == 0 && strata_workspace_size(W, H, k + 1) == 0);
    CHECK(strata_begin(&e, &f, work, need - 1) == STRATA_ERR_WORKSPACE);
    CHECK(strata_begin(NULL, &f, work, need) == STRATA_ERR_ARG);
    f.format = (strata_pixel_format_t)7;
    CHECK(strata_begin(&e, &f, work, need) == STRATA_ERR_ARG);
    f.format = STRATA_RGB888;

    /* order: finish before the last row, a row too many, finish twice */
    CHECK(strata_begin(&e, &f, work, need) == STRATA_OK);
    CHECK(strata_push_row(&e, NULL) == STRATA_ERR_ARG);
    CHECK(strata_push_row(&e, row) == STRATA_OK);
    CHECK(strata_finish(&e, packet, sizeof packet, &len) == STRATA_ERR_STATE);
    CHECK(encode(&e, &f, sizeof packet, &len) == STRATA_OK);
    CHECK(strata_push_row(&e, row) == STRATA_ERR_STATE);
    CHECK(strata_finish(&e, packet, sizeof packet, &len2) == STRATA_ERR_STATE);

    /* the promised maximum size holds for noise; one byte less than the packet fails */
    CHECK(len <= strata_packet_max_size(W, H, k));
    CHECK(len > 29 + 4 && packet[0] == 'S' && packet[1] == 'F' && packet[28] == k);
    memcpy(first, packet, len);
    CHECK(encode(&e, &f, len - 1, &len2) == STRATA_ERR_NO_SPACE);
    CHECK(encode(&e, &f, 10, &len2) == STRATA_ERR_NO_SPACE);

    /* the encoder is reusable and deterministic, and needs exactly `len` bytes */
    CHECK(encode(&e, &f, len, &len2) == STRATA_OK && len2 == len);
    CHECK(memcmp(first, packet, len) == 0);
    if (check_stream(&f)) {
        return 1;
    }
    printf("ok\n");
    return 0;
}
