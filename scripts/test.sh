#!/usr/bin/env bash
# Sets up the machine if needed, then runs every check: ruff, mypy, the web app's
# typecheck and lint, and the whole test suite (unit, integration on the local stack,
# chaos, browser e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=functions/venv/bin/python
echo "==> ruff"
"$PY" -m ruff check .
echo "==> mypy"
"$PY" -m mypy functions local_stack bench devtools
echo "==> web app: tsc --noEmit, eslint"
npm run --prefix web --silent typecheck
npm run --prefix web --silent lint
echo "==> pytest"
"$PY" -m pytest "$@"
