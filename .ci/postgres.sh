#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on a private port as an unprivileged user and print its URL.
# Usage: eval "$(bash .ci/postgres.sh)"  -> exports TEST_POSTGRES_URL
set -euo pipefail
PORT=${TEST_POSTGRES_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
DATA=$(mktemp -d /tmp/bandit-pg.XXXXXX)
id -u bandit-ci >/dev/null 2>&1 || useradd --system --no-create-home bandit-ci
chown bandit-ci "$DATA"
su bandit-ci -s /bin/sh -c "'$BIN/initdb' -D '$DATA/data' -U bandit --auth=trust -E UTF8 >/dev/null"
su bandit-ci -s /bin/sh -c "'$BIN/pg_ctl' -D '$DATA/data' -o '-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=on' -l '$DATA/log' -w start >/dev/null"
"$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U bandit bandit_test
echo "export TEST_POSTGRES_URL=postgresql+psycopg://bandit@127.0.0.1:$PORT/bandit_test"
echo "export TEST_POSTGRES_STOP=\"su bandit-ci -s /bin/sh -c '$BIN/pg_ctl -D $DATA/data -m fast stop'\""
