/* See strata_desired.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_desired.h"

#include <string.h>

void strata_settings_default(strata_settings_t *s)
{
    s->version = 0;
    s->tier = STRATA_MAX_TIER;
    s->fps = 1.0;
    s->max_kbps = 0.0;
    s->motion = 0;
    s->deadline_ms = 0.0;
    s->key_request = 0;
}


strata_desired_result_t strata_desired_apply(strata_settings_t *cur, const char *json,
                                             size_t len, const char **error)
{
    static const char *const keys[] = {"version", "tier",        "fps",        "max_kbps",
                                       "mode",    "deadline_ms", "key_request"};
    strata_json_value_t v[7];
    strata_settings_t next = *cur;
    *error = NULL;
    if (strata_json_read_object(json, len, keys, v, 7) != 0) {
        *error = "desired state must be a JSON object";
        return STRATA_DESIRED_INVALID;
    }
    /* A repeat of the applied version (retained or QoS 1 duplicate): nothing to do. */
    if (v[0].kind == STRATA_JSON_INT && cur->version && v[0].num == (double)cur->version)
        return STRATA_DESIRED_IGNORED;
    if (v[0].kind != STRATA_JSON_INT || v[0].num < 0 || v[0].num > 9007199254740991.0) {
        *error = "'version' must be a non-negative integer";
        return STRATA_DESIRED_INVALID;
    }
    next.version = (int64_t)v[0].num;
    if (v[1].kind != STRATA_JSON_MISSING) {
        if (v[1].kind != STRATA_JSON_INT || v[1].num < 1 || v[1].num > STRATA_MAX_TIER) {
            *error = "'tier' must be an integer 1..12";
            return STRATA_DESIRED_INVALID;
        }
        next.tier = (int)v[1].num;
    }
    if (v[2].kind != STRATA_JSON_MISSING) {
        if ((v[2].kind != STRATA_JSON_INT && v[2].kind != STRATA_JSON_NUMBER) || v[2].num < 0 ||
            v[2].num > 30) {
            *error = "'fps' must be a number 0..30 (0 pauses capture)";
            return STRATA_DESIRED_INVALID;
        }
        next.fps = v[2].num;
    }
    if (v[3].kind == STRATA_JSON_NULL) {
        next.max_kbps = 0.0;
    } else if (v[3].kind != STRATA_JSON_MISSING) {
        if ((v[3].kind != STRATA_JSON_INT && v[3].kind != STRATA_JSON_NUMBER) || !(v[3].num > 0)) {
            *error = "'max_kbps' must be a positive number or null";
            return STRATA_DESIRED_INVALID;
        }
        next.max_kbps = v[3].num;
    }
    if (v[4].kind != STRATA_JSON_MISSING) {
        if (v[4].kind == STRATA_JSON_STRING && v[4].str_len == 8 &&
            !memcmp(v[4].str, "periodic", 8))
            next.motion = 0;
        else if (v[4].kind == STRATA_JSON_STRING && v[4].str_len == 6 &&
                 !memcmp(v[4].str, "motion", 6))
            next.motion = 1;
        else {
            *error = "'mode' must be one of periodic, motion";
            return STRATA_DESIRED_INVALID;
        }
    }
    if (v[5].kind == STRATA_JSON_NULL) {
        next.deadline_ms = 0.0;
    } else if (v[5].kind != STRATA_JSON_MISSING) {
        if ((v[5].kind != STRATA_JSON_INT && v[5].kind != STRATA_JSON_NUMBER) ||
            !(v[5].num >= 100) || !(v[5].num <= 600000)) {
            *error = "'deadline_ms' must be a number 100..600000 or null";
            return STRATA_DESIRED_INVALID;
        }
        next.deadline_ms = v[5].num;
    }
    if (v[6].kind != STRATA_JSON_MISSING) {
        if (v[6].kind != STRATA_JSON_INT || v[6].num < 0 || v[6].num > 9007199254740991.0) {
            *error = "'key_request' must be a non-negative integer";
            return STRATA_DESIRED_INVALID;
        }
        next.key_request = (int64_t)v[6].num;
    }
    if (next.version < cur->version) return STRATA_DESIRED_IGNORED; /* stale */
    *cur = next;
    return STRATA_DESIRED_APPLIED;
}

void strata_settings_json(strata_json_writer_t *w, const strata_settings_t *s)
{
    strata_json_put(w, "\"version\": %lld, \"tier\": %d, \"fps\": ", (long long)s->version,
                    s->tier);
    strata_json_put_float(w, s->fps);
    strata_json_put(w, ", \"max_kbps\": ");
    if (s->max_kbps > 0)
        strata_json_put_float(w, s->max_kbps);
    else
        strata_json_put(w, "null");
    strata_json_put(w, ", \"mode\": \"%s\", \"deadline_ms\": ", s->motion ? "motion" : "periodic");
    if (s->deadline_ms > 0)
        strata_json_put_float(w, s->deadline_ms);
    else
        strata_json_put(w, "null");
    strata_json_put(w, ", \"key_request\": %lld", (long long)s->key_request);
}

int strata_reported(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                    const strata_settings_t *s, const char *error, const char *rejected,
                    size_t rejected_len)
{
    strata_json_writer_t w;
    strata_json_begin(&w, out, cap);
    strata_json_put(&w, "{");
    strata_settings_json(&w, s);
    if (error) {
        strata_json_put(&w, ", \"error\": ");
        strata_json_put_string(&w, error, strlen(error));
        strata_json_put(&w, ", \"rejected\": ");
        strata_json_put_string(&w, rejected, rejected_len);
    }
    strata_json_put(&w, ", \"device\": \"%s\", \"ts\": %llu}", device_id,
                    (unsigned long long)ts_ms);
    return strata_json_end(&w);
}
