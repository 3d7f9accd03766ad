/*
 * What the device says about itself (docs/mqtt.md "status" and "telemetry"): the retained
 * online status, the offline status (the Last Will), and the telemetry heartbeat with the
 * link counters main.c keeps. Pure payload building, apart from the desired-state rules
 * (strata_desired.c) and the send policy (strata_send.c) whose results it only reports.
 * C99, no malloc, no Zephyr.
 */
#ifndef STRATA_TELEMETRY_H
#define STRATA_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "strata_desired.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Payloads (JSON, no trailing NUL counted); each returns the length or -1 (too small). */
int strata_status_online(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                         const char *firmware, int width, int height,
                         const strata_settings_t *s);
int strata_status_offline(char *out, size_t cap, const char *device_id, const char *reason,
                          uint64_t ts_ms /* 0: none (the Last Will) */);

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

#ifdef __cplusplus
}
#endif

#endif /* STRATA_TELEMETRY_H */
