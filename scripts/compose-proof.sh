#!/usr/bin/env bash
# Proof that docker-compose.yml runs: on a Docker engine without any image registry,
#   1. build a Debian base image locally (debootstrap bookworm from the Debian mirror that
#      apt already uses, then `docker import`; cached);
#   2. build the project image on it (deploy/Dockerfile with BASE_IMAGE), and stand-ins for
#      the redis and postgres images from deploy/proof/ (cached);
#   3. start the compose stack with deploy/compose.hostnet.yml (host networking, loopback
#      ports, so no bridge network is needed), with everything of docs/deploy.md's
#      "Security" on: a Redis user per service, bearer tokens for writes and reads, HTTPS
#      with a certificate made here, signed approvals;
#   4. trust and smoke test: requests without the token, plain HTTP and Redis clients
#      without a password are refused; an Alertmanager webhook produces an incident with a
#      timeline;
#   5. scaled out (`--scale detector=2 --scale triage=3 --scale escalator=2`): alerts posted
#      to either detector flow, exactly one detector holds the prober lease, and an alert
#      posted to both at once is in one incident, opened once;
#   6. kill service containers while alerts flow, let them be restarted, and show that
#      every accepted alert is in exactly one incident's timeline.
# Idempotent, bounded in time, tears down what it started. Run as root on Debian 12:
#   scripts/compose-proof.sh            (log: var/compose-proof/proof.log)
# JARVIS_PROOF_KEEP=1 leaves the stack running afterwards (for debugging).
# JARVIS_PROOF_LENIENT=1 only warns when an alert opened its incident but its own entry is
# missing from that incident's timeline (a recorder linking problem, not a lost alert).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WORK=${JARVIS_PROOF_DIR:-$ROOT/var/compose-proof}
LOG=$WORK/proof.log
PROJECT=${JARVIS_PROOF_PROJECT:-jarvis-ir-proof}
BASE_IMAGE=${JARVIS_PROOF_BASE_IMAGE:-jarvis-proof/debian-python:bookworm}
APP_IMAGE=${JARVIS_PROOF_APP_IMAGE:-jarvis-responder:proof}
# Loopback ports of the stack (host networking); override if they clash.
PORT_BASE=${JARVIS_PROOF_PORT_BASE:-16300}
REDIS_PORT=$((PORT_BASE + 79))
POSTGRES_PORT=$((PORT_BASE + 32))
# Replicas of detector, triage and escalator take the next free ports of a span of 10.
DETECTOR_PORT=$((PORT_BASE + 10))
TRIAGE_PORT=$((PORT_BASE + 20))
REMEDIATOR_PORT=$((PORT_BASE + 30))
ESCALATOR_PORT=$((PORT_BASE + 40))
RECORDER_PORT=$((PORT_BASE + 50))
# Replicas (issue 16): the scale-out the proof runs with.
SCALE=(--scale detector=2 --scale triage=3 --scale escalator=2)

mkdir -p "$WORK"
rm -f "$WORK/dockerd.pid"
: >"$LOG"
export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin needed, `--network host` works
STARTED=$(date +%s)
COMPOSE=()
STACK_UP=0
STEP_PID=""

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
log() { printf '%s\n' "$*" >>"$LOG"; }

fail() {
  say "compose-proof: FAILED: $*"
  say "compose-proof: full log: $LOG"
  exit 1
}

# step NAME COMMAND...: run with output to the log; on failure show its tail and stop.
step() {
  local name=$1 start rc=0
  shift
  start=$(date +%s)
  say "==> $name"
  log "---- $(date -u +%FT%TZ) $name: $*"
  # In the background so that `set -e` holds inside the step (it is off in `cmd || ...`).
  "$@" >>"$LOG" 2>&1 &
  STEP_PID=$!
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  if [ "$rc" -ne 0 ]; then
    say "    failed (exit $rc) after $(($(date +%s) - start)) s; last lines of the log:"
    tail -n 40 "$LOG" | sed 's/^/    | /'
    fail "$name"
  fi
  say "    ok ($(($(date +%s) - start)) s)"
}

compose() { "${COMPOSE[@]}" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$STEP_PID" ]; then # interrupted in the middle of a step: stop it first
    pkill -TERM -P "$STEP_PID" 2>/dev/null || true # its children (timeout passes it on)
    kill -- "$STEP_PID" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
  fi
  if [ "$STACK_UP" = 1 ] && [ -n "${JARVIS_PROOF_KEEP:-}" ]; then
    say "compose-proof: JARVIS_PROOF_KEEP is set: the stack is left running; stop it with"
    say "  ${COMPOSE[*]} down -v"
  elif [ "$STACK_UP" = 1 ]; then
    if [ "$rc" -ne 0 ]; then
      log "---- container logs (failure)"
      compose logs --no-color --tail=200 >>"$LOG" 2>&1 || true
    fi
    log "---- teardown"
    compose down -v --remove-orphans >>"$LOG" 2>&1 || say "compose-proof: teardown failed (see $LOG)"
  fi
  if [ -s "$WORK/dockerd.pid" ]; then # only the engine this script started
    kill "$(cat "$WORK/dockerd.pid")" 2>/dev/null || true
    rm -f "$WORK/dockerd.pid"
  fi
  say "compose-proof: $([ "$rc" -eq 0 ] && echo PASSED || echo FAILED) in $(($(date +%s) - STARTED)) s (log: $LOG)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if [ -f "$ROOT/scripts/ci-docker.sh" ]; then
    bash "$ROOT/scripts/ci-docker.sh"
  else
    command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io
    # No bridge network: this machine has no NAT; every container here uses host networking.
    dockerd --bridge=none --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
    echo $! >"$WORK/dockerd.pid"
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "the Docker engine did not answer within 60 s" >&2
  return 1
}

ensure_tools() {
  local need=()
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v python3 >/dev/null || need+=(python3)
  command -v openssl >/dev/null || need+=(openssl)
  python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    # Debian 12 packages Compose v1 (docker-compose); the v2 plugin is not in Debian.
    need+=(docker-compose)
  fi
  if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
  fi
}

pick_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  else
    COMPOSE=(docker-compose)
  fi
  COMPOSE+=(-p "$PROJECT" --project-directory "$ROOT" --env-file "$WORK/proof.env")
}

# The Debian base image, shared with the sandbox (scripts/debian-base.sh; cached).
build_base_image() { bash "$ROOT/scripts/debian-base.sh" "$BASE_IMAGE"; }

# Stand-ins for the redis and postgres images (tagged by recipe; shared with the sandbox).
# shellcheck source=scripts/proof-images.sh
. "$ROOT/scripts/proof-images.sh"

build_app_image() {
  timeout 900 docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f "$ROOT/deploy/Dockerfile" -t "$APP_IMAGE" "$ROOT"
}

secret() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }

# A self-signed certificate for 127.0.0.1 (the services serve HTTPS with it). The key is
# readable by the services' user (uid 10001) only.
make_certificate() {
  rm -rf "$WORK/tls"
  mkdir -p "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=jarvis-ir compose proof" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem"
  chown 10001 "$WORK/tls/key.pem"
  chmod 600 "$WORK/tls/key.pem"
  chmod 644 "$WORK/tls/cert.pem"
}

write_env_file() {
  (
    umask 077
    cat >"$WORK/proof.env" <<EOF
# Written by scripts/compose-proof.sh for one run.
JARVIS_ENV_FILE=$WORK/proof.env
JARVIS_IR_IMAGE=$APP_IMAGE
JARVIS_IR_REDIS_IMAGE=$(standin_tag redis)
JARVIS_IR_POSTGRES_IMAGE=$(standin_tag postgres)
JARVIS_IR_POSTGRES_PASSWORD=$(secret)
# Every write and every read wants the token; alerts are sealed, approvals signed.
JARVIS_API_TOKEN=$(secret)
JARVIS_HTTP_PROTECT_READS=true
JARVIS_ENVELOPE_KEY=$(secret)
JARVIS_APPROVAL_KEY=$(secret)
# One Redis user per service (deploy/redis/users.acl.template).
JARVIS_IR_REDIS_DETECTOR_PASSWORD=$(secret)
JARVIS_IR_REDIS_TRIAGE_PASSWORD=$(secret)
JARVIS_IR_REDIS_REMEDIATOR_PASSWORD=$(secret)
JARVIS_IR_REDIS_ESCALATOR_PASSWORD=$(secret)
JARVIS_IR_REDIS_RECORDER_PASSWORD=$(secret)
JARVIS_IR_REDIS_ADMIN_PASSWORD=$(secret)
# HTTPS with the certificate made above.
JARVIS_IR_TLS_DIR=$WORK/tls
JARVIS_HTTP_TLS_CERTFILE=/run/jarvis-ir/tls/cert.pem
JARVIS_HTTP_TLS_KEYFILE=/run/jarvis-ir/tls/key.pem
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
JARVIS_NETWORK=$PROJECT-unused
JARVIS_HOSTNET_REDIS_PORT=$REDIS_PORT
JARVIS_HOSTNET_POSTGRES_PORT=$POSTGRES_PORT
JARVIS_HOSTNET_DETECTOR_PORT=$DETECTOR_PORT
JARVIS_HOSTNET_TRIAGE_PORT=$TRIAGE_PORT
JARVIS_HOSTNET_REMEDIATOR_PORT=$REMEDIATOR_PORT
JARVIS_HOSTNET_ESCALATOR_PORT=$ESCALATOR_PORT
JARVIS_HOSTNET_RECORDER_PORT=$RECORDER_PORT
# The proof is about the pipeline: no probes of a Jarvis stack that is not there; probing
# stays on, so the detector replicas elect their prober (the lease) as in production.
JARVIS_DETECTOR__PROBES_ENABLED=true
JARVIS_DETECTOR__BACKEND__ENABLED=false
JARVIS_DETECTOR__OLLAMA__ENABLED=false
JARVIS_DETECTOR__POSTGRES__ENABLED=false
JARVIS_DETECTOR__REDIS__ENABLED=false
JARVIS_DETECTOR__DOCKER__ENABLED=false
JARVIS_DETECTOR__LOGS__ENABLED=false
JARVIS_DETECTOR__HOST__ENABLED=false
JARVIS_DETECTOR__PROMETHEUS__ENABLED=false
JARVIS_DETECTOR__GRAFANA__ENABLED=false
# Entries a killed consumer held are retried after 2 s instead of 15 s.
JARVIS_CONSUMER__RECLAIM_IDLE_MS=2000
EOF
  )
}

# docker-compose.yml less what host networking makes meaningless (published ports and
# network attachments) for the services deploy/compose.hostnet.yml puts on the host's
# network: Compose v1 cannot remove keys in an override, and the engine refuses them.
hostnet_base() {
  python3 - "$ROOT/docker-compose.yml" "$ROOT/deploy/compose.hostnet.yml" \
    "$WORK/compose.base.yml" <<'PY'
import sys, yaml
base, override = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
for name, service in override["services"].items():
    if service.get("network_mode") == "host":
        dropped = [k for k in ("ports", "networks") if base["services"][name].pop(k, None)]
        print(f"{name}: host networking; dropped {', '.join(dropped) or 'nothing'}")
yaml.safe_dump(base, open(sys.argv[3], "w"), sort_keys=False)
PY
  "${COMPOSE[@]}" -f "$WORK/compose.base.yml" -f "$ROOT/deploy/compose.hostnet.yml" config -q
}

ports_free() {
  python3 - "$REDIS_PORT" "$POSTGRES_PORT" "$REMEDIATOR_PORT" "$RECORDER_PORT" \
    $(seq "$DETECTOR_PORT" $((DETECTOR_PORT + 9))) $(seq "$TRIAGE_PORT" $((TRIAGE_PORT + 9))) \
    $(seq "$ESCALATOR_PORT" $((ESCALATOR_PORT + 9))) <<'PY'
import socket, sys
busy = []
for port in map(int, sys.argv[1:]):
    with socket.socket() as s:
        # As servers bind: connections of an earlier run in TIME_WAIT do not block them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            busy.append(port)
if busy:
    sys.exit(f"loopback ports in use: {busy}; set JARVIS_PROOF_PORT_BASE to another base")
PY
}

stack_down() { compose down -v --remove-orphans; }

stack_up() {
  timeout 300 "${COMPOSE[@]}" up -d --no-build "${SCALE[@]}"
  timeout 180 python3 "$ROOT/scripts/compose_proof_checks.py" wait-healthy --project "$PROJECT"
}

env_value() { sed -n "s/^$1=//p" "$WORK/proof.env"; }

checks() {
  timeout 420 python3 "$ROOT/scripts/compose_proof_checks.py" run \
    --project "$PROJECT" \
    --compose "${COMPOSE[*]}" \
    --detector "https://127.0.0.1:$DETECTOR_PORT" \
    --scale "${SCALE[*]}" \
    --recorder "https://127.0.0.1:$RECORDER_PORT" \
    --token "$(env_value JARVIS_API_TOKEN)" \
    --cafile "$WORK/tls/cert.pem" \
    --redis-admin-password "$(env_value JARVIS_IR_REDIS_ADMIN_PASSWORD)" \
    --summary "$WORK/summary.txt" \
    ${JARVIS_PROOF_LENIENT:+--lenient}
}

say "compose-proof: log in $LOG"
step "Docker engine" ensure_docker
step "tools (debootstrap, compose)" ensure_tools
pick_compose
step "base image $BASE_IMAGE (debootstrap bookworm, cached)" build_base_image
step "stand-in image for redis (cached)" build_standin redis
step "stand-in image for postgres (cached)" build_standin postgres
step "project image $APP_IMAGE (BASE_IMAGE=$BASE_IMAGE)" build_app_image
step "TLS certificate for 127.0.0.1" make_certificate
write_env_file
step "docker-compose.yml prepared for the host-network override" hostnet_base
COMPOSE+=(-f "$WORK/compose.base.yml" -f "$ROOT/deploy/compose.hostnet.yml")
log "compose: ${COMPOSE[*]}"
step "leftovers of an earlier run removed" stack_down
step "loopback ports $PORT_BASE+ free" ports_free
log "scale: ${SCALE[*]}"
STACK_UP=1
step "compose stack up, scaled out (${SCALE[*]}), healthy (host networking)" stack_up
step "smoke test, scale-out test and restart test" checks
cat "$WORK/summary.txt" | tee -a "$LOG"
