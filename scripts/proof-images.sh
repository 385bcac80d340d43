# Sourced by scripts/compose-proof.sh and scripts/sandbox.sh (needs ROOT and BASE_IMAGE):
# stand-ins for the official redis and postgres images, built on the local Debian base
# from deploy/proof/ (this machine has no image registry), each tagged with the hash of
# its recipe and the base image's id, so a changed recipe or base is rebuilt and an
# unchanged one is reused.

standin_tag() {
  local name=$1 base_id
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  printf 'jarvis-proof/%s:%s' "$name" \
    "$( (echo "$base_id"; cat "$ROOT/deploy/proof/$name.Dockerfile" "$ROOT"/deploy/proof/*.sh) \
      | sha256sum | cut -c1-12)"
}

build_standin() {
  local name=$1 tag
  tag=$(standin_tag "$name")
  if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag exists; reused"
    return 0
  fi
  DOCKER_BUILDKIT=0 timeout 900 docker build --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    -f "$ROOT/deploy/proof/$name.Dockerfile" -t "$tag" "$ROOT/deploy/proof"
}
