#!/usr/bin/env bash
# Build the local Debian base image that the compose proof and the sandbox build on, when it
# is missing (there is no image registry here): debootstrap bookworm from the Debian mirror
# apt already uses (never another host), then `docker import`. Idempotent; root on Debian 12.
#   scripts/debian-base.sh [IMAGE]     (default jarvis-proof/debian-python:bookworm)
set -Eeuo pipefail

BASE_IMAGE=${1:-${JARVIS_PROOF_BASE_IMAGE:-jarvis-proof/debian-python:bookworm}}
SUITE=bookworm

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE exists; reused"
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
fi

mirror=$(python3 - "$SUITE" <<'PY'
import glob, re, sys
suite = sys.argv[1]
# deb822 sources: paragraphs with Types / URIs / Suites.
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in para.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []):
            print(fields["uris"][0]); sys.exit(0)
# one-line sources: deb [options] URI SUITE COMPONENTS...
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            print(words[1]); sys.exit(0)
sys.exit(f"no apt source for Debian {suite} found in /etc/apt")
PY
)
echo "debootstrap $SUITE from $mirror"
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/jarvis-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
timeout 900 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" "$mirror"
# Trust what this host trusts (a TLS-inspecting proxy's CA, if any) so pip reaches PyPI.
mkdir -p "$rootfs/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/host-trust.crt"
chroot "$rootfs" update-ca-certificates >/dev/null
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["/bin/bash"]' \
  - "$BASE_IMAGE"
echo "built $BASE_IMAGE"
