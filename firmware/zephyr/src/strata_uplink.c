/* See strata_uplink.h. C99, no malloc, no Zephyr: built and tested on the host too. */
#include "strata_uplink.h"

#include <string.h>

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
