/* See strata_link.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_link.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strata_settings_default(strata_settings_t *s)
{
    s->version = 0;
    s->tier = STRATA_MAX_TIER;
    s->fps = 1.0;
    s->max_kbps = 0.0;
    s->motion = 0;
    s->deadline_ms = 0.0;
}

static int valid_device_id(const char *id)
{
    size_t n = strlen(id), i;
    if (n < 1 || n > 64) return 0;
    for (i = 0; i < n; i++) {
        char c = id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return 0;
    }
    return 1;
}

int strata_topic(char *out, size_t cap, const char *device_id, const char *kind)
{
    int n;
    if (!valid_device_id(device_id)) return -1;
    n = snprintf(out, cap, "strata/v1/dev/%s/%s", device_id, kind);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

/* ---- a minimal reader for one flat JSON object --------------------------------------- */

typedef enum { V_MISSING, V_NULL, V_BOOL, V_INT, V_NUMBER, V_STRING, V_OTHER } vkind_t;

typedef struct {
    vkind_t kind;
    double num;
    const char *str; /* V_STRING: the raw characters between the quotes */
    size_t str_len;
} jvalue_t;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* End of the string starting after an opening quote, at the closing quote; NULL if none. */
static const char *string_end(const char *p, const char *end)
{
    while (p < end && *p != '"') p += (*p == '\\') ? 2 : 1;
    return p < end ? p : NULL;
}

/* End of any value at p (for skipping), NULL on malformed input. */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;
    if (p >= end) return NULL;
    if (*p == '"') {
        const char *q = string_end(p + 1, end);
        return q ? q + 1 : NULL;
    }
    while (p < end) {
        char c = *p;
        if (c == '"') {
            const char *q = string_end(p + 1, end);
            if (!q) return NULL;
            p = q + 1;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        if (c == '}' || c == ']') {
            if (depth == 0) return p;
            if (--depth == 0) return p + 1;
        }
        if (c == ',' && depth == 0) return p;
        p++;
    }
    return depth == 0 ? p : NULL;
}

static void classify(const char *p, const char *e, jvalue_t *v)
{
    char buf[40];
    char *endp;
    size_t n = (size_t)(e - p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
    v->kind = V_OTHER;
    if (n == 4 && !memcmp(p, "null", 4)) { v->kind = V_NULL; return; }
    if ((n == 4 && !memcmp(p, "true", 4)) || (n == 5 && !memcmp(p, "false", 5))) {
        v->kind = V_BOOL;
        return;
    }
    if (n >= 2 && p[0] == '"') {
        v->kind = V_STRING;
        v->str = p + 1;
        v->str_len = n - 2;
        return;
    }
    if (n == 0 || n >= sizeof buf) return;
    memcpy(buf, p, n);
    buf[n] = 0;
    v->num = strtod(buf, &endp);
    if (*endp || !isfinite(v->num)) return;
    v->kind = (strpbrk(buf, ".eE") == NULL) ? V_INT : V_NUMBER;
}

/* Parses the object; fills vals[i] for keys[i]. Returns 0, or -1 if not a JSON object. */
static int read_object(const char *json, size_t len, const char *const *keys, jvalue_t *vals,
                       int nkeys)
{
    const char *p = json, *end = json + len;
    int i;
    for (i = 0; i < nkeys; i++) vals[i].kind = V_MISSING;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') return skip_ws(p + 1, end) == end ? 0 : -1;
    for (;;) {
        const char *k, *ke, *v, *ve;
        if (p >= end || *p != '"') return -1;
        k = p + 1;
        ke = string_end(k, end);
        if (!ke) return -1;
        p = skip_ws(ke + 1, end);
        if (p >= end || *p != ':') return -1;
        v = skip_ws(p + 1, end);
        ve = value_end(v, end);
        if (!ve || ve == v) return -1;
        for (i = 0; i < nkeys; i++)
            if (strlen(keys[i]) == (size_t)(ke - k) && !memcmp(keys[i], k, (size_t)(ke - k)))
                classify(v, ve, &vals[i]);
        p = skip_ws(ve, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') return skip_ws(p + 1, end) == end ? 0 : -1;
        return -1;
    }
}

strata_desired_result_t strata_desired_apply(strata_settings_t *cur, const char *json,
                                             size_t len, const char **error)
{
    static const char *const keys[] = {"version", "tier", "fps", "max_kbps", "mode",
                                       "deadline_ms"};
    jvalue_t v[6];
    strata_settings_t next = *cur;
    *error = NULL;
    if (read_object(json, len, keys, v, 6) != 0) {
        *error = "desired state must be a JSON object";
        return STRATA_DESIRED_INVALID;
    }
    /* A repeat of the applied version (retained or QoS 1 duplicate): nothing to do. */
    if (v[0].kind == V_INT && cur->version && v[0].num == (double)cur->version)
        return STRATA_DESIRED_IGNORED;
    if (v[0].kind != V_INT || v[0].num < 0 || v[0].num > 9007199254740991.0) {
        *error = "'version' must be a non-negative integer";
        return STRATA_DESIRED_INVALID;
    }
    next.version = (int64_t)v[0].num;
    if (v[1].kind != V_MISSING) {
        if (v[1].kind != V_INT || v[1].num < 1 || v[1].num > STRATA_MAX_TIER) {
            *error = "'tier' must be an integer 1..12";
            return STRATA_DESIRED_INVALID;
        }
        next.tier = (int)v[1].num;
    }
    if (v[2].kind != V_MISSING) {
        if ((v[2].kind != V_INT && v[2].kind != V_NUMBER) || v[2].num < 0 || v[2].num > 30) {
            *error = "'fps' must be a number 0..30 (0 pauses capture)";
            return STRATA_DESIRED_INVALID;
        }
        next.fps = v[2].num;
    }
    if (v[3].kind == V_NULL) {
        next.max_kbps = 0.0;
    } else if (v[3].kind != V_MISSING) {
        if ((v[3].kind != V_INT && v[3].kind != V_NUMBER) || !(v[3].num > 0)) {
            *error = "'max_kbps' must be a positive number or null";
            return STRATA_DESIRED_INVALID;
        }
        next.max_kbps = v[3].num;
    }
    if (v[4].kind != V_MISSING) {
        if (v[4].kind == V_STRING && v[4].str_len == 8 && !memcmp(v[4].str, "periodic", 8))
            next.motion = 0;
        else if (v[4].kind == V_STRING && v[4].str_len == 6 && !memcmp(v[4].str, "motion", 6))
            next.motion = 1;
        else {
            *error = "'mode' must be one of periodic, motion";
            return STRATA_DESIRED_INVALID;
        }
    }
    if (v[5].kind == V_NULL) {
        next.deadline_ms = 0.0;
    } else if (v[5].kind != V_MISSING) {
        if ((v[5].kind != V_INT && v[5].kind != V_NUMBER) || !(v[5].num >= 100) ||
            !(v[5].num <= 600000)) {
            *error = "'deadline_ms' must be a number 100..600000 or null";
            return STRATA_DESIRED_INVALID;
        }
        next.deadline_ms = v[5].num;
    }
    if (next.version < cur->version) return STRATA_DESIRED_IGNORED; /* stale */
    *cur = next;
    return STRATA_DESIRED_APPLIED;
}

/* ---- writers ------------------------------------------------------------------------- */

typedef struct {
    char *out;
    size_t cap, len;
    int overflow;
} jw_t;

static void put(jw_t *w, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (w->overflow) return;
    va_start(ap, fmt);
    n = vsnprintf(w->out + w->len, w->cap - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    w->len += (size_t)n;
}

/* A JSON number as Python's json.dumps writes a float (2.0, 0.5, 48.25). */
static void put_float(jw_t *w, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        put(w, "%.1f", x);
    else
        put(w, "%.15g", x);
}

static void put_string(jw_t *w, const char *s, size_t n)
{
    size_t i;
    put(w, "\"");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(w, "\\%c", c);
        else if (c < 0x20)
            put(w, "\\u%04x", c);
        else
            put(w, "%c", c);
    }
    put(w, "\"");
}

static void put_settings(jw_t *w, const strata_settings_t *s)
{
    put(w, "\"version\": %lld, \"tier\": %d, \"fps\": ", (long long)s->version, s->tier);
    put_float(w, s->fps);
    put(w, ", \"max_kbps\": ");
    if (s->max_kbps > 0)
        put_float(w, s->max_kbps);
    else
        put(w, "null");
    put(w, ", \"mode\": \"%s\", \"deadline_ms\": ", s->motion ? "motion" : "periodic");
    if (s->deadline_ms > 0)
        put_float(w, s->deadline_ms);
    else
        put(w, "null");
}

static int done(jw_t *w)
{
    return w->overflow ? -1 : (int)w->len;
}

int strata_status_online(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                         const char *firmware, int width, int height,
                         const strata_settings_t *s)
{
    jw_t w = {out, cap, 0, cap == 0};
    put(&w, "{\"state\": \"online\", \"device\": \"%s\", \"ts\": %llu, \"firmware\": \"%s\", "
            "\"mqtt\": \"3.1.1\", \"resolution\": [%d, %d], ",
        device_id, (unsigned long long)ts_ms, firmware, width, height);
    put_settings(&w, s);
    put(&w, "}");
    return done(&w);
}

int strata_status_offline(char *out, size_t cap, const char *device_id, const char *reason,
                          uint64_t ts_ms)
{
    jw_t w = {out, cap, 0, cap == 0};
    put(&w, "{\"state\": \"offline\", \"device\": \"%s\", \"reason\": \"%s\"", device_id, reason);
    if (ts_ms) put(&w, ", \"ts\": %llu", (unsigned long long)ts_ms);
    put(&w, "}");
    return done(&w);
}

int strata_reported(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                    const strata_settings_t *s, const char *error, const char *rejected,
                    size_t rejected_len)
{
    jw_t w = {out, cap, 0, cap == 0};
    put(&w, "{");
    put_settings(&w, s);
    if (error) {
        put(&w, ", \"error\": ");
        put_string(&w, error, strlen(error));
        put(&w, ", \"rejected\": ");
        put_string(&w, rejected, rejected_len);
    }
    put(&w, ", \"device\": \"%s\", \"ts\": %llu}", device_id, (unsigned long long)ts_ms);
    return done(&w);
}

int strata_telemetry(char *out, size_t cap, const char *device_id, uint64_t ts_ms,
                     double uptime_s, const strata_link_stats_t *st, const strata_settings_t *s)
{
    jw_t w = {out, cap, 0, cap == 0};
    put(&w, "{\"device\": \"%s\", \"ts\": %llu, \"uptime_s\": ", device_id,
        (unsigned long long)ts_ms);
    put_float(&w, uptime_s);
    put(&w,
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
        put_float(&w, st->puback_mean_ms);
        put(&w, ", \"p95\": ");
        put_float(&w, st->puback_p95_ms);
    } else {
        put(&w, "null, \"p95\": null");
    }
    put(&w, ", \"samples\": %lu}, \"throughput_kbps\": ", (unsigned long)st->puback_samples);
    put_float(&w, st->throughput_kbps);
    put(&w, ", \"link_kbps\": ");
    if (st->link_kbps >= 0)
        put_float(&w, floor(st->link_kbps * 100 + 0.5) / 100); /* Python's round(x, 2) */
    else
        put(&w, "null");
    put(&w, ", ");
    put_settings(&w, s);
    put(&w, "}");
    return done(&w);
}

int strata_fallback_channels(const strata_settings_t *s, uint32_t backlog, uint32_t max_backlog)
{
    if (backlog >= max_backlog) return 0;
    if (2 * backlog >= max_backlog) return s->tier / 2 > 0 ? s->tier / 2 : 1;
    return s->tier;
}

/* ---- uplink estimator ------------------------------------------------------------------ */

void strata_uplink_init(strata_uplink_t *u)
{
    memset(u, 0, sizeof *u);
}

void strata_uplink_acknowledged(strata_uplink_t *u, double sent_s, double acked_s, uint32_t size)
{
    double start = sent_s > u->last_ack_s ? sent_s : u->last_ack_s;
    double service = acked_s - start;
    if (acked_s > u->last_ack_s) u->last_ack_s = acked_s;
    if (service >= STRATA_MIN_SERVICE_S && service <= STRATA_MAX_SERVICE_S) {
        u->samples[u->next] = (double)size * 8 / 1000 / service;
        u->next = (u->next + 1) % STRATA_UPLINK_WINDOW;
        if (u->count < STRATA_UPLINK_WINDOW) u->count++;
    }
}

double strata_uplink_kbps(const strata_uplink_t *u)
{
    double inv = 0, hm, latest;
    int i;
    if (u->count == 0) return -1.0;
    for (i = 0; i < u->count; i++) inv += 1.0 / u->samples[i];
    hm = u->count / inv;
    latest = u->samples[(u->next + STRATA_UPLINK_WINDOW - 1) % STRATA_UPLINK_WINDOW];
    return hm < latest ? hm : latest;
}

double strata_uplink_arrival_s(const strata_uplink_t *u, uint32_t size,
                               const strata_inflight_t *inflight)
{
    double kbps = strata_uplink_kbps(u);
    if (kbps < 0) return -1.0;
    if (inflight->oldest_size && inflight->oldest_age_s > 0 &&
        (double)inflight->oldest_size * 8 / 1000 / kbps < inflight->oldest_age_s) {
        double stalled = (double)inflight->oldest_size * 8 / 1000 / inflight->oldest_age_s;
        if (stalled < kbps) kbps = stalled;
    }
    return (double)(inflight->queued_bytes + size) * 8 / 1000 / (kbps > 1e-6 ? kbps : 1e-6);
}

/* ---- rate cap over a sliding window of capture times ------------------------------------ */

void strata_cap_init(strata_cap_t *c)
{
    memset(c, 0, sizeof *c);
}

double strata_cap_allows(strata_cap_t *c, const strata_settings_t *s, double captured_s)
{
    double sum = 0;
    int i;
    while (c->count && c->t_s[c->head] <= captured_s - STRATA_CAP_WINDOW_S) {
        c->head = (c->head + 1) % STRATA_CAP_ENTRIES;
        c->count--;
    }
    if (!(s->max_kbps > 0)) return HUGE_VAL;
    for (i = 0; i < c->count; i++) sum += c->bytes[(c->head + i) % STRATA_CAP_ENTRIES];
    return s->max_kbps * 1000 / 8 * STRATA_CAP_WINDOW_S - sum;
}

void strata_cap_sent(strata_cap_t *c, double captured_s, uint32_t bytes)
{
    if (c->count == STRATA_CAP_ENTRIES) { /* merge the two oldest: kept longer, never less */
        int second = (c->head + 1) % STRATA_CAP_ENTRIES;
        c->bytes[second] += c->bytes[c->head];
        c->head = second;
        c->count--;
    }
    c->t_s[(c->head + c->count) % STRATA_CAP_ENTRIES] = captured_s;
    c->bytes[(c->head + c->count) % STRATA_CAP_ENTRIES] = bytes;
    c->count++;
}

/* ---- the per-frame decision ---------------------------------------------------------------- */

int strata_guard(const strata_settings_t *s, const uint32_t *prefix_sizes, int channels,
                 double allowed_bytes, const strata_uplink_t *u, const strata_inflight_t *inflight,
                 double since_capture_s, strata_verdict_t *why)
{
    const int deadline = s->deadline_ms > 0;
    const double d_s = s->deadline_ms / 1000;
    /* a frame's fair share of the cap (cap / fps): over it a frame loses channels even while
     * the window has room; a single channel may use what the window has left */
    const double share =
        (s->max_kbps > 0 && s->fps > 0) ? s->max_kbps * 1000 / 8 / s->fps : HUGE_VAL;
    double left = 0;
    *why = STRATA_SEND;
    if (channels < 1) return 0;
    if (deadline) {
        left = d_s * (1 - STRATA_GUARD_MARGIN) - since_capture_s;
        if (strata_uplink_kbps(u) < 0 && channels > STRATA_START_CHANNELS)
            channels = STRATA_START_CHANNELS; /* nothing measured yet: start small, like TCP */
    }
    for (;;) {
        uint32_t size = prefix_sizes[channels - 1];
        int over_cap = (double)size > allowed_bytes || (channels > 1 && (double)size > share);
        int late = 0;
        if (deadline && !over_cap) {
            double arrival = strata_uplink_arrival_s(u, size, inflight);
            /* the margin guards the estimate; one channel goes if it can still be in time */
            double margin = channels == 1 ? d_s * STRATA_GUARD_MARGIN : 0.0;
            late = arrival >= 0 && arrival > left + margin;
        }
        if (!over_cap && !late) return channels;
        if (channels == 1) {
            *why = over_cap ? STRATA_DROP_RATE : STRATA_DROP_DEADLINE;
            return 0;
        }
        channels--; /* the next lower tier, by the size of the channels kept */
    }
}

/* ---- packets -------------------------------------------------------------------------------- */

#define PACKET_HEADER 29 /* docs/bitstream.md: ... channel count at byte 28 */
#define PACKET_CRC 4

/* One LEB128 length at p (< end); its value and byte count, or 0 if malformed. */
static int read_uvarint(const uint8_t *p, const uint8_t *end, uint32_t *value)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 5 && p + i < end; i++) {
        v |= (uint32_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *value = v;
            return i + 1;
        }
    }
    return 0;
}

/* Channel count, the length table's end and each chunk's length; -1 if malformed. */
static int packet_layout(const uint8_t *packet, size_t len, uint32_t *lengths, int max_channels,
                         size_t *table_end)
{
    const uint8_t *p, *end = packet + len;
    uint64_t total = 0;
    int n, c;
    if (len < PACKET_HEADER + PACKET_CRC || packet[0] != 'S' || packet[1] != 'F') return -1;
    n = packet[PACKET_HEADER - 1];
    if (n < 1 || n > max_channels) return -1;
    p = packet + PACKET_HEADER;
    for (c = 0; c < n; c++) {
        int used = read_uvarint(p, end - PACKET_CRC, &lengths[c]);
        if (!used) return -1;
        p += used;
        total += lengths[c];
    }
    if (total != (uint64_t)(end - PACKET_CRC - p)) return -1;
    *table_end = (size_t)(p - packet);
    return n;
}

static int uvarint_bytes(uint32_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int strata_packet_prefix_sizes(const uint8_t *packet, size_t len, uint32_t *prefix_sizes,
                               int max_channels)
{
    uint32_t lengths[255];
    size_t table_end;
    uint32_t size = PACKET_HEADER + PACKET_CRC;
    int n = packet_layout(packet, len, lengths, max_channels < 255 ? max_channels : 255,
                          &table_end), c;
    for (c = 0; c < n; c++) {
        size += (uint32_t)uvarint_bytes(lengths[c]) + lengths[c];
        prefix_sizes[c] = size;
    }
    return n;
}

static uint32_t crc32(const uint8_t *data, size_t n)
{
    uint32_t crc = 0xffffffffu;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        for (b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

long strata_packet_trim(uint8_t *packet, size_t len, int channels)
{
    uint32_t lengths[255], keep = 0, crc;
    size_t table_end, head, table = 0;
    int n = packet_layout(packet, len, lengths, 255, &table_end), c;
    if (n < 0 || channels < 1 || channels > n) return -1;
    for (c = 0; c < channels; c++) {
        table += (size_t)uvarint_bytes(lengths[c]);
        keep += lengths[c];
    }
    head = PACKET_HEADER + table; /* the kept lengths stay where they are */
    packet[PACKET_HEADER - 1] = (uint8_t)channels;
    memmove(packet + head, packet + table_end, keep);
    crc = crc32(packet, head + keep);
    for (c = 0; c < 4; c++) packet[head + keep + (size_t)c] = (uint8_t)(crc >> (8 * c));
    return (long)(head + keep + PACKET_CRC);
}
