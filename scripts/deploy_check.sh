#!/usr/bin/env bash
# `make deploy-check`: run deploy/compose.yaml for real and check that it works end to end.
#
# Builds the image (deploy/Dockerfile) with podman, starts the whole stack with podman-compose
# (PostgreSQL, Redis, Mosquitto with generated logins and ACLs, migrate, web, two ingest
# consumers, the controller, a decode worker) on the host's network with non-standard ports,
# runs one simulated camera against the broker while restarting an ingest slot and the worker,
# checks its frames are archived once each, decoded, and served by the web container to a
# signed-in user, backs the database up and decodes a frame from a restored copy, then tears
# everything down (volumes too). Takes minutes; not part of `make test`. Figures: the JSON
# last line, also kept in var/deploy-check/figures.json (docs/operations.md records a run).
#
# Environment: DEPLOY_CHECK_SECONDS (camera run, default 30), DEPLOY_CHECK_FPS (default 1),
# DEPLOY_CHECK_KEEP=1 (leave the stack running), BASE_IMAGE (default: a local Debian base
# built by deploy/base-image.sh), DEPLOY_CHECK_PORT_BASE (default 25000: PostgreSQL +432,
# Redis +379, MQTT +883/+884, web +800).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${DEPLOY_CHECK_DIR:-$ROOT/var/deploy-check}
PROJECT=strata-check
IMAGE=localhost/strata:latest
SERVICES_IMAGE=localhost/strata-services:bookworm
BASE_IMAGE=${BASE_IMAGE:-localhost/strata-base:bookworm}
SECONDS_RUN=${DEPLOY_CHECK_SECONDS:-30}
FPS=${DEPLOY_CHECK_FPS:-1}  # the platform's desired state also says 1
PORTS=${DEPLOY_CHECK_PORT_BASE:-25000}
PG_PORT=$((PORTS + 432)) REDIS_PORT=$((PORTS + 379)) WEB_PORT=$((PORTS + 800))
MQTT_DEVICE_PORT=$((PORTS + 883)) MQTT_PLATFORM_PORT=$((PORTS + 884))
CAMERA=cam-000
# This machine's podman needs runc, cgroupfs and no raised limits (deploy/podman/).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/deploy/podman/containers.conf}

step() { printf '\n== [%4ss] %s\n' "$SECONDS" "$*"; }
fail() { echo "deploy-check: FAILED: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A FIG=()

# --- tools ------------------------------------------------------------------------------------
step "tools: podman, runc, debootstrap, podman-compose"
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || fail "missing ${missing[*]} (install them: apt-get install podman runc debootstrap)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
mkdir -p "$WORK" && chmod 755 "$WORK"
exec 9> "$WORK/lock"  # one check at a time: a second would share the first one's containers
flock -n 9 || fail "another deploy check is running (lock: $WORK/lock)"
if [ ! -x "$WORK/venv/bin/podman-compose" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q -r deploy/requirements.txt
fi
compose() {
  "$WORK/venv/bin/podman-compose" -p "$PROJECT" -f deploy/compose.yaml \
    -f deploy/compose.local.yaml --env-file "$WORK/.env" "$@"
}
for port in $PG_PORT $REDIS_PORT $MQTT_DEVICE_PORT $MQTT_PLATFORM_PORT $WEB_PORT; do
  port_open "$port" && fail "port $port is taken (set DEPLOY_CHECK_PORT_BASE to another base)"
done
podman --version

# --- images -----------------------------------------------------------------------------------
timed() {  # timed NAME COMMAND...: run, keep its seconds in FIG[NAME]
  local name=$1 start=$SECONDS
  shift
  "$@"
  FIG[$name]=$((SECONDS - start))
}
if [ "$BASE_IMAGE" = localhost/strata-base:bookworm ]; then
  step "base image $BASE_IMAGE (debootstrap, once)"
  timed base_image_s deploy/base-image.sh "$BASE_IMAGE"
fi
step "service image $SERVICES_IMAGE (PostgreSQL, Redis, Mosquitto from Debian's packages)"
timed services_image_s podman build -q --network host --build-arg BASE_IMAGE="$BASE_IMAGE" \
  -f deploy/local/services.Dockerfile -t "$SERVICES_IMAGE" .

# pip's configuration here (files and PIP_* variables) goes into the build as PIP_* build
# arguments, and the local folders and files it names are mounted read-only at the same paths.
mapfile -t PIP_ARGS < <(python3 - <<'EOF'
import os, re, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
keys = {"index-url", "extra-index-url", "find-links", "constraint", "cert", "trusted-host", "default-timeout", "timeout"}
values = {}
for line in out.splitlines():  # scope.key='value'; later scopes (user, env) win
    m = re.match(r"^(?::env:|[\w-]+)\.([\w-]+)='(.*)'$", line)
    if m and m.group(1) in keys:
        values[m.group(1)] = m.group(2)
mounts = set()
for key, value in values.items():
    print("--build-arg")
    print(f"PIP_{key.upper().replace('-', '_')}={value}")
    for token in value.split():
        path = token[len("file://"):] if token.startswith("file://") else token
        if not path.startswith("/") or not os.path.exists(path):
            continue
        if token.startswith("file://") and path.rstrip("/").endswith("/simple"):
            path = os.path.dirname(path.rstrip("/"))  # the index's files lie beside simple/
        mounts.add(path)
for path in sorted(mounts):
    print("--volume")
    print(f"{path}:{path}:ro")
EOF
)
step "platform image $IMAGE from $BASE_IMAGE (pip: ${#PIP_ARGS[@]} settings and mounts from here)"
# What is committed is what is built (HEAD, not the working tree: others' half-done edits
# stay out); DEPLOY_CHECK_TREE=worktree builds the working tree as it is.
CONTEXT=$ROOT
if [ "${DEPLOY_CHECK_TREE:-head}" = head ]; then
  CONTEXT=$WORK/context
  rm -rf "$CONTEXT" && mkdir -p "$CONTEXT"
  git archive --format=tar HEAD | tar -x -C "$CONTEXT"
  # one modification time for every file: the build cache then hangs on content alone, and
  # a new commit rebuilds only from the layer whose files changed (not pip's, every time)
  find "$CONTEXT" -exec touch -h -d @0 {} +
fi
FIG[commit]=\"$(git rev-parse --short HEAD)\"
build_platform() {  # the build's steps as it goes, less pip's notes on the local indexes
  podman build --network host --format docker \
    -f "$CONTEXT/deploy/Dockerfile" --ignorefile "$CONTEXT/deploy/Dockerfile.dockerignore" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" "${PIP_ARGS[@]}" -t "$IMAGE" "$CONTEXT" 2>&1 \
    | grep --line-buffered -v -e "^WARNING: Location 'file:" -e 'build argument. Try adding' \
      -e 'build args were not consumed'
}
timed image_build_s build_platform
FIG[image_mb]=$(($(podman image inspect "$IMAGE" --format '{{.Size}}') / 1000000))
podman run --rm --no-healthcheck "$IMAGE" sh -c 'id -un; python --version' | tr '\n' ' '
echo

# --- secrets and configuration (generated, never in the repository) -----------------------
step "secrets, broker config and .env in $WORK"
rand() { python3 -c 'import secrets, sys; print(secrets.token_urlsafe(int(sys.argv[1])))' "$1"; }
declare -A PW=([ingest]=$(rand 24) [control]=$(rand 24) [web]=$(rand 24))
rm -rf "$WORK/mosquitto" "$WORK/camera" && mkdir -p "$WORK/mosquitto" "$WORK/camera"
cp deploy/mosquitto/mosquitto.conf deploy/mosquitto/platform.acl deploy/mosquitto/run-broker.sh \
  "$WORK/mosquitto/"
: > "$WORK/mosquitto/platform.passwd"
for role in ingest control web; do
  podman run --rm -v "$WORK/mosquitto:/out" "$SERVICES_IMAGE" \
    mosquitto_passwd -b /out/platform.passwd "strata-$role" "${PW[$role]}"
done
chmod 644 "$WORK/mosquitto/"*  # hashes only; the broker reads them as its own user
umask 077
PG_PASSWORD=$(rand 24)
cat > "$WORK/.env" <<EOF
SECRET_KEY=$(rand 50)
POSTGRES_PASSWORD=$PG_PASSWORD
MQTT_INGEST_PASSWORD=${PW[ingest]}
MQTT_CONTROL_PASSWORD=${PW[control]}
MQTT_WEB_PASSWORD=${PW[web]}
STRATA_IMAGE=$IMAGE
SERVICES_IMAGE=$SERVICES_IMAGE
BASE_IMAGE=$BASE_IMAGE
MOSQUITTO_CONFIG=$WORK/mosquitto
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=$PG_PORT
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
MQTT_HOST=127.0.0.1
MQTT_DEVICE_PORT=$MQTT_DEVICE_PORT
MQTT_PLATFORM_PORT=$MQTT_PLATFORM_PORT
WEB_PORT=$WEB_PORT
ALLOWED_HOSTS=localhost,127.0.0.1
EOF
umask 022

teardown() {
  local status=$?
  compose logs > "$WORK/logs.txt" 2>&1 || true
  if [ "${DEPLOY_CHECK_KEEP:-0}" = 1 ]; then
    echo "deploy-check: stack left running (project $PROJECT; logs in $WORK/logs.txt)"
    return
  fi
  step "teardown (containers and volumes); logs in $WORK/logs.txt"
  compose down -v -t 30 >/dev/null 2>&1 || true
  [ $status = 0 ] || echo "deploy-check: FAILED (status $status); logs: $WORK/logs.txt" >&2
}
trap teardown EXIT
compose down -v -t 5 >/dev/null 2>&1 || true  # what a previous, interrupted run left

# --- the stack ---------------------------------------------------------------------------------
# In the order compose.yaml's depends_on says. Podman before 4.6 (Debian 12 has 4.3) cannot
# wait for "healthy", and runs health checks only through systemd timers: so the services
# start first, their own health checks are run here until they pass, then migrate, then the
# platform. With docker compose or podman >= 4.6, `up -d` alone does the same.
healthy() {  # healthy SERVICE...: run each one's compose health check until it passes
  local service deadline=$((SECONDS + 120))
  for service in "$@"; do
    until podman healthcheck run "${PROJECT}_${service}_1" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || fail "$service is not healthy after 120 s"
      sleep 1
    done
  done
}
step "start postgres, redis, mosquitto; wait until their health checks pass"
started=$SECONDS
compose config --quiet || fail "compose config"
compose up -d --no-build --no-deps postgres redis mosquitto >"$WORK/up.txt" 2>&1 \
  || { cat "$WORK/up.txt"; fail "compose up"; }
healthy postgres redis mosquitto
FIG[services_ready_s]=$((SECONDS - started))
step "migrate (runs to completion first)"
compose run --rm --no-deps migrate >"$WORK/migrate.txt" 2>&1 \
  || { tail -20 "$WORK/migrate.txt"; fail "migrate"; }
FIG[migrate_s]=$((SECONDS - started - FIG[services_ready_s]))
step "start web, ingest-0, ingest-1, controller, worker, worker-live"
compose up -d --no-build --no-deps web ingest-0 ingest-1 controller worker worker-live >>"$WORK/up.txt" 2>&1 \
  || { cat "$WORK/up.txt"; fail "compose up"; }
ready() {
  curl -fsS -o /dev/null -H 'Host: localhost' "http://127.0.0.1:$WEB_PORT/readyz" 2>/dev/null
}
until ready; do
  [ $((SECONDS - started)) -lt 300 ] || fail "the web container was not ready after 300 s"
  sleep 1
done
FIG[stack_ready_s]=$((SECONDS - started))
healthy web worker worker-live
podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}\t{{.Status}}'
for service in ingest-0 ingest-1 controller worker worker-live; do
  state=$(podman inspect "${PROJECT}_${service}_1" --format '{{.State.Status}}')
  [ "$state" = running ] || fail "$service is $state"
done

# --- a camera and a user --------------------------------------------------------------------
step "provision $CAMERA and a dashboard user (manage.py in the web container)"
compose exec -T web python manage.py provision "$CAMERA" --site "Deploy check" \
  > "$WORK/camera/cameras.jsonl"
chmod 644 "$WORK/camera/cameras.jsonl"  # read by the camera container's own user
ADMIN_PW=$(rand 18)
compose exec -T -e DJANGO_SUPERUSER_PASSWORD="$ADMIN_PW" web python manage.py createsuperuser \
  --noinput --username deploy-check --email deploy-check@example.org >/dev/null

step "a simulated camera: $SECONDS_RUN s at $FPS fps to mqtt://127.0.0.1:$MQTT_DEVICE_PORT"
# Meanwhile one ingest slot and the worker are restarted, as docs/operations.md tells users
# to do at an upgrade (SIGTERM, then a new process): nothing may be lost or doubled.
podman run --rm --no-healthcheck --network host -v "$WORK/camera:/camera:ro" "$IMAGE" \
  python -m devices.fleet --count 1 --broker "mqtt://127.0.0.1:$MQTT_DEVICE_PORT" \
  --credentials /camera/cameras.jsonl --duration "$SECONDS_RUN" --fps "$FPS" \
  > "$WORK/camera/fleet.txt" 2>&1 &
camera=$!
sleep $((SECONDS_RUN / 3))
for service in ingest-0 worker; do
  echo "restart $service (SIGTERM, up to 30 s to stop)"
  podman restart -t 30 "${PROJECT}_${service}_1" >/dev/null
done
wait $camera || { cat "$WORK/camera/fleet.txt"; fail "the simulated camera failed"; }
grep -v "^time=" "$WORK/camera/fleet.txt"
# the restarted slot took its broker session back (and with it what was queued meanwhile)
compose logs ingest-0 2>&1 | grep -q "session present: True" \
  || fail "ingest-0 did not take its broker session back after the restart"
SENT=$(tail -n1 "$WORK/camera/fleet.txt" | python3 -c 'import json, sys; print(json.load(sys.stdin)["frames_acked"])')
[ "$SENT" -gt 0 ] || fail "the camera had no frame acknowledged by the broker"
FIG[frames_sent]=$SENT

# --- archived once each, decoded ---------------------------------------------------------------
sql() {
  compose exec -T postgres psql -p "$PG_PORT" -U strata -d strata -Atc "$1" \
    2>/dev/null | tr -d '\r'
}
step "archive and decode: $SENT frames sent"
# Every frame archived once. Live view decodes each camera's newest frame at once; the frames
# in between are decoded by backfill when the workers are idle: wait for all of them.
FRAMES="FROM archive_frame f JOIN fleet_device d ON d.id = f.device_id WHERE d.device_id = '$CAMERA'"
waited=$SECONDS
while :; do
  IFS='|' read -r archived distinct decoded < <(sql "SELECT count(*), count(DISTINCT f.seq),
    (SELECT count(DISTINCT i.frame_id) FROM archive_decodedimage i WHERE i.frame_id IN
      (SELECT f.id $FRAMES)) $FRAMES")
  echo "archived $archived (distinct seq $distinct), decoded $decoded"
  [ "${archived:-0}" -ge "$SENT" ] && [ "${decoded:-0}" -ge "$SENT" ] && break
  [ $((SECONDS - waited)) -lt 180 ] || fail "after 180 s: $archived of $SENT archived, $decoded decoded"
  sleep 2
done
[ "$archived" = "$distinct" ] || fail "$archived frames archived for $distinct sequence numbers"
FIG[frames_archived]=$archived
FIG[frames_decoded]=$decoded
FIG[archive_and_decode_wait_s]=$((SECONDS - waited))
FRAME_ID=$(sql "SELECT f.id $FRAMES ORDER BY f.seq DESC LIMIT 1")
for service in ingest-0 ingest-1 worker worker-live controller web; do
  if compose logs "$service" 2>&1 | grep -q "Traceback"; then fail "$service logged a traceback"; fi
done

# --- served by the web container ----------------------------------------------------------------
step "the web container serves frame $FRAME_ID to the signed-in user"
# As a TLS-terminating proxy would (X-Forwarded-Proto: https): production settings make the
# session and CSRF cookies Secure, which a client only sends back over HTTPS.
python3 - "$WEB_PORT" "$ADMIN_PW" "$FRAME_ID" "$CAMERA" > "$WORK/web.json" <<'EOF'
import http.client, json, re, sys, urllib.parse
port, password, frame, camera = sys.argv[1:]
cookies = {}

def get(method, path, body=None, headers=()):
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    sent = {"Host": f"127.0.0.1:{port}", "X-Forwarded-Proto": "https", **dict(headers)}
    if cookies:
        sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    conn.request(method, path, body, sent)
    response = conn.getresponse()
    for header in response.headers.get_all("Set-Cookie") or []:
        name, value = header.split(";", 1)[0].split("=", 1)
        cookies[name] = value
    return response, response.read()

_, html = get("GET", "/login/")
token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1).decode()
form = urllib.parse.urlencode({"username": "deploy-check", "password": password, "csrfmiddlewaretoken": token})
signed_in, _ = get("POST", "/login/", form, {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"https://127.0.0.1:{port}/login/"})
assert signed_in.status == 302 and "sessionid" in cookies, f"could not sign in: {signed_in.status}"
overview, page = get("GET", "/")
assert overview.status == 200 and camera.encode() in page, f"{camera} is not on the fleet overview"
image, body = get("GET", f"/frames/{frame}/image")
assert image.status == 200, image.status
assert image.headers["Content-Type"] == "image/webp", image.headers["Content-Type"]
assert body[:4] == b"RIFF" and body[8:12] == b"WEBP", body[:12]
print(json.dumps({"image_bytes": len(body), "content_type": image.headers["Content-Type"]}))
EOF
cat "$WORK/web.json"
FIG[served_image_bytes]=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["image_bytes"])' "$WORK/web.json")

# --- backup and restore ------------------------------------------------------------------------
step "backup (pg_dump -Fc), restore into a fresh database, decode frame $FRAME_ID from it"
pg() { podman exec -i "${PROJECT}_postgres_1" "$@"; }  # local socket: no password
started=$SECONDS
pg pg_dump -p "$PG_PORT" -U strata -d strata -Fc > "$WORK/strata.dump"
FIG[backup_s]=$((SECONDS - started))
FIG[backup_kb]=$(($(stat -c %s "$WORK/strata.dump") / 1000))
started=$SECONDS
pg createdb -p "$PG_PORT" -U strata strata_restored
pg pg_restore -p "$PG_PORT" -U strata -d strata_restored --no-owner --exit-on-error < "$WORK/strata.dump"
FIG[restore_s]=$((SECONDS - started))
# Decoded from the restored layers (its stored images removed first), without Redis: the
# decode runs in this process.
podman run --rm --no-healthcheck --network host --env-file "$WORK/.env" \
  -e DATABASE_URL="postgres://strata:$PG_PASSWORD@127.0.0.1:$PG_PORT/strata_restored" \
  "$IMAGE" python manage.py shell -c "
from archive.decoding import redecode
from archive.models import DecodedImage, Frame
frame = Frame.objects.get(pk=$FRAME_ID)
before = bytes(DecodedImage.objects.filter(frame=frame).order_by('-channels').first().image)
DecodedImage.objects.filter(frame=frame).delete()
image = redecode(frame.pk, frame.n_layers)
assert image is not None, 'the restored frame did not decode'
data = bytes(image.image)
assert data[:4] == b'RIFF' and data[8:12] == b'WEBP'
print(f'restored frame {frame.pk} (seq {frame.seq}) decoded at k={image.channels}: '
      f'{len(data)} bytes, identical to the original: {data == before}')
" | tee "$WORK/restore.txt"
grep -q "decoded at k=" "$WORK/restore.txt" || fail "no frame decoded from the restored database"

FIG[total_s]=$SECONDS
figures=$(for k in "${!FIG[@]}"; do printf '"%s": %s\n' "$k" "${FIG[$k]}"; done | sort | paste -sd, - | sed 's/,/, /g')
echo "{\"deploy_check\": \"passed\", \"podman\": \"$(podman --version | cut -d' ' -f3)\", $figures}" \
  | tee "$WORK/figures.json"
