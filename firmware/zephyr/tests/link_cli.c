/* Host driver for strata_link.c (tests/firmware/test_tflm.py):
 *   link_cli DEVICE_ID DESIRED_JSON...  applies each payload in turn and prints, per payload,
 *   "<result> <reported JSON>"; then the topics, the online/offline status, a telemetry
 *   sample and the fallback channel counts, one per line. */
#include <stdio.h>
#include <string.h>

#include "strata_link.h"

int main(int argc, char **argv)
{
    static char buf[2048];
    strata_settings_t s;
    strata_link_stats_t st;
    const char *kinds[] = {"frame", "status", "telemetry", "desired", "reported"};
    int i;
    if (argc < 2) return 2;
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
    st.dropped_backlog = 9;
    st.dropped_rate = 2;
    st.backlog = 2;
    st.max_backlog = 16;
    st.puback_mean_ms = 184.2;
    st.puback_p95_ms = 410.0;
    st.puback_samples = 256;
    st.throughput_kbps = 10.4;
    strata_telemetry(buf, sizeof buf, argv[1], 1764086410123ull, 3600.2, &st, &s);
    printf("%s\n", buf);
    printf("%d %d %d\n", strata_fallback_channels(&s, 0, 16), strata_fallback_channels(&s, 8, 16),
           strata_fallback_channels(&s, 16, 16));
    printf("%d\n", strata_status_offline(buf, 8, argv[1], "shutdown", 1));
    return 0;
}
