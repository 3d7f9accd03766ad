/*
 * The JSON the link payloads need, and no more: a reader for one flat object (the desired
 * state) and a bounded writer that formats numbers the way Python's json.dumps does, so the
 * firmware's payloads are byte-identical with the simulator's (devices/camera.py). Shared by
 * strata_desired.c and strata_telemetry.c. C99, no malloc, no Zephyr.
 */
#ifndef STRATA_JSON_H
#define STRATA_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reader ---- */

typedef enum {
    STRATA_JSON_MISSING, STRATA_JSON_NULL, STRATA_JSON_BOOL, STRATA_JSON_INT,
    STRATA_JSON_NUMBER, STRATA_JSON_STRING, STRATA_JSON_OTHER
} strata_json_kind_t;

typedef struct {
    strata_json_kind_t kind;
    double num;      /* STRATA_JSON_INT / STRATA_JSON_NUMBER */
    const char *str; /* STRATA_JSON_STRING: the raw characters between the quotes */
    size_t str_len;
} strata_json_value_t;

/* Parses one flat JSON object of len bytes and fills vals[i] for keys[i] (kind
 * STRATA_JSON_MISSING where absent; nested values are skipped, and classified OTHER).
 * Returns 0, or -1 if it is not a JSON object. */
int strata_json_read_object(const char *json, size_t len, const char *const *keys,
                            strata_json_value_t *vals, int nkeys);

/* ---- writer: appends to out[0..cap); once something does not fit, nothing more is ---- */

typedef struct {
    char *out;
    size_t cap, len;
    int overflow;
} strata_json_writer_t;

/* A writer over out[0..cap) (cap 0: overflowed from the start). */
void strata_json_begin(strata_json_writer_t *w, char *out, size_t cap);
/* printf-style raw text. */
void strata_json_put(strata_json_writer_t *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A number as Python's json.dumps writes a float (2.0, 0.5, 48.25). */
void strata_json_put_float(strata_json_writer_t *w, double x);
/* A string, quoted and escaped ('"', '\\' and control characters). */
void strata_json_put_string(strata_json_writer_t *w, const char *s, size_t n);
/* The payload's length (NUL-terminated, the NUL not counted), or -1 if it did not fit. */
int strata_json_end(const strata_json_writer_t *w);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_JSON_H */
