/*
 * Strata camera link logic shared by the Zephyr application and the host test
 * (tests/firmware/test_tflm.py): topics, the desired-state rules and the JSON payloads of
 * docs/mqtt.md. C99, no Zephyr, no malloc; the Zephyr layer (main.c) only moves bytes.
 */
#ifndef STRATA_LINK_H
#define STRATA_LINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_MAX_TIER 12

/* What the platform may change (docs/mqtt.md "desired and reported"). */
typedef struct {
    int64_t version;
    int tier;        /* 1..12 */
    double fps;      /* 0..30, 0 pauses capture */
    double max_kbps; /* > 0, or 0 = null (no cap) */
    int motion;      /* 0 = "periodic", 1 = "motion" */
    double deadline_ms; /* 100..600000, or 0 = null (no deadline: store and forward) */
} strata_settings_t;

typedef enum {
    STRATA_DESIRED_APPLIED = 1,  /* *cur updated: publish the report */
    STRATA_DESIRED_IGNORED = 0,  /* a stale version or a repeat of the applied one */
    STRATA_DESIRED_INVALID = -1  /* not applied: publish the report with `error` */
} strata_desired_result_t;

/* Defaults of a fresh device (version 0, tier 12, 1 fps, no cap, periodic, no deadline). */
void strata_settings_default(strata_settings_t *s);

/* "strata/v1/dev/{device}/{kind}"; the length, or -1 if it does not fit / a bad id. */
int strata_topic(char *out, size_t cap, const char *device_id, const char *kind);

/* Apply one desired payload (a flat JSON object) with devices/camera.py's rules. On
 * STRATA_DESIRED_INVALID, *error is the reason (a static string, as docs/mqtt.md). */
strata_desired_result_t strata_desired_apply(strata_settings_t *cur, const char *json,
                                             size_t len, const char **error);

/* Payloads (JSON, no trailing NUL counted); each returns the length or -1 (too small). */
int strata_status_online(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                         const char *firmware, int width, int height,
                         const strata_settings_t *s);
int strata_status_offline(char *out, size_t cap, const char *device_id, const char *reason,
                          uint64_t ts_ms /* 0: none (the Last Will) */);
/* error == NULL: a plain report; otherwise `rejected` is the payload that was refused. */
int strata_reported(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                    const strata_settings_t *s, const char *error, const char *rejected,
                    size_t rejected_len);

typedef struct {
    uint32_t seq;
    uint32_t frames_captured, frames_sent, frames_acked;
    uint64_t bytes_sent, bytes_acked;
    uint32_t dropped_backlog, dropped_rate, dropped_deadline, frames_trimmed, frames_still;
    uint32_t connects, disconnects;
    uint32_t backlog, max_backlog;
    double puback_mean_ms, puback_p95_ms; /* over the last STRATA_RECENT_ACKS frames */
    uint32_t puback_samples;              /* 0: mean and p95 are written as null */
    double throughput_kbps;
    double link_kbps; /* strata_uplink_kbps(): < 0 = null (nothing measured yet) */
} strata_link_stats_t;

#define STRATA_RECENT_ACKS 8 /* telemetry's PUBACK latency: the link now, not its history */

int strata_telemetry(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                     double uptime_s, const strata_link_stats_t *st, const strata_settings_t *s);

/* Local fallback, rule 1 (backlog): channels for the next frame, or 0 = drop it. */
int strata_fallback_channels(const strata_settings_t *s, uint32_t backlog, uint32_t max_backlog);

/* ---- uplink estimate from PUBACK timing (devices/uplink.py, docs/mqtt.md link_kbps) ---- */

#define STRATA_UPLINK_WINDOW 4       /* capacity samples kept: the last acknowledged frames */
#define STRATA_MIN_SERVICE_S 0.002   /* shorter service times are timer noise */
#define STRATA_MAX_SERVICE_S 2.0     /* longer ones are an outage (the stall bound covers it) */

typedef struct {
    double samples[STRATA_UPLINK_WINDOW]; /* kbit/s, a ring */
    int count, next;                      /* samples held; where the next one goes */
    double last_ack_s;                    /* the latest PUBACK seen */
} strata_uplink_t;

void strata_uplink_init(strata_uplink_t *u);
/* The PUBACK (at acked_s) of a size-byte frame published at sent_s, any one clock in seconds.
 * Its service time runs from max(sent_s, the previous PUBACK) to acked_s. */
void strata_uplink_acknowledged(strata_uplink_t *u, double sent_s, double acked_s, uint32_t size);
/* min(harmonic mean of the samples, the latest sample) in kbit/s; -1 before any sample. */
double strata_uplink_kbps(const strata_uplink_t *u);

/* What is published and not yet acknowledged when a frame is about to go. */
typedef struct {
    uint64_t queued_bytes;  /* every unacknowledged publish (frames, heartbeat, reports) */
    uint32_t oldest_size;   /* the oldest unacknowledged frame's bytes; 0 = no frame pending */
    double oldest_age_s;    /* and how long it has waited */
} strata_inflight_t;

/* Seconds until a size-byte frame sent now would be acknowledged, behind what is in flight;
 * when the oldest pending frame has waited longer than the estimate allows (a stalled link)
 * its age sets the rate instead. -1 while nothing has been measured. */
double strata_uplink_arrival_s(const strata_uplink_t *u, uint32_t size,
                               const strata_inflight_t *inflight);

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

typedef enum { STRATA_SEND = 0, STRATA_DROP_RATE = 1, STRATA_DROP_DEADLINE = 2 } strata_verdict_t;

/* prefix_sizes[k-1]: bytes of this frame's packet with its first k channels, k = 1..channels
 * (strata_packet_prefix_sizes). allowed_bytes: strata_cap_allows(). since_capture_s: now minus
 * the frame's capture time. Returns the channels to send (1..channels, *why = STRATA_SEND) or
 * 0 with *why = STRATA_DROP_RATE / STRATA_DROP_DEADLINE. */
int strata_guard(const strata_settings_t *s, const uint32_t *prefix_sizes, int channels,
                 double allowed_bytes, const strata_uplink_t *u, const strata_inflight_t *inflight,
                 double since_capture_s, strata_verdict_t *why);

/* ---- packets of docs/bitstream.md: sizes of channel prefixes, trimming in place ---- */

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

#endif /* STRATA_LINK_H */
