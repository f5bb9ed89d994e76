#!/usr/bin/env bash
# `make run`: migrate, seed the demo, start the simulator when no AI_API_KEY is set, serve with
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

echo "Serving on http://${HOST}:${PORT}/  (Ctrl-C stops)"
$PY -m daphne -b "$HOST" -p "$PORT" aiproject.asgi:application &
server=$!
wait -n "$server" "${pids[@]}"
