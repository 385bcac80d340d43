# Stand-in for the official `redis` image, built on the debootstrapped base by
# scripts/compose-proof.sh (this machine has no image registry). Same contract as far as
# docker-compose.yml uses it: `redis-server` on PATH, data in /data, runs as `redis`.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
