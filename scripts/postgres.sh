#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL server: Debian's `postgresql` package (installed
# when missing), a cluster in a temp dir listening on 127.0.0.1 only, stopped and removed when the
# command ends. The command sees DIGEST_TEST_DATABASE_URL (SQLAlchemy's psycopg 3 form).
#
#   bash scripts/postgres.sh .venv/bin/python -m pytest -q tests/test_store.py
#
# PostgreSQL refuses to run as root: as root (CI) the cluster runs as the `postgres` user that
# the package creates; otherwise as the current user.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/postgres.sh COMMAND [ARGS...]" >&2; exit 2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=$(find_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  bash "$(dirname "$0")/apt-install.sh" postgres postgresql
  BIN=$(find_bin)
fi

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_db() { runuser -u postgres -- "$@"; }
else
  as_db() { "$@"; }
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/digest-pg.XXXXXX")
chmod 755 "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  as_db "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT

as_db "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
# Durability stays on (fsync, synchronous_commit): the crash tests and the bench measure it.
as_db "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200" start >/dev/null
as_db "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres digest_test

export DIGEST_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/digest_test"
echo "postgres: $("$BIN/postgres" --version) on 127.0.0.1:$PORT ($DIR)" >&2
set +e
"$@"
rc=$?
exit $rc
