#!/usr/bin/env bash
# Start an MLflow tracking server for psy-agents: PostgreSQL backend store, proxied artifacts.
#
#   scripts/tracking_server.sh                      # foreground, http://127.0.0.1:5000
#   scripts/tracking_server.sh --background         # detach; prints the URL once it answers
#   scripts/tracking_server.sh --stop               # stop the one started with --background
#   scripts/tracking_server.sh --auth               # MLflow's basic-auth app (users, passwords)
#   scripts/tracking_server.sh -- --allowed-hosts mlflow.lab.example   # extra `mlflow server` args
#
# Options (or environment variables; options win):
#   --db-url URL     PSY_TRACKING_DB_URL   backend store, created if missing (default
#                    postgresql://$PGUSER@$PGHOST:$PGPORT/psy_agents_mlflow, those defaulting
#                    to postgres, 127.0.0.1 and 5432; a password is best left to PGPASSWORD)
#   --host HOST      PSY_TRACKING_HOST     interface to bind (default 127.0.0.1)
#   --port PORT      PSY_TRACKING_PORT     (default 5000)
#   --state DIR      PSY_TRACKING_STATE    pid, log, auth config and secrets
#                    (default .psy_agents/tracking_server)
#   --artifacts DIR  PSY_TRACKING_ARTIFACTS  where proxied artifacts go (default STATE/artifacts)
#   --workers N      PSY_TRACKING_WORKERS  server worker processes (default 2)
# Basic auth (--auth): the admin user is MLFLOW_AUTH_ADMIN_USERNAME (default admin) with the
# password MLFLOW_AUTH_ADMIN_PASSWORD (at least 12 characters); when unset, one is generated
# once into STATE/admin_password (mode 600). New users get PSY_TRACKING_AUTH_DEFAULT_PERMISSION
# (READ, EDIT, MANAGE or NO_PERMISSIONS; default READ) on experiments they did not create.
# A checked password is cached for PSY_TRACKING_AUTH_CACHE_S seconds (default 60; 0 = off):
# each check costs a slow hash, per request, and a password change reaches every worker
# within that time.
# Passwords never appear on a command line or in what this script prints.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 2; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(dirname "$here")"
bin="${PSY_TRACKING_BIN:-}"
if [[ -z "$bin" ]]; then
  if [[ -x "$repo/.venv/bin/mlflow" ]]; then bin="$repo/.venv/bin"; else bin="$(dirname "$(command -v mlflow || echo /nonexistent/mlflow)")"; fi
fi
py="$bin/python"
[[ -x "$bin/mlflow" && -x "$py" ]] || die "no mlflow found (looked in $bin); run 'make install' or set PSY_TRACKING_BIN"

db_url="${PSY_TRACKING_DB_URL:-postgresql://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/psy_agents_mlflow}"
host="${PSY_TRACKING_HOST:-127.0.0.1}"
port="${PSY_TRACKING_PORT:-5000}"
state="${PSY_TRACKING_STATE:-.psy_agents/tracking_server}"
artifacts="${PSY_TRACKING_ARTIFACTS:-}"
workers="${PSY_TRACKING_WORKERS:-2}"
auth=0
mode=foreground
extra=()
while (($#)); do
  case "$1" in
    --db-url) db_url="${2:?--db-url needs a value}"; shift 2 ;;
    --host) host="${2:?--host needs a value}"; shift 2 ;;
    --port) port="${2:?--port needs a value}"; shift 2 ;;
    --state) state="${2:?--state needs a value}"; shift 2 ;;
    --artifacts) artifacts="${2:?--artifacts needs a value}"; shift 2 ;;
    --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
    --auth) auth=1; shift ;;
    --background) mode=background; shift ;;
    --stop) mode=stop; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$port'"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "--workers must be a number >= 1, got '$workers'"
[[ -d "$state" ]] || mkdir -p -m 700 "$state"  # secrets and the auth database live here
state="$(cd "$state" && pwd)"
artifacts="${artifacts:-$state/artifacts}"
pidfile="$state/server.pid"
logfile="$state/server.log"

if [[ "$mode" == stop ]]; then
  [[ -f "$pidfile" ]] || die "no $pidfile: nothing started with --background here"
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "stopped tracking server (pid $pid)"
  exit 0
fi

# Create the database if it is missing (psycopg2 is a psy-agents dependency). SQLAlchemy 2.1
# reads a bare postgresql:// as psycopg 3; without it installed, use psycopg2 explicitly.
db_url="$("$py" - "$db_url" <<'EOF'
import importlib.util
import sys

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


url = make_url(sys.argv[1])
if url.get_backend_name() != "postgresql":
    fail(f"--db-url must be a postgresql:// URL, got {url.drivername}://")
if not url.database:
    fail("--db-url needs a database name, e.g. postgresql://postgres@127.0.0.1:5432/mlflow")
if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
    url = url.set(drivername="postgresql+psycopg2")
args = dict(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
            password=url.password, connect_timeout=5)
try:
    conn = psycopg2.connect(dbname="postgres", **args)
except psycopg2.OperationalError as exc:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    fail(f"cannot connect to PostgreSQL at {args['host']}:{args['port']}: {first}")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
    if cur.fetchone() is None:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
        print(f"created database {url.database}", file=sys.stderr)
conn.close()
print(url.render_as_string(hide_password=False))
EOF
)" || exit 2
# One line, password masked, for anything printed.
masked_db="$(printf '%s' "$db_url" | sed -E 's#(://[^:/@]+:)[^@]*@#\1***@#')"

secret() {  # a random secret kept in a mode-600 file under the state folder
  local file="$state/$1"
  if [[ ! -s "$file" ]]; then
    (umask 077 && "$py" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$file")
  fi
  cat "$file"
}

# The store URL goes by environment, not argv, so a password in it never shows in `ps`.
export MLFLOW_BACKEND_STORE_URI="$db_url"
args=(server --artifacts-destination "$artifacts" --serve-artifacts
      --host "$host" --port "$port" --workers "$workers")
if ((auth)); then
  "$py" -c 'import flask_wtf' 2>/dev/null \
    || die "basic auth needs MLflow's auth extra: $bin/pip install 'mlflow[auth]'"
  permission="${PSY_TRACKING_AUTH_DEFAULT_PERMISSION:-READ}"
  case "$permission" in READ|EDIT|MANAGE|NO_PERMISSIONS) ;; *)
    die "PSY_TRACKING_AUTH_DEFAULT_PERMISSION must be READ, EDIT, MANAGE or NO_PERMISSIONS" ;;
  esac
  auth_cache_s="${PSY_TRACKING_AUTH_CACHE_S:-60}"
  [[ "$auth_cache_s" =~ ^[0-9]+$ ]] || die "PSY_TRACKING_AUTH_CACHE_S must be a number of seconds"
  export MLFLOW_AUTH_ADMIN_USERNAME="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
  if [[ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]]; then
    MLFLOW_AUTH_ADMIN_PASSWORD="$(secret admin_password)"
    echo "admin password: see $state/admin_password"
  fi
  ((${#MLFLOW_AUTH_ADMIN_PASSWORD} >= 12)) || die "MLFLOW_AUTH_ADMIN_PASSWORD must have at least 12 characters"
  export MLFLOW_AUTH_ADMIN_PASSWORD
  export MLFLOW_FLASK_SERVER_SECRET_KEY="${MLFLOW_FLASK_SERVER_SECRET_KEY:-$(secret flask_secret_key)}"
  cat > "$state/basic_auth.ini" <<EOF
[mlflow]
default_permission = $permission
database_uri = sqlite:///$state/basic_auth.db
admin_username = $MLFLOW_AUTH_ADMIN_USERNAME
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
auth_cache_ttl_seconds = $auth_cache_s
EOF
  export MLFLOW_AUTH_CONFIG_PATH="$state/basic_auth.ini"
  umask 077  # the auth database (password hashes) is readable by its owner only
  args+=(--app-name basic-auth)
fi
export MLFLOW_DISABLE_TELEMETRY="${MLFLOW_DISABLE_TELEMETRY:-true}"

shown_host="$host"
[[ "$host" == 0.0.0.0 ]] && shown_host="$(hostname -f 2>/dev/null || hostname)"
url="http://$shown_host:$port"
echo "backend store: $masked_db"
echo "artifacts:     $artifacts (proxied: clients need no access to it)"

if [[ "$mode" == foreground ]]; then
  echo "tracking URI:  $url"
  exec "$bin/mlflow" "${args[@]}" "${extra[@]}"
fi

if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  die "a server started here is already running (pid $(cat "$pidfile")); use --stop first"
fi
setsid "$bin/mlflow" "${args[@]}" "${extra[@]}" >>"$logfile" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$pidfile"
probe_host="$host"
[[ "$host" == 0.0.0.0 || "$host" == "::" ]] && probe_host=127.0.0.1
if ! "$py" - "http://$probe_host:$port/health" "$pid" <<'EOF'; then
import os
import sys
import time
import urllib.request

url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + float(os.environ.get("PSY_TRACKING_START_TIMEOUT", "180"))
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.3)
sys.exit(1)
EOF
  kill -TERM -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
  die "the tracking server did not start; see $logfile"
fi
echo "pid:           $pid (log $logfile; stop with $0 --stop --state $state)"
echo "tracking URI:  $url"
