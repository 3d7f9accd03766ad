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

#endif
