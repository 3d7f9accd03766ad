#!/bin/sh
# Run Mosquitto and reload it (SIGHUP) whenever the platform rewrites the camera logins, so
# that a revoked login is refused, and its session closed, within seconds and without a
# restart. The platform (fleet.credentials) writes devices.passwd and devices.acl, then
# bumps "generation"; this checks "generation" every STRATA_MQTT_RELOAD_S seconds.
#
#   run-broker.sh [mosquitto.conf]   (env: STRATA_MQTT_AUTH_DIR, STRATA_MQTT_RELOAD_S)
#
# Optional, for containers: STRATA_MQTT_DEVICE_PORT / STRATA_MQTT_PLATFORM_PORT move the
# cameras' (1883) and the platform's (1884) listeners, e.g. on a host network where the
# standard ports are taken, and STRATA_MQTT_PLATFORM_BIND (an address) keeps the platform's
# listener on one interface (127.0.0.1 on a shared host network); STRATA_MQTT_AUTH_OWNER (a uid) gives the camera-login folder to
# the platform's user, who writes it (a fresh volume belongs to root).
set -eu
conf=${1:-/mosquitto/config/mosquitto.conf}
auth=${STRATA_MQTT_AUTH_DIR:-/mosquitto/auth}
every=${STRATA_MQTT_RELOAD_S:-2}

mkdir -p "$auth"
if [ -n "${STRATA_MQTT_AUTH_OWNER:-}" ]; then chown "$STRATA_MQTT_AUTH_OWNER" "$auth"; fi
if [ -n "${STRATA_MQTT_DEVICE_PORT:-}${STRATA_MQTT_PLATFORM_PORT:-}${STRATA_MQTT_PLATFORM_BIND:-}" ]; then
    platform="${STRATA_MQTT_PLATFORM_PORT:-1884}${STRATA_MQTT_PLATFORM_BIND:+ $STRATA_MQTT_PLATFORM_BIND}"
    moved=$(mktemp /tmp/mosquitto.XXXXXX.conf)
    sed -e "s/^listener 1883\$/listener ${STRATA_MQTT_DEVICE_PORT:-1883}/" \
        -e "s/^listener 1884\$/listener $platform/" "$conf" > "$moved"
    chmod 644 "$moved"
    conf=$moved
fi
# Persistence is written by the user Mosquitto drops root for.
data=$(sed -n 's/^persistence_location //p' "$conf")
if [ "$(id -u)" = 0 ] && [ -n "$data" ] && id mosquitto >/dev/null 2>&1; then
    mkdir -p "$data" && chown mosquitto "$data"
fi
# Mosquitto refuses to start without its files: no cameras yet is an empty file.
[ -e "$auth/devices.passwd" ] || : > "$auth/devices.passwd"
[ -e "$auth/devices.acl" ] || : > "$auth/devices.acl"

generation() { cat "$auth/generation" 2>/dev/null || echo none; }

mosquitto -c "$conf" &
broker=$!
trap 'kill -TERM "$broker" 2>/dev/null; wait "$broker"; exit 0' TERM INT
seen=$(generation)
while kill -0 "$broker" 2>/dev/null; do
    sleep "$every"
    now=$(generation)
    if [ "$now" != "$seen" ]; then
        seen=$now
        kill -HUP "$broker"
    fi
done
wait "$broker"
