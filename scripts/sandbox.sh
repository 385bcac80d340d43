#!/usr/bin/env bash
# The sandbox: a stand-in Jarvis stack (deploy/sandbox/compose.yml) on this machine's Docker
# engine, with the Jarvis container names (backend, sutazai-ollama, sutazai-postgres, …)
# and ports (10010, 10104, 10000, 10001, 10200, 10201), host networking, 127.0.0.1 only.
# Images are built offline on the local Debian base (scripts/debian-base.sh) and cached.
#   scripts/sandbox.sh build    images only
#   scripts/sandbox.sh up       build, (re)create the stack, wait until every service is healthy
#   scripts/sandbox.sh down     remove the stack's containers
# Root on Debian 12 (as scripts/ci-docker.sh and the compose proof).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_IMAGE=${JARVIS_PROOF_BASE_IMAGE:-jarvis-proof/debian-python:bookworm}
PROJECT=${JARVIS_SANDBOX_PROJECT:-jarvis-sandbox}
CONTAINERS=(backend sutazai-ollama sutazai-postgres sutazai-redis sutazai-prometheus
  sutazai-grafana sutazai-neo4j sutazai-loki)
# shellcheck source=scripts/proof-images.sh
. "$ROOT/scripts/proof-images.sh"

compose() {
  local cmd=(docker-compose)
  docker compose version >/dev/null 2>&1 && cmd=(docker compose)
  JARVIS_SANDBOX_STANDIN_IMAGE=$(standin_image) \
    JARVIS_SANDBOX_POSTGRES_IMAGE=$(standin_tag postgres) \
    JARVIS_SANDBOX_REDIS_IMAGE=$(standin_tag redis) \
    "${cmd[@]}" -p "$PROJECT" -f "$ROOT/deploy/sandbox/compose.yml" "$@"
}

standin_image() {
  local base_id
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  printf 'jarvis-sandbox/standin:%s' "$( (echo "$base_id"; cat \
    "$ROOT/deploy/sandbox/standin.Dockerfile" "$ROOT/deploy/sandbox/standin.py") \
    | sha256sum | cut -c1-12)"
}

build() {
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose
  fi
  bash "$ROOT/scripts/debian-base.sh" "$BASE_IMAGE"
  build_standin redis
  build_standin postgres
  local tag
  tag=$(standin_image)
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag exists; reused"
  else
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      -f "$ROOT/deploy/sandbox/standin.Dockerfile" -t "$tag" "$ROOT/deploy/sandbox"
  fi
}

wait_healthy() {
  local deadline=$((SECONDS + 120)) name health
  for name in "${CONTAINERS[@]}"; do
    while true; do
      health=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}healthy{{end}}' "$name")
      [ "$health" = "running healthy" ] && break
      if [ "$SECONDS" -gt "$deadline" ]; then
        echo "sandbox: $name is not healthy: $health" >&2
        docker logs --tail 30 "$name" >&2 || true
        return 1
      fi
      sleep 0.5
    done
  done
  echo "sandbox: ${#CONTAINERS[@]} containers running and healthy"
}

case "${1:-}" in
  build) build ;;
  up)
    build
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    compose up -d --force-recreate
    wait_healthy
    ;;
  down) compose down -v --remove-orphans ;;
  *)
    echo "usage: scripts/sandbox.sh build|up|down" >&2
    exit 2
    ;;
esac
