/*
 * Strata camera on Zephyr: capture rows with the video API, encode them with the portable
 * encoder (strata_encoder.h), publish packets with Zephyr's MQTT client (docs/mqtt.md).
 *
 * Thin by design: the encoder is ../../src (tested on the host and under QEMU), topics,
 * payloads, the desired-state rules and the send policy are the strata_link.h units
 * (strata_session/desired/uplink/send/telemetry.c, tested on the host). What is here
 * moves bytes between the camera, the encoder and the socket, and keeps counters.
 * Written against Zephyr 4.0's APIs (video API with endpoint arguments); NOT compiled on
 * the development machine (README.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/drivers/video.h>
#include <zephyr/net/mqtt.h>
#include <zephyr/net/socket.h>
#include <zephyr/net/sntp.h>
#include <zephyr/settings/settings.h>
#if defined(CONFIG_NET_CONNECTION_MANAGER)
#include <zephyr/net/conn_mgr_connectivity.h>
#endif
#if defined(CONFIG_STRATA_MQTT_TLS)
#include <zephyr/net/tls_credentials.h>
#endif

#include "strata_encoder.h"
#include "strata_link.h"

LOG_MODULE_REGISTER(strata, LOG_LEVEL_INF);

#define DEVICE_ID CONFIG_STRATA_DEVICE_ID
#define WIDTH CONFIG_STRATA_FRAME_WIDTH
#define HEIGHT CONFIG_STRATA_FRAME_HEIGHT
#define SLOTS CONFIG_STRATA_MAX_BACKLOG
#define FIRMWARE "strata-zephyr/0.1"
#define PUBACK_WINDOW STRATA_RECENT_ACKS

/* ---- state ------------------------------------------------------------------------------ */

static strata_settings_t settings;
static strata_link_stats_t stats;
static char topic_frame[96], topic_status[96], topic_telemetry[96], topic_desired[96],
	topic_reported[96];
static char json[1024];
static uint8_t desired_buf[512];

/* Encoder working memory: strata_workspace_size(WIDTH, HEIGHT, 12), checked at boot. */
static uint8_t workspace[(WIDTH * 7 * 3) + (WIDTH / 2 * 5 * 16) + (WIDTH / 4 * 3 * 16) +
			 (12 * (WIDTH / 8 + 1) * (HEIGHT / 8 + 1)) + 2048];
static strata_encoder_t enc;

/* QoS 1 send queue: a packet stays in its slot until PUBACK (resent with DUP after a
 * reconnect: the session is persistent, docs/mqtt.md). */
struct slot {
	uint16_t message_id; /* 0 = free */
	uint32_t len;
	double sent_s; /* first publish, uptime seconds (the service time starts here) */
	uint8_t data[CONFIG_STRATA_PACKET_SLOT_SIZE];
};
static struct slot slots[SLOTS];
static uint16_t next_message_id = 1;

static uint16_t puback_ms[PUBACK_WINDOW];
static uint32_t puback_count;
static struct {
	int64_t t_ms;
	uint32_t bytes;
} acked_log[64];
static uint32_t acked_head;
static strata_uplink_t uplink; /* link_kbps and the deadline guard's arrival prediction */
static strata_cap_t cap;       /* max_kbps over every 2 s window of capture times */
static strata_hold_t hold;     /* channels of the last frame sent: the guard's hysteresis */
/* The heartbeat in flight (at most one: queued heartbeats would only delay the frames). */
static uint16_t telemetry_mid; /* 0 = none */
static uint32_t telemetry_len;
static uint32_t seq_reserved_until; /* persisted: the next boot resumes here */
static int64_t epoch_offset_ms;      /* Unix ms = k_uptime_get() + offset, once SNTP answered */

/* ---- MQTT ------------------------------------------------------------------------------- */

static struct mqtt_client client;
static struct sockaddr_storage broker;
static uint8_t rx_buf[1024], tx_buf[1024];
static struct mqtt_utf8 user_name, password;
static struct mqtt_topic will_topic;
static struct mqtt_utf8 will_message;
static char will_json[160];
static bool connected; /* socket open */
static bool mqtt_up;   /* CONNACK received */

static uint64_t now_ms(void)
{
	return epoch_offset_ms ? (uint64_t)(k_uptime_get() + epoch_offset_ms) : 0;
}

/* Uptime in seconds at microsecond resolution (PUBACK service times are a few ms). */
static double uptime_s(void)
{
	return (double)k_ticks_to_us_floor64(k_uptime_ticks()) / 1e6;
}

static uint16_t take_message_id(void)
{
	uint16_t id = next_message_id++;

	if (next_message_id == 0) {
		next_message_id = 1;
	}
	return id;
}

static int publish(const char *topic, const uint8_t *data, size_t len, bool retain,
		   uint16_t message_id, bool dup)
{
	struct mqtt_publish_param p = {0};

	p.message.topic.topic.utf8 = (const uint8_t *)topic;
	p.message.topic.topic.size = strlen(topic);
	p.message.topic.qos = MQTT_QOS_1_AT_LEAST_ONCE;
	p.message.payload.data = (uint8_t *)data;
	p.message.payload.len = len;
	p.message_id = message_id ? message_id : take_message_id();
	p.retain_flag = retain;
	p.dup_flag = dup;
	return mqtt_publish(&client, &p);
}

/* Returns the message id used, 0 if nothing was sent. */
static uint16_t publish_json(const char *topic, int len, bool retain)
{
	uint16_t id;

	if (len < 0) {
		LOG_ERR("payload for %s does not fit", topic);
		return 0;
	}
	id = take_message_id();
	return publish(topic, (const uint8_t *)json, (size_t)len, retain, id, false) == 0 ? id : 0;
}

/* What is published and unacknowledged, for the deadline guard: the frames in the slots and
 * the heartbeat (status and reported are rare and not tracked). */
static strata_inflight_t inflight(double now)
{
	strata_inflight_t f = {.queued_bytes = telemetry_mid ? telemetry_len : 0};
	double oldest_sent = 0;
	int i;

	for (i = 0; i < SLOTS; i++) {
		if (slots[i].message_id) {
			f.queued_bytes += slots[i].len;
			if (f.oldest_size == 0 || slots[i].sent_s < oldest_sent) {
				f.oldest_size = slots[i].len;
				oldest_sent = slots[i].sent_s;
			}
		}
	}
	f.oldest_age_s = f.oldest_size ? now - oldest_sent : 0.0;
	return f;
}

static void publish_telemetry(void)
{
	uint16_t sorted[PUBACK_WINDOW];
	uint32_t n = MIN(puback_count, PUBACK_WINDOW), i, j, sum = 0;
	uint64_t bytes10 = 0;
	int64_t t = k_uptime_get();
	int len;

	if (telemetry_mid) {
		return; /* the last heartbeat is not acknowledged yet: one in flight at most */
	}

	for (i = 0; i < n; i++) { /* insertion sort for the p95: STRATA_RECENT_ACKS values */
		uint16_t v = puback_ms[i];

		sum += v;
		for (j = i; j > 0 && sorted[j - 1] > v; j--) {
			sorted[j] = sorted[j - 1];
		}
		sorted[j] = v;
	}
	stats.puback_samples = n; /* the last STRATA_RECENT_ACKS frames; 0: null */
	stats.puback_mean_ms = n ? (double)sum / n : 0.0;
	stats.puback_p95_ms = n ? sorted[(n - 1) * 95 / 100] : 0.0; /* int(0.95 * (n - 1)) */
	for (i = 0; i < ARRAY_SIZE(acked_log); i++) {
		if (acked_log[i].t_ms && t - acked_log[i].t_ms <= 10000) {
			bytes10 += acked_log[i].bytes;
		}
	}
	stats.throughput_kbps = (double)bytes10 * 8 / 1000 / 10;
	stats.backlog = 0;
	for (i = 0; i < SLOTS; i++) {
		stats.backlog += slots[i].message_id != 0;
	}
	stats.max_backlog = SLOTS;
	stats.link_kbps = strata_uplink_kbps(&uplink); /* < 0: null */
	len = strata_telemetry(json, sizeof json, DEVICE_ID, now_ms(),
			       (double)k_uptime_get() / 1000.0, &stats, &settings);
	telemetry_mid = publish_json(topic_telemetry, len, false);
	telemetry_len = len > 0 ? (uint32_t)len : 0;
}

static void on_desired(const uint8_t *payload, size_t len)
{
	const char *error;
	strata_desired_result_t r;

	if (len == 0) {
		return; /* a deleted retained message */
	}
	r = strata_desired_apply(&settings, (const char *)payload, len, &error);
	if (r == STRATA_DESIRED_IGNORED) {
		return;
	}
	if (r == STRATA_DESIRED_INVALID) {
		LOG_WRN("rejected desired state: %s", error);
	} else {
		LOG_INF("applied desired version %lld: tier %d", (long long)settings.version,
			settings.tier);
	}
	publish_json(topic_reported,
		     strata_reported(json, sizeof json, DEVICE_ID, now_ms(), &settings,
				     r == STRATA_DESIRED_INVALID ? error : NULL,
				     (const char *)payload, len),
		     true);
}

static void on_connack(void)
{
	struct mqtt_topic t = {
		.topic = {.utf8 = (const uint8_t *)topic_desired, .size = strlen(topic_desired)},
		.qos = MQTT_QOS_1_AT_LEAST_ONCE,
	};
	struct mqtt_subscription_list subs = {.list = &t, .list_count = 1, .message_id = 1};
	int i;

	mqtt_up = true;
	stats.connects++;
	publish_json(topic_status,
		     strata_status_online(json, sizeof json, DEVICE_ID, now_ms(), FIRMWARE, WIDTH,
					  HEIGHT, &settings),
		     true);
	(void)mqtt_subscribe(&client, &subs);
	telemetry_mid = 0; /* a heartbeat of the last link is not resent: not in flight */
	for (i = 0; i < SLOTS; i++) { /* unacknowledged frames of the last link: resend */
		if (slots[i].message_id) {
			(void)publish(topic_frame, slots[i].data, slots[i].len, false,
				      slots[i].message_id, true);
		}
	}
	publish_telemetry();
}

static void on_puback(uint16_t message_id)
{
	int64_t t = k_uptime_get();
	double t_s = uptime_s();
	int i;

	if (telemetry_mid && message_id == telemetry_mid) {
		telemetry_mid = 0;
		return;
	}
	for (i = 0; i < SLOTS; i++) {
		if (slots[i].message_id == message_id) {
			stats.frames_acked++;
			stats.bytes_acked += slots[i].len;
			puback_ms[puback_count++ % PUBACK_WINDOW] =
				(uint16_t)MIN((t_s - slots[i].sent_s) * 1000, UINT16_MAX);
			strata_uplink_acknowledged(&uplink, slots[i].sent_s, t_s, slots[i].len);
			acked_log[acked_head].t_ms = t;
			acked_log[acked_head].bytes = slots[i].len;
			acked_head = (acked_head + 1) % ARRAY_SIZE(acked_log);
			slots[i].message_id = 0;
		}
	}
}

static void mqtt_evt_handler(struct mqtt_client *c, const struct mqtt_evt *evt)
{
	switch (evt->type) {
	case MQTT_EVT_CONNACK:
		if (evt->result == 0) {
			on_connack();
		}
		break;
	case MQTT_EVT_DISCONNECT:
		connected = false;
		if (mqtt_up) {
			stats.disconnects++;
		}
		mqtt_up = false;
		break;
	case MQTT_EVT_PUBACK:
		on_puback(evt->param.puback.message_id);
		break;
	case MQTT_EVT_PUBLISH: {
		const struct mqtt_publish_param *p = &evt->param.publish;
		size_t len = p->message.payload.len, left = len;
		struct mqtt_puback_param ack = {.message_id = p->message_id};
		int err = 0;

		while (left && !err) { /* the whole payload must be read; keep what fits */
			size_t n = MIN(left, sizeof desired_buf);

			err = mqtt_readall_publish_payload(c, desired_buf, n);
			left -= n;
		}
		if (err) {
			break;
		}
		if (len <= sizeof desired_buf && p->message.topic.topic.size == strlen(topic_desired) &&
		    !memcmp(p->message.topic.topic.utf8, topic_desired, strlen(topic_desired))) {
			on_desired(desired_buf, len);
		}
		if (p->message.topic.qos == MQTT_QOS_1_AT_LEAST_ONCE) {
			(void)mqtt_publish_qos1_ack(c, &ack);
		}
		break;
	}
	default:
		break;
	}
}

static int resolve_broker(void)
{
	struct zsock_addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct zsock_addrinfo *res;
	int err = zsock_getaddrinfo(CONFIG_STRATA_MQTT_BROKER_HOST, NULL, &hints, &res);

	if (err) {
		return -EHOSTUNREACH;
	}
	memcpy(&broker, res->ai_addr, res->ai_addrlen);
	((struct sockaddr_in *)&broker)->sin_port = htons(CONFIG_STRATA_MQTT_BROKER_PORT);
	zsock_freeaddrinfo(res);
	return 0;
}

#if defined(CONFIG_STRATA_MQTT_TLS)
static const unsigned char ca_cert[] = {
#include "strata_ca_cert.inc"
	0 /* mbedTLS wants PEM NUL-terminated */
};
static sec_tag_t sec_tags[] = {CONFIG_STRATA_TLS_SEC_TAG};
#endif

static void mqtt_setup(void)
{
	mqtt_client_init(&client);
	client.broker = &broker;
	client.evt_cb = mqtt_evt_handler;
	client.client_id.utf8 = (const uint8_t *)DEVICE_ID; /* the client id IS the device id */
	client.client_id.size = strlen(DEVICE_ID);
	if (strlen(CONFIG_STRATA_MQTT_USERNAME)) {
		user_name.utf8 = (const uint8_t *)CONFIG_STRATA_MQTT_USERNAME;
		user_name.size = strlen(CONFIG_STRATA_MQTT_USERNAME);
		password.utf8 = (const uint8_t *)CONFIG_STRATA_MQTT_PASSWORD;
		password.size = strlen(CONFIG_STRATA_MQTT_PASSWORD);
		client.user_name = &user_name;
		client.password = &password;
	}
	client.protocol_version = MQTT_VERSION_3_1_1;
	client.clean_session = 0; /* persistent session: the broker keeps QoS 1 state */
	client.keepalive = CONFIG_STRATA_KEEPALIVE_S;
	/* Last Will: retained, QoS 1, on the status topic, no timestamp (docs/mqtt.md). */
	will_topic.topic.utf8 = (const uint8_t *)topic_status;
	will_topic.topic.size = strlen(topic_status);
	will_topic.qos = MQTT_QOS_1_AT_LEAST_ONCE;
	will_message.utf8 = (const uint8_t *)will_json;
	will_message.size = (uint32_t)strata_status_offline(will_json, sizeof will_json, DEVICE_ID,
							     "connection-lost", 0);
	client.will_topic = &will_topic;
	client.will_message = &will_message;
	client.will_retain = 1;
	client.rx_buf = rx_buf;
	client.rx_buf_size = sizeof rx_buf;
	client.tx_buf = tx_buf;
	client.tx_buf_size = sizeof tx_buf;
#if defined(CONFIG_STRATA_MQTT_TLS)
	client.transport.type = MQTT_TRANSPORT_SECURE;
	client.transport.tls.config.peer_verify = TLS_PEER_VERIFY_REQUIRED;
	client.transport.tls.config.sec_tag_list = sec_tags;
	client.transport.tls.config.sec_tag_count = ARRAY_SIZE(sec_tags);
	client.transport.tls.config.hostname = CONFIG_STRATA_MQTT_BROKER_HOST;
#else
	client.transport.type = MQTT_TRANSPORT_NON_SECURE;
#endif
}

/* Serve the socket for up to `ms` (input, keepalive). */
static void mqtt_service(int ms)
{
	struct zsock_pollfd fd = {.fd = client.transport.tcp.sock, .events = ZSOCK_POLLIN};

#if defined(CONFIG_STRATA_MQTT_TLS)
	fd.fd = client.transport.tls.sock;
#endif
	if (!connected) {
		k_msleep(ms);
		return;
	}
	if (zsock_poll(&fd, 1, ms) > 0 && mqtt_input(&client) < 0) {
		(void)mqtt_abort(&client); /* reports MQTT_EVT_DISCONNECT */
		return;
	}
	if (connected) {
		int rc = mqtt_live(&client);

		if (rc < 0 && rc != -EAGAIN) {
			(void)mqtt_abort(&client);
		}
	}
}

static void mqtt_reconnect(void)
{
	int64_t until;

	if (resolve_broker() != 0 || mqtt_connect(&client) != 0) {
		k_sleep(K_SECONDS(5));
		return;
	}
	connected = true; /* socket open; CONNACK arrives through mqtt_input */
	until = k_uptime_get() + 5000;
	while (connected && !mqtt_up && k_uptime_get() < until) {
		mqtt_service(100);
	}
	if (connected && !mqtt_up) {
		(void)mqtt_abort(&client);
	}
}

/* ---- seq: blocks reserved in flash ------------------------------------------------------ */

static int seq_set(const char *name, size_t len, settings_read_cb read_cb, void *cb_arg)
{
	if (!strcmp(name, "seq") && len == sizeof seq_reserved_until) {
		return read_cb(cb_arg, &seq_reserved_until, len) == (ssize_t)len ? 0 : -EIO;
	}
	return -ENOENT;
}
SETTINGS_STATIC_HANDLER_DEFINE(strata, "strata", NULL, seq_set, NULL, NULL);

static uint32_t take_seq(void)
{
	/* seq_reserved_until: the first number not yet reserved. A restart resumes there, so
	 * it shows as a gap of at most one block and never reuses a number (wraps at 2^32). */
	if ((int32_t)(stats.seq - seq_reserved_until) >= 0) {
		seq_reserved_until = stats.seq + CONFIG_STRATA_SEQ_BLOCK;
		(void)settings_save_one("strata/seq", &seq_reserved_until, sizeof seq_reserved_until);
	}
	return stats.seq++;
}

/* ---- capture + encode ------------------------------------------------------------------- */

static const struct device *camera = DEVICE_DT_GET(DT_CHOSEN(zephyr_camera));
static uint32_t pitch;

static int camera_setup(void)
{
	struct video_format fmt = {
		.pixelformat = VIDEO_PIX_FMT_RGB565, .width = WIDTH, .height = HEIGHT,
		.pitch = WIDTH * 2,
	};
	int lines = CONFIG_STRATA_CAMERA_LINES ? CONFIG_STRATA_CAMERA_LINES : HEIGHT;
	int i;

	if (!device_is_ready(camera) || video_set_format(camera, VIDEO_EP_OUT, &fmt) != 0) {
		LOG_ERR("camera not ready or %dx%d RGB565 not supported", WIDTH, HEIGHT);
		return -ENODEV;
	}
	pitch = fmt.pitch;
	for (i = 0; i < CONFIG_VIDEO_BUFFER_POOL_NUM_MAX; i++) {
		struct video_buffer *b = video_buffer_alloc(pitch * lines);

		if (b == NULL) {
			return -ENOMEM;
		}
		video_enqueue(camera, VIDEO_EP_OUT, b);
	}
	return video_stream_start(camera);
}

/* Capture one frame row by row into the encoder; the packet into a free slot. */
static int capture_and_encode(int channels, struct slot *s, uint32_t seq)
{
	strata_frame_t f = {
		.width = WIDTH, .height = HEIGHT, .channels = (uint8_t)channels,
		.format = IS_ENABLED(CONFIG_STRATA_CAMERA_RGB565_BE) ? STRATA_RGB565_BE : STRATA_RGB565,
		.seq = seq, .capture_time_ms = now_ms(),
	};
	uint32_t row = 0;
	size_t len;

	if (strata_begin(&enc, &f, workspace, sizeof workspace) != STRATA_OK) {
		return -EINVAL;
	}
	while (row < HEIGHT) {
		struct video_buffer *b;
		uint32_t first, n, k;

		if (video_dequeue(camera, VIDEO_EP_OUT, &b, K_MSEC(2000)) != 0) {
			return -EIO;
		}
		first = b->line_offset;
		n = b->bytesused / pitch;
		if (first != row) { /* joined mid-frame: wait for the next frame's first rows */
			video_enqueue(camera, VIDEO_EP_OUT, b);
			if (row != 0) {
				return -EAGAIN;
			}
			continue;
		}
		for (k = 0; k < n && row < HEIGHT; k++, row++) {
			strata_push_row(&enc, b->buffer + k * pitch);
		}
		video_enqueue(camera, VIDEO_EP_OUT, b); /* rows consumed: buffer back at once */
	}
	if (strata_finish(&enc, s->data, sizeof s->data, &len) != STRATA_OK) {
		return -ENOSPC;
	}
	s->len = (uint32_t)len;
	return 0;
}

static void frame_tick(void)
{
	struct slot *free_slot = NULL;
	uint32_t backlog = 0, seq, sizes[STRATA_MAX_TIER];
	int channels, i, n;
	long len;
	double captured_s = uptime_s(), now_s;
	strata_inflight_t f;
	strata_verdict_t why;

	for (i = 0; i < SLOTS; i++) {
		if (slots[i].message_id) {
			backlog++;
		} else if (!free_slot) {
			free_slot = &slots[i];
		}
	}
	seq = take_seq();
	stats.frames_captured++;
	/* docs/mqtt.md local fallback, rule 1: the backlog halves the tier, then drops. */
	channels = strata_fallback_channels(&settings, backlog, SLOTS);
	if (channels == 0 || free_slot == NULL) {
		stats.dropped_backlog++;
		return;
	}
	if (capture_and_encode(channels, free_slot, seq) != 0) {
		stats.dropped_backlog++; /* capture failed or the packet did not fit its slot */
		return;
	}
	/* Rules 2 and 3: the rate cap (bytes captured in any 2 s window) and the deadline guard
	 * (predicted PUBACK within the deadline) keep the most channels they allow. Channels are
	 * coded independently, so the packet of the first k channels is this packet cut short:
	 * its sizes come from the length table, and strata_packet_trim rewrites it in place
	 * (the same bytes as encoding k channels). */
	n = strata_packet_prefix_sizes(free_slot->data, free_slot->len, sizes, STRATA_MAX_TIER);
	if (n != channels) {
		stats.dropped_backlog++; /* cannot happen: our own encoder's packet */
		return;
	}
	now_s = uptime_s();
	f = inflight(now_s);
	channels = strata_guard(&settings, sizes, n, strata_cap_allows(&cap, &settings, captured_s),
				&uplink, &f, &hold, captured_s, now_s - captured_s, &why);
	if (channels == 0) {
		if (why == STRATA_DROP_RATE) {
			stats.dropped_rate++;
		} else {
			stats.dropped_deadline++;
		}
		return;
	}
	if (channels < n) {
		len = strata_packet_trim(free_slot->data, free_slot->len, channels);
		if (len < 0) {
			stats.dropped_backlog++; /* cannot happen (checked above) */
			return;
		}
		free_slot->len = (uint32_t)len;
	}
	if (channels < settings.tier) {
		stats.frames_trimmed++;
	}
	strata_cap_sent(&cap, captured_s, free_slot->len);
	strata_hold_sent(&hold, channels, captured_s);
	free_slot->message_id = take_message_id();
	free_slot->sent_s = uptime_s();
	if (publish(topic_frame, free_slot->data, free_slot->len, false, free_slot->message_id,
		    false) != 0) {
		(void)mqtt_abort(&client); /* kept in its slot: resent after the reconnect */
	}
	stats.frames_sent++;
	stats.bytes_sent += free_slot->len;
}

static void sync_clock(void)
{
	struct sntp_time t;

	if (sntp_simple("pool.ntp.org", 3000, &t) == 0) {
		epoch_offset_ms = (int64_t)t.seconds * 1000 + ((int64_t)t.fraction * 1000 >> 32) -
				  k_uptime_get();
	}
}

int main(void)
{
	int64_t next_frame = 0, next_heartbeat = 0;

	strata_settings_default(&settings);
	settings.tier = CONFIG_STRATA_DEFAULT_TIER;
	strata_uplink_init(&uplink);
	strata_cap_init(&cap);
	strata_hold_init(&hold);
	if (strata_topic(topic_frame, sizeof topic_frame, DEVICE_ID, "frame") < 0 ||
	    strata_topic(topic_status, sizeof topic_status, DEVICE_ID, "status") < 0 ||
	    strata_topic(topic_telemetry, sizeof topic_telemetry, DEVICE_ID, "telemetry") < 0 ||
	    strata_topic(topic_desired, sizeof topic_desired, DEVICE_ID, "desired") < 0 ||
	    strata_topic(topic_reported, sizeof topic_reported, DEVICE_ID, "reported") < 0) {
		LOG_ERR("invalid device id '%s'", DEVICE_ID);
		return -EINVAL;
	}
	if (strata_workspace_size(WIDTH, HEIGHT, 12) > sizeof workspace) {
		LOG_ERR("workspace: %u B needed, %u B reserved",
			(unsigned)strata_workspace_size(WIDTH, HEIGHT, 12), (unsigned)sizeof workspace);
		return -ENOMEM;
	}
	if (strata_packet_max_size(WIDTH, HEIGHT, 12) > CONFIG_STRATA_PACKET_SLOT_SIZE) {
		/* Typical packets are far smaller; one that does not fit is dropped and counted. */
		LOG_WRN("worst-case packet %u B > slot %u B",
			(unsigned)strata_packet_max_size(WIDTH, HEIGHT, 12),
			CONFIG_STRATA_PACKET_SLOT_SIZE);
	}
	settings_subsys_init();
	settings_load();
	stats.seq = seq_reserved_until; /* resume after the reserved block: never reuse a seq */
#if defined(CONFIG_STRATA_MQTT_TLS)
	tls_credential_add(CONFIG_STRATA_TLS_SEC_TAG, TLS_CREDENTIAL_CA_CERTIFICATE, ca_cert,
			   sizeof ca_cert);
#endif
#if defined(CONFIG_NET_CONNECTION_MANAGER)
	conn_mgr_all_if_connect(true);
#endif
	if (camera_setup() != 0) {
		return -ENODEV;
	}
	sync_clock();
	mqtt_setup();
	for (;;) {
		int64_t t = k_uptime_get();

		if (!connected) {
			mqtt_reconnect();
			continue;
		}
		if (mqtt_up && settings.fps > 0 && t >= next_frame) {
			next_frame = t + (int64_t)(1000.0 / settings.fps);
			frame_tick();
		}
		if (mqtt_up && t >= next_heartbeat) {
			next_heartbeat = t + CONFIG_STRATA_HEARTBEAT_S * 1000;
			publish_telemetry();
		}
		mqtt_service(50);
	}
	return 0;
}
