/* See strata_telemetry.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_telemetry.h"

#include <math.h>

int strata_status_online(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                         const char *firmware, int width, int height,
                         const strata_settings_t *s)
{
    strata_json_writer_t w;
    strata_json_begin(&w, out, cap);
    strata_json_put(&w,
                    "{\"state\": \"online\", \"device\": \"%s\", \"ts\": %llu, \"firmware\": "
                    "\"%s\", \"mqtt\": \"3.1.1\", \"resolution\": [%d, %d], ",
                    device_id, (unsigned long long)ts_ms, firmware, width, height);
    strata_settings_json(&w, s);
    strata_json_put(&w, "}");
    return strata_json_end(&w);
}

int strata_status_offline(char *out, size_t cap, const char *device_id, const char *reason,
                          uint64_t ts_ms)
{
    strata_json_writer_t w;
    strata_json_begin(&w, out, cap);
    strata_json_put(&w, "{\"state\": \"offline\", \"device\": \"%s\", \"reason\": \"%s\"",
                    device_id, reason);
    if (ts_ms) strata_json_put(&w, ", \"ts\": %llu", (unsigned long long)ts_ms);
    strata_json_put(&w, "}");
    return strata_json_end(&w);
}

int strata_telemetry(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                     double uptime_s, const strata_link_stats_t *st, const strata_settings_t *s)
{
    strata_json_writer_t w;
    strata_json_begin(&w, out, cap);
    strata_json_put(&w, "{\"device\": \"%s\", \"ts\": %llu, \"uptime_s\": ", device_id,
                    (unsigned long long)ts_ms);
    strata_json_put_float(&w, uptime_s);
    strata_json_put(&w,
        ", \"seq\": %lu, \"frames_captured\": %lu, \"frames_sent\": %lu, \"bytes_sent\": %llu, "
        "\"frames_acked\": %lu, \"bytes_acked\": %llu, \"frames_dropped\": %lu, "
        "\"dropped_backlog\": %lu, \"dropped_rate\": %lu, \"dropped_deadline\": %lu, "
        "\"frames_trimmed\": %lu, "
        "\"frames_still\": %lu, \"connects\": %lu, \"disconnects\": %lu, \"backlog\": %lu, "
        "\"max_backlog\": %lu, \"puback_ms\": {\"mean\": ",
        (unsigned long)st->seq, (unsigned long)st->frames_captured,
        (unsigned long)st->frames_sent, (unsigned long long)st->bytes_sent,
        (unsigned long)st->frames_acked, (unsigned long long)st->bytes_acked,
        (unsigned long)(st->dropped_backlog + st->dropped_rate + st->dropped_deadline),
        (unsigned long)st->dropped_backlog, (unsigned long)st->dropped_rate,
        (unsigned long)st->dropped_deadline,
        (unsigned long)st->frames_trimmed, (unsigned long)st->frames_still,
        (unsigned long)st->connects, (unsigned long)st->disconnects, (unsigned long)st->backlog,
        (unsigned long)st->max_backlog);
    if (st->puback_samples) {
        strata_json_put_float(&w, st->puback_mean_ms);
        strata_json_put(&w, ", \"p95\": ");
        strata_json_put_float(&w, st->puback_p95_ms);
    } else {
        strata_json_put(&w, "null, \"p95\": null");
    }
    strata_json_put(&w, ", \"samples\": %lu}, \"throughput_kbps\": ",
                    (unsigned long)st->puback_samples);
    strata_json_put_float(&w, st->throughput_kbps);
    strata_json_put(&w, ", \"link_kbps\": ");
    if (st->link_kbps >= 0) /* Python's round(x, 2) */
        strata_json_put_float(&w, floor(st->link_kbps * 100 + 0.5) / 100);
    else
        strata_json_put(&w, "null");
    strata_json_put(&w, ", ");
    strata_settings_json(&w, s);
    strata_json_put(&w, "}");
    return strata_json_end(&w);
}
