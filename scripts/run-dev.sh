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

pids=()
cleanup() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
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
pids+=($!)
wait -n "${pids[@]}"
