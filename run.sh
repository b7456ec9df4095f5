#!/usr/bin/env bash
# One command to try the chat: set up .venv, build the index if needed, serve on http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m app serve "$@"
