#!/usr/bin/env bash
# Install the LiteLLM proxy, bench/stream.py's optional peer (--litellm), into a venv of its own
# (default .venv-litellm; never the app's .venv), from bench/requirements-litellm.txt (pinned).
# Usage: bash bench/install-litellm.sh [VENV_DIR]   (or: make bench-litellm-install)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_DIR="${1:-.venv-litellm}"
PYTHON="${PYTHON:-$(bash scripts/find-python.sh)}"
if [ -z "$PYTHON" ]; then
    echo "error: no Python >= 3.12 found (set PYTHON=/path/to/python3)" >&2
    exit 1
fi
if [ ! -x "$VENV_DIR/bin/python" ]; then
    "$PYTHON" -m venv "$VENV_DIR"
fi
"$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
"$VENV_DIR/bin/python" -m pip install --quiet -r bench/requirements-litellm.txt
"$VENV_DIR/bin/litellm" --version >/dev/null 2>&1 || "$VENV_DIR/bin/python" -c "import litellm"
echo "LiteLLM installed in $VENV_DIR: run bench/stream.py --litellm $VENV_DIR/bin/litellm"
