/*
 * Strata camera link logic shared by the Zephyr application and the host test
 * (tests/firmware/test_tflm.py): topics, the desired-state rules, the send policy and the
 * JSON payloads of docs/mqtt.md. C99, no Zephyr, no malloc; the Zephyr layer (main.c) only
 * moves bytes.
 *
 * One include for main.c and tests/link_cli.c. The logic is split at the seams the Python
 * device (devices/camera.py) is split at, one small unit each, so a change to one rule
 * touches one file:
 *
 *   strata_session.h    the topic scheme and the device id rule (the MQTT session's names)
 *   strata_desired.h    the settings, applying `desired`, building `reported`
 *   strata_uplink.h     the uplink estimate from PUBACK timing (devices/uplink.py)
 *   strata_send.h       the send policy: backlog fallback, 2 s rate cap, deadline guard,
 *                       packets cut to fewer channels in place
 *   strata_telemetry.h  the status (online, Last Will) and telemetry payloads
 *   strata_json.h       the flat-JSON reader and the json.dumps-compatible writer they share
 *
 * CRC-32 and LEB128 are the encoder's (../../src/strata_packet.c, declared in
 * ../../include/strata_bitstream.h): one implementation on the device.
 */
#ifndef STRATA_LINK_H
#define STRATA_LINK_H

#include "strata_desired.h"
#include "strata_send.h"
#include "strata_session.h"
#include "strata_telemetry.h"
#include "strata_uplink.h"

#endif /* STRATA_LINK_H */
