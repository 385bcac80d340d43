#!/usr/bin/env bash
# Make a Docker engine and the local test image available (idempotent; root on Debian 12).
#   - installs docker.io and busybox-static when missing;
#   - starts dockerd in the background when `docker info` does not answer (no bridge,
#     no iptables: test containers use host networking or none, on 127.0.0.1 only);
#   - builds the image jarvis-test/busybox from Debian's static busybox when absent
#     (there is no registry to pull from).
# Usage: scripts/ci-docker.sh   (then run the tests; the remediator's Docker tests need it)
set -euo pipefail

IMAGE="${JARVIS_TEST_IMAGE:-jarvis-test/busybox}"
LOG="${DOCKERD_LOG:-/var/log/jarvis-dockerd.log}"

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ci-docker: need root to install ${need_pkgs[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "ci-docker: the Docker engine is not running and starting it needs root" >&2
    exit 1
  fi
  echo "ci-docker: starting dockerd (log: $LOG)"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >>"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "ci-docker: dockerd did not answer within 60 s" >&2
    tail -n 50 "$LOG" >&2 || true
    exit 1
  fi
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh httpd sleep cat echo mkdir chmod ls rm; do
    ln -sf busybox "$root/bin/$applet"
  done
  tar -C "$root" -c . | docker import - "$IMAGE" >/dev/null
  echo "ci-docker: built $IMAGE"
fi
echo "ci-docker: engine $(docker version --format '{{.Server.Version}}') ready, image $IMAGE present"
