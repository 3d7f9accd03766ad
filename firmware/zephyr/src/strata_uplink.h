/*
 * The uplink estimate from PUBACK timing (devices/uplink.py; docs/mqtt.md `link_kbps`).
 * Its own unit, as in Python, because two others read it: the send policy (strata_send.c)
 * predicts when a frame would be acknowledged, telemetry reports the rate. C99, no Zephyr.
 */
#ifndef STRATA_UPLINK_H
#define STRATA_UPLINK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* STRATA_UPLINK_H */
