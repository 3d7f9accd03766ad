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
} strata_settings_t;

typedef enum {
    STRATA_DESIRED_APPLIED = 1,  /* *cur updated: publish the report */
    STRATA_DESIRED_IGNORED = 0,  /* a stale version or a repeat of the applied one */
    STRATA_DESIRED_INVALID = -1  /* not applied: publish the report with `error` */
} strata_desired_result_t;

/* Defaults of a fresh device (version 0, tier 12, 1 fps, no cap, periodic). */
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
    uint32_t dropped_backlog, dropped_rate, frames_trimmed, frames_still;
    uint32_t connects, disconnects;
    uint32_t backlog, max_backlog;
    double puback_mean_ms, puback_p95_ms;
    uint32_t puback_samples;
    double throughput_kbps;
} strata_link_stats_t;

int strata_telemetry(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                     double uptime_s, const strata_link_stats_t *st, const strata_settings_t *s);

/* Local fallback, rule 1 (backlog): channels for the next frame, or 0 = drop it. */
int strata_fallback_channels(const strata_settings_t *s, uint32_t backlog, uint32_t max_backlog);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_LINK_H */
