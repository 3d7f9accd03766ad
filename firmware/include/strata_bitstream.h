/*
 * The byte-level pieces of docs/bitstream.md: header and CRC sizes, zlib's CRC-32 and the
 * LEB128 chunk lengths. One definition (src/strata_packet.c) for the encoder, which writes
 * packets, and for code that reads or rewrites them (the Zephyr app cuts a packet to fewer
 * channels in place, zephyr/src/strata_send.c), so the two can never disagree on a byte.
 * C99, no malloc, no state; independent of the model (no generated header needed here).
 */
#ifndef STRATA_BITSTREAM_H
#define STRATA_BITSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_HEADER_SIZE 29 /* fixed header; the channel count is its last byte */
#define STRATA_CRC_SIZE 4     /* CRC-32 of everything before it, little-endian */

/* zlib's CRC-32 of data[0..n), continuing from crc (0 to start). */
uint32_t strata_crc32(uint32_t crc, const uint8_t *data, size_t n);

/* Bytes of n as an unsigned LEB128 (1..5). */
size_t strata_uvarint_size(uint32_t n);

/* Writes n as an unsigned LEB128 at p; returns the byte after it. */
uint8_t *strata_uvarint_put(uint8_t *p, uint32_t n);

/* Reads one unsigned LEB128 of at most 5 bytes from p (p < end); its byte count with
 * *value set, or 0 if it does not end before `end` or within 5 bytes. */
int strata_uvarint_read(const uint8_t *p, const uint8_t *end, uint32_t *value);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_BITSTREAM_H */
