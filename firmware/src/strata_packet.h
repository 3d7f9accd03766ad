/* Symbols, rANS and the packet layout of docs/bitstream.md (internal to the encoder). */
#ifndef STRATA_PACKET_H
#define STRATA_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "strata_bitstream.h" /* header and CRC sizes, CRC-32, LEB128 (public: shared) */
#include "strata_encoder.h"

/* Symbol index (symbol - table offset) of the model's int8 output v in channel c. */
uint8_t strata_symbol_index(int channel, int8_t v);

/* The packet of frame f from the latent symbol indices [channel][h8][w8]. */
strata_status_t strata_packetise(const strata_frame_t *f, const uint8_t *latent, int w8, int h8,
                                 uint8_t *out, size_t capacity, size_t *length);

/* rANS-code channel c's symbol indices idx[h8][w8] as an intra chunk into the bytes just
 * below *end (moved down to the chunk's start), never below `limit`; -1 if it does not fit. */
int strata_code_intra(int c, const uint8_t *idx, int w8, int h8, uint8_t **end,
                      const uint8_t *limit);

/* Version 2 header fields (docs/bitstream.md); version 1 packets pass NULL for them. */
typedef struct {
    uint8_t frame_type; /* 0 intra (key), 1 predicted */
    uint16_t ref;       /* seq distance to the reference frame, 0 for a key frame */
    uint8_t block;      /* block side in latent cells, 0 for a key frame */
    uint8_t motion;     /* percent of blocks changed, 255 unknown */
} strata_p_header_t;

/* Header (version 1 or 2), chunk lengths, the chunks (total bytes, may lie anywhere in
 * out above where the header and lengths end) and the CRC, from out[0]. */
void strata_put_packet(uint8_t *out, const strata_frame_t *f, const strata_p_header_t *v2,
                       const uint32_t *lengths, const uint8_t *chunks, size_t total,
                       size_t *length);

#endif
