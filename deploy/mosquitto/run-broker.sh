#!/bin/sh
# Run Mosquitto and reload it (SIGHUP) whenever the platform rewrites the camera logins, so
# that a revoked login is refused, and its session closed, within seconds and without a
# restart. The platform (fleet.credentials) writes devices.passwd and devices.acl, then
# bumps "generation"; this checks "generation" every STRATA_MQTT_RELOAD_S seconds.
#
#   run-broker.sh [mosquitto.conf]   (env: STRATA_MQTT_AUTH_DIR, STRATA_MQTT_RELOAD_S)
set -eu
conf=${1:-/mosquitto/config/mosquitto.conf}
auth=${STRATA_MQTT_AUTH_DIR:-/mosquitto/auth}
every=${STRATA_MQTT_RELOAD_S:-2}

mkdir -p "$auth"
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
