#!/usr/bin/env bash
# Sets up the machine if needed, starts the offline local stack and runs the demo:
# every kind of job, an upload that becomes a stream, a creation from create to publish.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec functions/venv/bin/python -m local_stack demo "$@"
