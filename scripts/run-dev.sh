#!/usr/bin/env bash
# `make run`: write a development .env on the first start, migrate, seed the demo, start the
# simulator when no AI_API_KEY is set and the monitor (rollups, alerts, sweeps), serve with
# daphne. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBUG="${DEBUG:-true}"
export AI_SIMULATOR_PORT="${SIMULATOR_PORT:-8001}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
PY=.venv/bin/python

# On Ctrl-C daphne drains: replies being written run to their end (up to CHAT_DRAIN_SECONDS,
# shorter here than in production) before it exits; a second Ctrl-C stops them at once.
export CHAT_DRAIN_SECONDS="${CHAT_DRAIN_SECONDS:-10}"
# The monitor passes every few seconds and refreshes the dashboard's rollups (and evaluates the
# alerts) every 15 s, so a chat shows on the staff dashboard within 20 s (production: a minute).
export ANALYTICS_ROLLUP_SECONDS="${ANALYTICS_ROLLUP_SECONDS:-15}"
MONITOR_INTERVAL_SECONDS="${MONITOR_INTERVAL_SECONDS:-5}"

# The first start writes a development .env (never over an existing one), so that `manage.py`
# commands typed later run in development too, without DEBUG=true in front of each.
env_file="${ENV_FILE:-.env}"
if [ ! -e "$env_file" ]; then
    secret_key=$($PY -c 'import secrets; print(secrets.token_urlsafe(50))')
    (
        umask 077
        cat > "$env_file" <<EOF
# For development only: written by \`make run\` (scripts/run-dev.sh) on its first start; it
# never overwrites this file. Never deploy with it: production has its own file with DEBUG off
# and real secrets (.env.example lists every setting; docs/deploy.md).
DEBUG=true
SECRET_KEY=${secret_key}
EOF
    )
    echo "Wrote a development ${env_file} (DEBUG=true and a new SECRET_KEY)."
fi

pids=()
server=""
stop_and_wait() {
    kill "$1" 2>/dev/null || true
    # `wait` returns early when a trapped signal arrives: wait again until it has exited.
    while kill -0 "$1" 2>/dev/null; do wait "$1" 2>/dev/null || true; done
}
cleanup() {
    trap - EXIT
    if [ -n "$server" ]; then
        # The server first, while the simulator still writes the replies it drains; a second
        # Ctrl-C is passed on to it and ends the drain.
        trap 'kill "$server" 2>/dev/null || true' INT TERM
        echo "Stopping (replies in progress may finish first; Ctrl-C again to stop them now)."
        stop_and_wait "$server"
    fi
    trap - INT TERM
    for pid in "${pids[@]}"; do stop_and_wait "$pid"; done
}
trap cleanup INT TERM EXIT

$PY manage.py migrate --noinput
$PY manage.py seed_demo

if [ -z "${AI_API_KEY:-}" ] && ! grep -qs '^AI_API_KEY=..*' "${ENV_FILE:-.env}"; then
    echo "No AI_API_KEY set: starting the built-in simulator on 127.0.0.1:${AI_SIMULATOR_PORT}."
    $PY manage.py llm_simulator --host 127.0.0.1 --port "$AI_SIMULATOR_PORT" &
    pids+=($!)
fi

echo "Starting the monitor (a pass every ${MONITOR_INTERVAL_SECONDS} s: rollups, alerts, sweeps)."
# Quiet: its routine lines (a rollup every pass) would drown the server's; problems still show.
LOG_LEVEL=WARNING $PY manage.py monitor --interval "$MONITOR_INTERVAL_SECONDS" --verbosity 0 &
pids+=($!)

echo "Serving on http://${HOST}:${PORT}/  (Ctrl-C stops)"
$PY -m daphne -b "$HOST" -p "$PORT" aiproject.asgi:application &
server=$!
wait -n "$server" "${pids[@]}"
