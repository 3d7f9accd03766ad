/* Predicted frames (internal to the encoder): the stream's packet from a frame's latent. */
#ifndef STRATA_PREDICT_H
#define STRATA_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "strata_encoder.h"

/* The version 2 packet of frame f (symbol indices latent[channel][h8][w8]) against the
 * stream's reference, which then holds what the decoder will hold. */
strata_status_t strata_code_stream(const strata_frame_t *f, const uint8_t *latent, int w8,
                                   int h8, strata_stream_t *s, uint8_t *out, size_t capacity,
                                   size_t *length);

#endif
