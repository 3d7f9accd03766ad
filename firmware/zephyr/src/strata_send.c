/* See strata_send.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_send.h"

#include <math.h>
#include <string.h>

#include "strata_bitstream.h"

int strata_fallback_channels(const strata_settings_t *s, uint32_t backlog, uint32_t max_backlog)
{
    if (backlog >= max_backlog) return 0;
    if (2 * backlog >= max_backlog) return s->tier / 2 > 0 ? s->tier / 2 : 1;
    return s->tier;
}

/* ---- rate cap over a sliding window of capture times ------------------------------------ */

void strata_cap_init(strata_cap_t *c)
{
    memset(c, 0, sizeof *c);
}

double strata_cap_allows(strata_cap_t *c, const strata_settings_t *s, double captured_s)
{
    double sum = 0;
    int i;
    while (c->count && c->t_s[c->head] <= captured_s - STRATA_CAP_WINDOW_S) {
        c->head = (c->head + 1) % STRATA_CAP_ENTRIES;
        c->count--;
    }
    if (!(s->max_kbps > 0)) return HUGE_VAL;
    for (i = 0; i < c->count; i++) sum += c->bytes[(c->head + i) % STRATA_CAP_ENTRIES];
    return s->max_kbps * 1000 / 8 * STRATA_CAP_WINDOW_S - sum;
}

void strata_cap_sent(strata_cap_t *c, double captured_s, uint32_t bytes)
{
    if (c->count == STRATA_CAP_ENTRIES) { /* merge the two oldest: kept longer, never less */
        int second = (c->head + 1) % STRATA_CAP_ENTRIES;
        c->bytes[second] += c->bytes[c->head];
        c->head = second;
        c->count--;
    }
    c->t_s[(c->head + c->count) % STRATA_CAP_ENTRIES] = captured_s;
    c->bytes[(c->head + c->count) % STRATA_CAP_ENTRIES] = bytes;
    c->count++;
}

/* ---- the per-frame decision ---------------------------------------------------------------- */

void strata_hold_init(strata_hold_t *h)
{
    h->kept = 0;
    h->kept_since_s = -HUGE_VAL;
}

void strata_hold_sent(strata_hold_t *h, int channels, double captured_s)
{
    if (channels && channels != h->kept) {
        if (h->kept) h->kept_since_s = captured_s; /* the first frame is a probe: no dwell */
        h->kept = channels;
    }
}

int strata_guard(const strata_settings_t *s, const uint32_t *prefix_sizes, int channels,
                 double allowed_bytes, const strata_uplink_t *u, const strata_inflight_t *inflight,
                 const strata_hold_t *hold, double captured_s, double since_capture_s,
                 strata_verdict_t *why)
{
    const int deadline = s->deadline_ms > 0;
    const double d_s = s->deadline_ms / 1000;
    /* a frame's fair share of the cap (cap / fps): over it a frame loses channels even while
     * the window has room; a single channel may use what the window has left */
    const double share =
        (s->max_kbps > 0 && s->fps > 0) ? s->max_kbps * 1000 / 8 / s->fps : HUGE_VAL;
    double left = 0;
    *why = STRATA_SEND;
    if (channels < 1) return 0;
    if (deadline) {
        left = d_s * (1 - STRATA_GUARD_MARGIN) - since_capture_s;
        if (strata_uplink_kbps(u) < 0 && channels > STRATA_START_CHANNELS)
            channels = STRATA_START_CHANNELS; /* nothing measured yet: start small, like TCP */
    }
    for (;;) {
        uint32_t size = prefix_sizes[channels - 1];
        int over_cap = (double)size > allowed_bytes || (channels > 1 && (double)size > share);
        int late = 0;
        if (deadline && !over_cap) {
            double arrival = strata_uplink_arrival_s(u, size, inflight);
            /* the margin guards the estimate; one channel goes if it can still be in time */
            double margin = channels == 1 ? d_s * STRATA_GUARD_MARGIN : 0.0;
            if (hold->kept > 0 && hold->kept < channels) { /* more than the last frame: calm */
                if (captured_s - hold->kept_since_s < STRATA_UP_DWELL_S)
                    margin = -HUGE_VAL;
                else
                    margin -= d_s * STRATA_UP_HEADROOM;
            }
            late = arrival >= 0 && arrival > left + margin;
        }
        if (!over_cap && !late) return channels;
        if (channels == 1) {
            /* nothing unacknowledged: one channel goes as a probe, delaying nothing; its
             * PUBACK renews an estimate that one slow acknowledgement left too low */
            if (late && inflight->queued_bytes == 0) return channels;
            *why = over_cap ? STRATA_DROP_RATE : STRATA_DROP_DEADLINE;
            return 0;
        }
        channels--; /* the next lower tier, by the size of the channels kept */
    }
}

/* ---- packets: the layout of docs/bitstream.md (header, LEB128 lengths, chunks, CRC) -------- */

/* Channel count, the length table's end and each chunk's length; -1 if malformed. */
static int packet_layout(const uint8_t *packet, size_t len, uint32_t *lengths, int max_channels,
                         size_t *table_end)
{
    const uint8_t *p, *end = packet + len;
    uint64_t total = 0;
    int n, c;
    if (len < STRATA_HEADER_SIZE + STRATA_CRC_SIZE || packet[0] != 'S' || packet[1] != 'F')
        return -1;
    n = packet[STRATA_HEADER_SIZE - 1]; /* the channel count closes the header */
    if (n < 1 || n > max_channels) return -1;
    p = packet + STRATA_HEADER_SIZE;
    for (c = 0; c < n; c++) {
        int used = strata_uvarint_read(p, end - STRATA_CRC_SIZE, &lengths[c]);
        if (!used) return -1;
        p += used;
        total += lengths[c];
    }
    if (total != (uint64_t)(end - STRATA_CRC_SIZE - p)) return -1;
    *table_end = (size_t)(p - packet);
    return n;
}

int strata_packet_prefix_sizes(const uint8_t *packet, size_t len, uint32_t *prefix_sizes,
                               int max_channels)
{
    uint32_t lengths[255];
    size_t table_end;
    uint32_t size = STRATA_HEADER_SIZE + STRATA_CRC_SIZE;
    int n = packet_layout(packet, len, lengths, max_channels < 255 ? max_channels : 255,
                          &table_end), c;
    for (c = 0; c < n; c++) {
        size += (uint32_t)strata_uvarint_size(lengths[c]) + lengths[c];
        prefix_sizes[c] = size;
    }
    return n;
}

long strata_packet_trim(uint8_t *packet, size_t len, int channels)
{
    uint32_t lengths[255], keep = 0, crc;
    size_t table_end, head, table = 0;
    int n = packet_layout(packet, len, lengths, 255, &table_end), c;
    if (n < 0 || channels < 1 || channels > n) return -1;
    for (c = 0; c < channels; c++) {
        table += strata_uvarint_size(lengths[c]);
        keep += lengths[c];
    }
    head = STRATA_HEADER_SIZE + table; /* the kept lengths stay where they are */
    packet[STRATA_HEADER_SIZE - 1] = (uint8_t)channels;
    memmove(packet + head, packet + table_end, keep);
    crc = strata_crc32(0, packet, head + keep);
    for (c = 0; c < STRATA_CRC_SIZE; c++)
        packet[head + keep + (size_t)c] = (uint8_t)(crc >> (8 * c)); /* little-endian */
    return (long)(head + keep + STRATA_CRC_SIZE);
}
