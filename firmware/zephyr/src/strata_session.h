/*
 * The MQTT session's names (docs/mqtt.md "topics"): the topic scheme and the device id
 * rule. The session itself (connect, Last Will, PUBACKs, reconnects) is Zephyr code in
 * main.c; what it publishes is built by strata_desired.c and strata_telemetry.c. Kept
 * apart so the one place that knows "strata/v1/dev/{device}/{kind}" is small and host-tested.
 */
#ifndef STRATA_SESSION_H
#define STRATA_SESSION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1..64 characters: a letter or digit, then letters, digits, '_', '.' or '-'. */
int strata_valid_device_id(const char *device_id);

/* "strata/v1/dev/{device}/{kind}"; the length, or -1 if it does not fit / a bad id. */
int strata_topic(char *out, size_t cap, const char *device_id, const char *kind);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_SESSION_H */
