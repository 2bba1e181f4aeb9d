#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server and ROBOLEARN_TEST_POSTGRES_URL pointing at
# an empty database in it; the server and its files are removed afterwards.
# Without PostgreSQL (and not root to install it), the command runs without the URL and the
# PostgreSQL tests say why they are skipped.
#   tools/with_postgres.sh .venv/bin/pytest -q
set -uo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

if [ -z "$(pg_bin)" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL for the store tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
    >/dev/null 2>&1 || echo "could not install PostgreSQL: its tests will be skipped"
fi
BIN="$(pg_bin)"
if [ -z "$BIN" ]; then
  exec "$@"
fi

DIR="$(mktemp -d /tmp/robolearn-pg.XXXXXX)"
PORT="${ROBOLEARN_PG_PORT:-55432}"
RUN=()
if [ "$(id -u)" = "0" ]; then
  chown postgres: "$DIR"
  RUN=(runuser -u postgres --)
fi
cleanup() {
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$DIR"
}
trap cleanup EXIT

"${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U robolearn --auth=trust >/dev/null \
  && "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
       -o "-p $PORT -k $DIR -c listen_addresses=''" start >/dev/null \
  && "${RUN[@]}" "$BIN/createdb" -h "$DIR" -p "$PORT" -U robolearn robolearn_test
if [ $? -ne 0 ]; then
  echo "could not start a scratch PostgreSQL (see $DIR/log): its tests will be skipped"
  "$@"
  exit $?
fi
export ROBOLEARN_TEST_POSTGRES_URL="postgresql+psycopg://robolearn@/robolearn_test?host=$DIR&port=$PORT"
"$@"
