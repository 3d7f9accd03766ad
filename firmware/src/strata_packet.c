#include "strata_packet.h"

#include <string.h>

/* The codec's own tables, written by mcucoder.firmware_tables at build time. */
#include "mcucoder_tables.h"
#include "strata_model.h" /* STRATA_SYMBOL_CLAMP: the symbol lookup as a clamp */

#define RANS_L (1u << 23) /* lower bound of the normalised state [L, 256 L) */

uint8_t strata_symbol_index(int channel, int8_t v)
{
#ifdef STRATA_SYMBOL_CLAMP
    const int16_t *c = strata_symbol_clamp[channel];
    const int i = v + c[0];
    return (uint8_t)(i < c[1] ? c[1] : i > c[2] ? c[2] : i);
#else
    return (uint8_t)(mcucoder_symbol[channel][v + 128] - mcucoder_offset[channel]);
#endif
}

/* strata_bitstream.h: the firmware's one CRC-32 (packets written here, trimmed by the app). */
uint32_t strata_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    /* half-byte table: 64 bytes of flash instead of 1 KB */
    static const uint32_t t[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
        0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
        0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu};
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

#if MCUCODER_N_CTX > 1
/* Context of a symbol from |left - centre| + |above - centre| (coding method 2). */
static int context(uint32_t a)
{
    return a == 0 ? 0 : a <= MCUCODER_CTX_T1 ? 1 : a <= MCUCODER_CTX_T2 ? 2 : 3;
}

static uint32_t dist(uint8_t s, uint16_t centre)
{
    return s >= centre ? (uint32_t)(s - centre) : (uint32_t)(centre - s);
}
#endif

/* rANS-code one channel backwards into the bytes just below *end (ryg_rans style, so the
 * bytes land in the decoder's reading order), never below `limit`. */
int strata_code_intra(int c, const uint8_t *idx, int w8, int h8, uint8_t **end,
                      const uint8_t *limit)
{
#if MCUCODER_N_CTX > 1
    const uint16_t centre = mcucoder_centre[c];
#endif
    uint8_t *p = *end;
    uint32_t x = RANS_L;
    int y, col;
    for (y = h8 - 1; y >= 0; y--) {
        const uint8_t *row = idx + (size_t)y * w8;
        for (col = w8 - 1; col >= 0; col--) {
            const uint8_t s = row[col];
            uint32_t base, f, x_max;
#if MCUCODER_N_CTX > 1
            const uint32_t a = (col ? dist(row[col - 1], centre) : 0) +
                               (y ? dist(row[col - w8], centre) : 0);
            base = mcucoder_start[c * MCUCODER_N_CTX + context(a)];
#else
            base = mcucoder_start[c];
#endif
            f = mcucoder_freq[base + s];
            x_max = ((RANS_L >> MCUCODER_PROB_BITS) << 8) * f; /* <= 2^31: no overflow */
            while (x >= x_max) {
                if (p <= limit) {
                    return -1;
                }
                *--p = (uint8_t)x;
                x >>= 8;
            }
            x = ((x / f) << MCUCODER_PROB_BITS) + (x % f) + mcucoder_cum[base + s];
        }
    }
    if (p - limit < 4) {
        return -1;
    }
    p -= 4; /* the final state, big-endian, opens the chunk */
    p[0] = (uint8_t)(x >> 24);
    p[1] = (uint8_t)(x >> 16);
    p[2] = (uint8_t)(x >> 8);
    p[3] = (uint8_t)x;
    *end = p;
    return 0;
}

static uint8_t *put_le(uint8_t *p, uint64_t v, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        *p++ = (uint8_t)(v >> (8 * i));
    }
    return p;
}

/* LEB128 (strata_bitstream.h): public, so code that rewrites packets (the Zephyr app's
 * trimming) uses these instead of a copy of its own. */
uint8_t *strata_uvarint_put(uint8_t *p, uint32_t n)
{
    while (n >= 0x80) {
        *p++ = (uint8_t)(n | 0x80);
        n >>= 7;
    }
    *p++ = (uint8_t)n;
    return p;
}

size_t strata_uvarint_size(uint32_t n)
{
    size_t size = 1;
    while (n >= 0x80) {
        n >>= 7;
        size++;
    }
    return size;
}

int strata_uvarint_read(const uint8_t *p, const uint8_t *end, uint32_t *value)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 5 && p + i < end; i++) {
        v |= (uint32_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *value = v;
            return i + 1;
        }
    }
    return 0;
}

strata_status_t strata_packetise(const strata_frame_t *f, const uint8_t *latent, int w8, int h8,
                                 uint8_t *out, size_t capacity, size_t *length)
{
    const int k = f->channels;
    const size_t plane = (size_t)w8 * h8;
    uint32_t lengths[STRATA_MAX_CHANNELS];
    size_t head = STRATA_HEADER_SIZE; /* header + the lengths known so far */
    uint8_t *chunks;
    size_t total;
    int c;
    if (capacity < STRATA_HEADER_SIZE + (size_t)k + STRATA_CRC_SIZE) {
        return STRATA_ERR_NO_SPACE;
    }
    /* Chunks are coded last channel first, each below the previous one, so they end up
     * in channel order at the top of the buffer; then the header goes in front of them.
     * A chunk may use everything above the header, counting 1 byte for each length not
     * known yet, so a buffer of exactly the packet's size is enough. */
    chunks = out + capacity - STRATA_CRC_SIZE;
    for (c = k - 1; c >= 0; c--) {
        uint8_t *before = chunks;
        if (strata_code_intra(c, latent + (size_t)c * plane, w8, h8, &chunks,
                           out + head + (size_t)c + 1)) {
            return STRATA_ERR_NO_SPACE;
        }
        lengths[c] = (uint32_t)(before - chunks);
        head += strata_uvarint_size(lengths[c]);
    }
    if (head > (size_t)(chunks - out)) {
        return STRATA_ERR_NO_SPACE; /* the lengths came out longer than 1 byte each */
    }
    total = (size_t)(out + capacity - STRATA_CRC_SIZE - chunks);

    strata_put_packet(out, f, NULL, lengths, chunks, total, length);
    return STRATA_OK;
}

void strata_put_packet(uint8_t *out, const strata_frame_t *f, const strata_p_header_t *v2,
                       const uint32_t *lengths, const uint8_t *chunks, size_t total,
                       size_t *length)
{
    uint8_t *p = out;
    int c;
    *p++ = 'S';
    *p++ = 'F';
    *p++ = v2 ? 2 : 1; /* version */
    *p++ = v2 ? v2->frame_type : 0;
    p = put_le(p, MCUCODER_MODEL_ID, 4);
    p = put_le(p, f->seq, 4);
    p = put_le(p, f->capture_time_ms, 8);
    p = put_le(p, f->width, 2);
    p = put_le(p, f->height, 2);
    *p++ = MCUCODER_CODING;
    *p++ = 0; /* quant: as trained */
    p = put_le(p, v2 ? v2->ref : 0, 2); /* ref: none for intra frames */
    *p++ = (uint8_t)f->channels;
    if (v2) {
        *p++ = v2->block;
        *p++ = v2->motion;
    }
    for (c = 0; c < f->channels; c++) {
        p = strata_uvarint_put(p, lengths[c]);
    }
    memmove(p, chunks, total);
    p += total;
    p = put_le(p, strata_crc32(0, out, (size_t)(p - out)), 4);
    *length = (size_t)(p - out);
}
