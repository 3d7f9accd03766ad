/*
 * The send policy (docs/mqtt.md "local fallback"; devices/camera.py Camera._fit): how many
 * channels of a captured frame go out, if any. Rule 1, the backlog; rule 2, the rate cap
 * over every 2 s window of capture times; rule 3, the deadline guard on the uplink
 * estimate (strata_uplink.c); and cutting the encoded packet to the channels kept, in
 * place, so the camera rows are never needed again. Apart from the MQTT session and the
 * payloads because it is the one part with a tuning history of its own. C99, no Zephyr.
 */
#ifndef STRATA_SEND_H
#define STRATA_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "strata_desired.h"
#include "strata_uplink.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Local fallback, rule 1 (backlog): channels for the next frame, or 0 = drop it. */
int strata_fallback_channels(const strata_settings_t *s, uint32_t backlog, uint32_t max_backlog);

/* ---- rate cap: bytes captured in any 2 s window <= 2 s of max_kbps (docs/mqtt.md rule 2) ---- */

#define STRATA_CAP_WINDOW_S 2.0
#define STRATA_CAP_ENTRIES 64 /* >= 30 fps x 2 s; when full the two oldest merge (stricter) */

typedef struct {
    double t_s[STRATA_CAP_ENTRIES];      /* capture times of the frames sent, oldest first */
    uint32_t bytes[STRATA_CAP_ENTRIES];
    int head, count;
} strata_cap_t;

void strata_cap_init(strata_cap_t *c);
/* Bytes the cap still allows for a frame captured at captured_s (forgets frames captured
 * STRATA_CAP_WINDOW_S or more before it); HUGE_VAL without max_kbps. */
double strata_cap_allows(strata_cap_t *c, const strata_settings_t *s, double captured_s);
/* A frame captured at captured_s was sent with `bytes` bytes. */
void strata_cap_sent(strata_cap_t *c, double captured_s, uint32_t bytes);

/* ---- the per-frame decision: rate cap + deadline guard (devices/camera.py Camera._fit) ---- */

#define STRATA_GUARD_MARGIN 0.5 /* of the deadline, kept for the broker, ingest, a fading link */
#define STRATA_START_CHANNELS 1 /* deadline set, nothing measured yet: a small first frame */
/* hysteresis: more channels than the last frame sent only STRATA_UP_DWELL_S (capture time)
 * after the last change, and arriving STRATA_UP_HEADROOM of the deadline early; fewer at once */
#define STRATA_UP_DWELL_S 3.0
#define STRATA_UP_HEADROOM 0.15

typedef struct {
    int kept;           /* channels of the last frame sent; 0: none yet */
    double kept_since_s; /* capture time at which `kept` last changed */
} strata_hold_t;

void strata_hold_init(strata_hold_t *h);
/* A frame captured at captured_s was sent with `channels` channels. */
void strata_hold_sent(strata_hold_t *h, int channels, double captured_s);

typedef enum { STRATA_SEND = 0, STRATA_DROP_RATE = 1, STRATA_DROP_DEADLINE = 2 } strata_verdict_t;

/* prefix_sizes[k-1]: bytes of this frame's packet with its first k channels, k = 1..channels
 * (strata_packet_prefix_sizes). allowed_bytes: strata_cap_allows(). hold: the channels sent
 * last (strata_hold_sent); captured_s: this frame's capture time; since_capture_s: now minus
 * it. Returns the channels to send (1..channels, *why = STRATA_SEND) or 0 with
 * *why = STRATA_DROP_RATE / STRATA_DROP_DEADLINE. */
int strata_guard(const strata_settings_t *s, const uint32_t *prefix_sizes, int channels,
                 double allowed_bytes, const strata_uplink_t *u, const strata_inflight_t *inflight,
                 const strata_hold_t *hold, double captured_s, double since_capture_s,
                 strata_verdict_t *why);

/* ---- packets of docs/bitstream.md: sizes of channel prefixes, trimming in place ---- */
/* (CRC-32 and LEB128 are strata_packet.c's, through ../../include/strata_bitstream.h) */

/* prefix_sizes[k-1] = bytes of this packet cut to its first k channels, k = 1..n; returns n
 * (the packet's channel count), or -1 if it is not a well-formed packet of len bytes or
 * n > max_channels. The CRC is not checked (our own encoder's output). */
int strata_packet_prefix_sizes(const uint8_t *packet, size_t len, uint32_t *prefix_sizes,
                               int max_channels);
/* Cut the packet in place to its first `channels` channels (header count, length table,
 * chunks, CRC rewritten: the same bytes as encoding with that many channels). Returns the new
 * length, or -1 (not a packet, or channels outside 1..n). */
long strata_packet_trim(uint8_t *packet, size_t len, int channels);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_SEND_H */
