#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the shared-storage tests and print its URL.
# Installs the Debian package when no server binaries are present. Stop it with:
#   pg_ctl -D "$dir" stop   (the data dir is printed on stderr)
set -euo pipefail
port="${MNV4NAS_PG_PORT:-54329}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql (Debian package)…" >&2
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq postgresql) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d /tmp/mnv4nas-pg.XXXXXX)
as_pg() {
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; runuser -u postgres -- "$@"; else "$@"; fi
}
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
# A port already taken (another server left running) moves us to the next one.
for try in 0 1 2 3 4 5 6 7 8 9; do
  if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null; then
    break
  fi
  [ "$try" = 9 ] && { cat "$dir/data/server.log" >&2; exit 1; }
  port=$((port + 1))
done
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres mnv4nas
echo "postgres data dir: $dir/data" >&2
echo "postgresql://postgres@127.0.0.1:$port/mnv4nas"
