/*
 * The desired state (docs/mqtt.md "desired and reported"): what the platform may change,
 * the rules for applying a `desired` payload (devices/camera.py's: newer versions only,
 * repeats and stale versions ignored, invalid states refused with the simulator's error
 * text) and the `reported` answer. Apart from the payloads the device volunteers
 * (strata_telemetry.c) because this is the one half the platform writes to. C99, no Zephyr.
 */
#ifndef STRATA_DESIRED_H
#define STRATA_DESIRED_H

#include <stddef.h>
#include <stdint.h>

#include "strata_json.h"

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
    int64_t key_request; /* raised by the platform per key frame it asks for (issue 18) */
} strata_settings_t;

typedef enum {
    STRATA_DESIRED_APPLIED = 1,  /* *cur updated: publish the report */
    STRATA_DESIRED_IGNORED = 0,  /* a stale version or a repeat of the applied one */
    STRATA_DESIRED_INVALID = -1  /* not applied: publish the report with `error` */
} strata_desired_result_t;

/* Defaults of a fresh device (version 0, tier 12, 1 fps, no cap, periodic, no deadline,
 * key_request 0). */
void strata_settings_default(strata_settings_t *s);

/* Apply one desired payload (a flat JSON object) with devices/camera.py's rules. On
 * STRATA_DESIRED_INVALID, *error is the reason (a static string, as docs/mqtt.md).
 * key_request is kept and echoed; main.c sends intra frames only, each a key frame, so it
 * needs no other answer (a loop streaming predicted frames sends its next frame as a key
 * frame when the applied key_request differs from the one before: Desired.asks_key_frame). */
strata_desired_result_t strata_desired_apply(strata_settings_t *cur, const char *json,
                                             size_t len, const char **error);

/* The `reported` payload (JSON, no trailing NUL counted; the length or -1 if too small).
 * error == NULL: a plain report; otherwise `rejected` is the payload that was refused. */
int strata_reported(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                    const strata_settings_t *s, const char *error, const char *rejected,
                    size_t rejected_len);

/* The seven settings fields ("version": ..., "key_request": ...), in Camera._applied()'s
 * order, as every payload that carries them writes them (reported, status, telemetry). */
void strata_settings_json(strata_json_writer_t *w, const strata_settings_t *s);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_DESIRED_H */
