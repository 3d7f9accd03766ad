/* Host driver for the link logic of strata_link.h (tests/firmware/test_tflm.py; built as
 * strata-link-cli by firmware/CMakeLists.txt):
 *   link_cli DEVICE_ID DESIRED_JSON...  applies each payload in turn and prints, per payload,
 *   "<result> <reported JSON>"; then the topics, the online/offline status, a telemetry
 *   sample (a second one with link_kbps and no PUBACK samples) and the fallback channel
 *   counts, one per line.
 *   link_cli --script  reads commands from stdin, one per line, and prints one line each
 *   (numbers as %.17g, -1 = None):
 *     reset                                   a fresh estimator and cap window
 *     ack SENT_S ACKED_S SIZE                 strata_uplink_acknowledged; prints kbps
 *     arrival SIZE QUEUED OLDEST_SIZE AGE_S   strata_uplink_arrival_s
 *     capsent CAPTURED_S BYTES                strata_cap_sent; prints nothing
 *     kept CHANNELS CAPTURED_S                strata_hold_sent; prints nothing
 *     guard DEADLINE_MS MAX_KBPS CAPTURED_S QUEUED OLDEST_SIZE AGE_S SINCE_S SIZE1..SIZEn
 *                                             (0 = null) prints "<allowed bytes> <channels> <why>"
 *     packet K HEX                            prefix sizes, then the packet trimmed to K (hex) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strata_link.h"

static strata_uplink_t uplink;
static strata_cap_t cap;
static strata_hold_t hold;

static int script(void)
{
    static char line[1 << 17];
    static uint8_t packet[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        char *tok = strtok(line, " \n");
        if (!tok) continue;
        if (!strcmp(tok, "reset")) {
            strata_uplink_init(&uplink);
            strata_cap_init(&cap);
            strata_hold_init(&hold);
            printf("ok\n");
        } else if (!strcmp(tok, "ack")) {
            double sent = atof(strtok(NULL, " ")), acked = atof(strtok(NULL, " "));
            strata_uplink_acknowledged(&uplink, sent, acked, (uint32_t)atol(strtok(NULL, " ")));
            printf("%.17g\n", strata_uplink_kbps(&uplink));
        } else if (!strcmp(tok, "arrival")) {
            strata_inflight_t f;
            uint32_t size = (uint32_t)atol(strtok(NULL, " "));
            f.queued_bytes = (uint64_t)atoll(strtok(NULL, " "));
            f.oldest_size = (uint32_t)atol(strtok(NULL, " "));
            f.oldest_age_s = atof(strtok(NULL, " "));
            printf("%.17g\n", strata_uplink_arrival_s(&uplink, size, &f));
        } else if (!strcmp(tok, "capsent")) {
            double t = atof(strtok(NULL, " "));
            strata_cap_sent(&cap, t, (uint32_t)atol(strtok(NULL, " ")));
        } else if (!strcmp(tok, "kept")) {
            int channels = atoi(strtok(NULL, " "));
            strata_hold_sent(&hold, channels, atof(strtok(NULL, " \n")));
        } else if (!strcmp(tok, "guard")) {
            strata_settings_t s;
            strata_inflight_t f;
            strata_verdict_t why;
            uint32_t sizes[STRATA_MAX_TIER];
            double captured, since, allowed;
            int n = 0, k;
            strata_settings_default(&s);
            s.deadline_ms = atof(strtok(NULL, " "));
            s.max_kbps = atof(strtok(NULL, " "));
            captured = atof(strtok(NULL, " "));
            f.queued_bytes = (uint64_t)atoll(strtok(NULL, " "));
            f.oldest_size = (uint32_t)atol(strtok(NULL, " "));
            f.oldest_age_s = atof(strtok(NULL, " "));
            since = atof(strtok(NULL, " "));
            while (n < STRATA_MAX_TIER && (tok = strtok(NULL, " \n")) != NULL)
                sizes[n++] = (uint32_t)atol(tok);
            allowed = strata_cap_allows(&cap, &s, captured);
            k = strata_guard(&s, sizes, n, allowed, &uplink, &f, &hold, captured, since, &why);
            printf("%.17g %d %d\n", isinf(allowed) ? -1.0 : allowed, k, (int)why);
        } else if (!strcmp(tok, "packet")) {
            uint32_t sizes[255];
            int k = atoi(strtok(NULL, " ")), n, i;
            char *hex = strtok(NULL, " \n");
            size_t len = strlen(hex) / 2;
            long trimmed;
            if (len > sizeof packet) return 2;
            for (i = 0; i < (int)len; i++) {
                char b[3] = {hex[2 * i], hex[2 * i + 1], 0};
                packet[i] = (uint8_t)strtol(b, NULL, 16);
            }
            n = strata_packet_prefix_sizes(packet, len, sizes, 255);
            for (i = 0; i < n; i++) printf("%lu ", (unsigned long)sizes[i]);
            trimmed = strata_packet_trim(packet, len, k);
            printf("%d ", n);
            if (trimmed < 0) printf("-1");
            for (i = 0; i < trimmed; i++) printf("%02x", packet[i]);
            printf("\n");
        } else {
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char buf[2048];
    strata_settings_t s;
    strata_link_stats_t st;
    const char *kinds[] = {"frame", "status", "telemetry", "desired", "reported"};
    int i;
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "--script")) return script();
    strata_settings_default(&s);
    for (i = 2; i < argc; i++) {
        const char *err;
        strata_desired_result_t r = strata_desired_apply(&s, argv[i], strlen(argv[i]), &err);
        int n = strata_reported(buf, sizeof buf, argv[1], 1764086420456ull, &s,
                                r == STRATA_DESIRED_INVALID ? err : NULL, argv[i],
                                strlen(argv[i]));
        printf("%d %s\n", (int)r, n < 0 ? "OVERFLOW" : buf);
    }
    for (i = 0; i < 5; i++) {
        int n = strata_topic(buf, sizeof buf, argv[1], kinds[i]);
        printf("%s\n", n < 0 ? "BAD" : buf);
    }
    strata_status_online(buf, sizeof buf, argv[1], 1764086400123ull, "strata-zephyr/0.1", 224,
                         224, &s);
    printf("%s\n", buf);
    strata_status_offline(buf, sizeof buf, argv[1], "connection-lost", 0);
    printf("%s\n", buf);
    memset(&st, 0, sizeof st);
    st.seq = 3601;
    st.frames_captured = 3601;
    st.frames_sent = 3590;
    st.bytes_sent = 4712233;
    st.frames_acked = 3588;
    st.bytes_acked = 4709921;
    st.dropped_backlog = 7;
    st.dropped_rate = 2;
    st.dropped_deadline = 2;
    st.backlog = 2;
    st.max_backlog = 16;
    st.puback_mean_ms = 184.2;
    st.puback_p95_ms = 410.0;
    st.puback_samples = 8;
    st.throughput_kbps = 10.4;
    st.link_kbps = -1;
    strata_telemetry(buf, sizeof buf, argv[1], 1764086410123ull, 3600.2, &st, &s);
    printf("%s\n", buf);
    st.puback_samples = 0;
    st.link_kbps = 23.80499;
    strata_telemetry(buf, sizeof buf, argv[1], 1764086410123ull, 3600.2, &st, &s);
    printf("%s\n", buf);
    printf("%d %d %d\n", strata_fallback_channels(&s, 0, 16), strata_fallback_channels(&s, 8, 16),
           strata_fallback_channels(&s, 16, 16));
    printf("%d\n", strata_status_offline(buf, 8, argv[1], "shutdown", 1));
    return 0;
}
