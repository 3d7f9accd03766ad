#!/bin/sh
# PostgreSQL as the official image starts it, from Debian's packages: on an empty data folder
# create the cluster, the POSTGRES_USER with POSTGRES_PASSWORD (password logins over TCP)
# and POSTGRES_DB; then run the server as the postgres user on PGPORT (exec: it gets the
# stop signal and shuts down cleanly).
set -eu
data=${PGDATA:-/var/lib/postgresql/data}
port=${PGPORT:-5432}
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$data" /var/run/postgresql
chown postgres "$data" /var/run/postgresql
chmod 700 "$data"
if [ ! -s "$data/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb -D "$data" -U "$user" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
    as_postgres pg_ctl -D "$data" -o "-p $port -c listen_addresses=''" -w -s start
    if [ "$db" != postgres ]; then as_postgres createdb -p "$port" -U "$user" "$db"; fi
    as_postgres pg_ctl -D "$data" -w -s stop
    echo "postgres: cluster created for $user, database $db"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
    postgres -D "$data" -p "$port" -c "listen_addresses=${POSTGRES_LISTEN:-*}"
