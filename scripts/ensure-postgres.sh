#!/usr/bin/env bash
# Ensures a PostgreSQL server for the fleet's tests on its PostgreSQL
# backend (#21), and prints its URL (no database: each test fleet creates
# its own). Installs Debian's postgresql when missing, then runs a cluster
# of its own ("outpost", port $OUTPOST_PG_PORT, default 54329) on loopback
# only, started with pg_ctlcluster, with a role outpost/outpost that may
# create databases. Idempotent: a second call only prints the URL. Needs
# root (or sudo). With --drop-test-databases, first drops the databases
# earlier test runs made (outpost_t_*, outpost_migrate_*).
set -euo pipefail
# Only the URL goes to stdout (callers capture it): what the tools print
# (pg_ctlcluster's "Removed stale pid file.", apt) is sent to stderr, per
# command (not with exec: the server would inherit a copy of stdout and a
# caller reading it to its end would wait for the server to stop).
port=${OUTPOST_PG_PORT:-54329}
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "fleet tests: installing postgresql with apt-get" >&2
  $sudo apt-get update -qq >&2
  # The package's own start may fail where there is no init system; the
  # cluster below is started by hand.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $2}' | grep -qx outpost; then
  $sudo pg_createcluster "$version" outpost --port "$port" \
    -o max_connections=400 -o fsync=off \
    -o synchronous_commit=off >/dev/null
fi
if ! pg_lsclusters -h | awk '$2 == "outpost" {print $4}' | grep -qx online; then
  $sudo pg_ctlcluster "$version" outpost start >&2
fi
port=$(pg_lsclusters -h | awk '$2 == "outpost" {print $3}')
psql_as_postgres() {
  if [[ -z $sudo ]]; then
    su postgres -c "psql -p $port -qtAX $(printf '%q ' "$@")"
  else
    sudo -u postgres psql -p "$port" -qtAX "$@"
  fi
}
if [[ $(psql_as_postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'outpost'") != 1 ]]; then
  psql_as_postgres -c "CREATE ROLE outpost LOGIN CREATEDB PASSWORD 'outpost'" >/dev/null
fi
if [[ ${1:-} == --drop-test-databases ]]; then
  for db in $(psql_as_postgres -c "SELECT datname FROM pg_database WHERE datname LIKE 'outpost\_t\_%' OR datname LIKE 'outpost\_migrate\_%'"); do
    psql_as_postgres -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
  done
fi
echo "postgres://outpost:outpost@127.0.0.1:$port"
