#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and Mosquitto answer on their standard local ports.
# Uses them where they already run (our machines); otherwise starts the installed ones,
# and on a fresh Debian/Ubuntu machine as root installs and starts what is missing.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do port_open "$port" && { echo "services: $name is up on $port"; return 0; }; sleep 0.5; done
  echo "services: $name did not come up on port $port" >&2; return 1
}

APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "services: $* missing and cannot be installed here (needs apt-get as root); install it or start it on its standard port" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  port_open 5432 && { echo "services: PostgreSQL already running"; return; }
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local ver; ver=$(ls /etc/postgresql | sort -V | tail -n1)
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  # A test machine: trust local connections, as our machines do.
  if ! grep -q "strata-test-trust" "$hba"; then
    sed -i 's/^\(local\|host\)\(.*\)\(peer\|md5\|scram-sha-256\)$/\1\2trust/' "$hba"
    echo "# strata-test-trust" >> "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || pg_ctlcluster "$ver" main start
  wait_port PostgreSQL 5432
}

ensure_redis() {
  port_open 6379 && { echo "services: Redis already running"; return; }
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/strata-test.log
  wait_port Redis 6379
}

ensure_mosquitto() {
  port_open 1883 && { echo "services: Mosquitto already running"; return; }
  command -v mosquitto >/dev/null || apt_install mosquitto
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  wait_port Mosquitto 1883
}

ensure_postgres
ensure_redis
ensure_mosquitto
