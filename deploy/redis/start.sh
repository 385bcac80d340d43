#!/bin/sh
# Starts redis-server with the users of users.acl.template, their passwords taken from the
# environment (JARVIS_IR_REDIS_<USER>_PASSWORD; a user whose password is empty is off).
# The rendered file is readable by its owner only. Arguments go to redis-server.
#   JARVIS_IR_REDIS_ACL_TEMPLATE  the template (default: beside this script)
#   JARVIS_IR_REDIS_ACL_FILE      where the rendered file goes (default /data/users.acl)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
template=${JARVIS_IR_REDIS_ACL_TEMPLATE:-$here/users.acl.template}
acl=${JARVIS_IR_REDIS_ACL_FILE:-/data/users.acl}
umask 077
lines=$(mktemp)
out=$(mktemp)
trap 'rm -f "$lines" "$out"' EXIT
# An ACL file has no comments or blank lines.
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$template" >"$lines"
while IFS= read -r line; do
  case "$line" in
    *'${'*'}'*)
      var=$(printf '%s\n' "$line" | sed -n 's/.*\${\([A-Z0-9_]*\)}.*/\1/p')
      value=$(printenv "$var" || true)
      if [ -z "$value" ]; then
        name=$(printf '%s\n' "$line" | cut -d' ' -f2)
        line="user $name off resetkeys resetchannels -@all"
      else
        case "$value" in
          *[!A-Za-z0-9_-]*)
            echo "start.sh: $var: letters, digits, '-' and '_' only" >&2
            exit 2
            ;;
        esac
        line=$(printf '%s\n' "$line" | sed "s/\${$var}/$value/")
      fi
      ;;
  esac
  printf '%s\n' "$line" >>"$out"
done <"$lines"
mv "$out" "$acl"
exec redis-server "$@" --aclfile "$acl"
