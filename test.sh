#!/usr/bin/env bash
# One command to run the tests: set up .venv with test extras, then pytest (browser tests skip
# with a reason when /usr/bin/chromium is missing: `apt-get install chromium fonts-noto-cjk`).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh "[test]"
exec .venv/bin/python -m pytest "$@"
