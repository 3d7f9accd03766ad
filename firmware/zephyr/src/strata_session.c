/* See strata_session.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_session.h"

#include <stdio.h>
#include <string.h>

int strata_valid_device_id(const char *id)
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
    if (!strata_valid_device_id(device_id)) return -1;
    n = snprintf(out, cap, "strata/v1/dev/%s/%s", device_id, kind);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}
