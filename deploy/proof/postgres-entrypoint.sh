#!/bin/sh
# Initialise the cluster on first start the way the official image does (the subset that
# docker-compose.yml relies on), then run the command.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  # POSTGRES_HOST_AUTH_METHOD=trust (the official image's switch) needs no password: the
  # sandbox's loopback-only stand-in uses it, as the Jarvis stack's own compose does.
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  [ "$auth" = trust ] || : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user="${POSTGRES_USER:-postgres}"
  db="${POSTGRES_DB:-$user}"
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-unused}" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host="$auth" >/dev/null
  rm -f "$pwfile"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /tmp" start >/dev/null
  if [ "$db" != postgres ]; then
    createdb -h /tmp -U "$user" "$db"
  fi
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
