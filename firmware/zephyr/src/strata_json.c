/* See strata_json.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a minimal reader for one flat JSON object --------------------------------------- */

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

static void classify(const char *p, const char *e, strata_json_value_t *v)
{
    char buf[40];
    char *endp;
    size_t n = (size_t)(e - p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\t' || p[n - 1] == '\r')) n--;
    v->kind = STRATA_JSON_OTHER;
    if (n == 4 && !memcmp(p, "null", 4)) { v->kind = STRATA_JSON_NULL; return; }
    if ((n == 4 && !memcmp(p, "true", 4)) || (n == 5 && !memcmp(p, "false", 5))) {
        v->kind = STRATA_JSON_BOOL;
        return;
    }
    if (n >= 2 && p[0] == '"') {
        v->kind = STRATA_JSON_STRING;
        v->str = p + 1;
        v->str_len = n - 2;
        return;
    }
    if (n == 0 || n >= sizeof buf) return;
    memcpy(buf, p, n);
    buf[n] = 0;
    v->num = strtod(buf, &endp);
    if (*endp || !isfinite(v->num)) return;
    v->kind = (strpbrk(buf, ".eE") == NULL) ? STRATA_JSON_INT : STRATA_JSON_NUMBER;
}

int strata_json_read_object(const char *json, size_t len, const char *const *keys,
                            strata_json_value_t *vals, int nkeys)
{
    const char *p = json, *end = json + len;
    int i;
    for (i = 0; i < nkeys; i++) vals[i].kind = STRATA_JSON_MISSING;
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

/* ---- writer ------------------------------------------------------------------------- */

void strata_json_begin(strata_json_writer_t *w, char *out, size_t cap)
{
    w->out = out;
    w->cap = cap;
    w->len = 0;
    w->overflow = cap == 0;
}

void strata_json_put(strata_json_writer_t *w, const char *fmt, ...)
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

void strata_json_put_float(strata_json_writer_t *w, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        strata_json_put(w, "%.1f", x);
    else
        strata_json_put(w, "%.15g", x);
}

void strata_json_put_string(strata_json_writer_t *w, const char *s, size_t n)
{
    size_t i;
    strata_json_put(w, "\"");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            strata_json_put(w, "\\%c", c);
        else if (c < 0x20)
            strata_json_put(w, "\\u%04x", c);
        else
            strata_json_put(w, "%c", c);
    }
    strata_json_put(w, "\"");
}

int strata_json_end(const strata_json_writer_t *w)
{
    return w->overflow ? -1 : (int)w->len;
}
