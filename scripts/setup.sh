#!/usr/bin/env bash
# One-time (idempotent) set-up of a fresh machine: system packages, Node packages, the
# reference web app's build (web/dist), and the Python virtualenv at functions/venv
# (where the Firebase CLI expects it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [[ "${SETUP_BROWSER:-1}" == "1" ]] && ! command -v chromium >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
# The official Firestore emulator (gcloud component) runs on Java 17, Debian's default JRE.
if [[ -e /usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar ]] \
  && ! command -v java >/dev/null 2>&1; then
  need_apt+=(default-jre-headless)
fi
if ((${#need_apt[@]})); then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# npm ci also applies patches/ (postinstall: patch-package), so they are part of the stamp.
lock_hash=$(cat package-lock.json patches/*.patch | sha256sum | cut -d' ' -f1)
if [[ ! -f node_modules/.setup-stamp ]] || [[ "$(cat node_modules/.setup-stamp)" != "$lock_hash" ]]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-stamp
fi

rules_hash=$(sha256sum tests/rules/package-lock.json | cut -d' ' -f1)
if [[ ! -f tests/rules/node_modules/.setup-stamp ]] || [[ "$(cat tests/rules/node_modules/.setup-stamp)" != "$rules_hash" ]]; then
  echo "==> npm ci (security-rules tests)"
  npm ci --prefix tests/rules --no-audit --no-fund --loglevel=error
  echo "$rules_hash" > tests/rules/node_modules/.setup-stamp
fi

web_lock_hash=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [[ ! -f web/node_modules/.setup-stamp ]] || [[ "$(cat web/node_modules/.setup-stamp)" != "$web_lock_hash" ]]; then
  echo "==> npm ci (web app)"
  npm ci --prefix web --no-audit --no-fund --loglevel=error
  echo "$web_lock_hash" > web/node_modules/.setup-stamp
fi
web_src_hash=$(cat web/package-lock.json web/index.html web/vite.config.ts web/tsconfig.json web/src/* | sha256sum | cut -d' ' -f1)
if [[ ! -f web/dist/.setup-stamp ]] || [[ "$(cat web/dist/.setup-stamp)" != "$web_src_hash" ]]; then
  echo "==> build the web app (web/dist)"
  npm run --prefix web --silent build >/dev/null
  echo "$web_src_hash" > web/dist/.setup-stamp
fi

req_hash=$(cat functions/requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x functions/venv/bin/python ]] || [[ "$(cat functions/venv/.setup-stamp 2>/dev/null)" != "$req_hash" ]]; then
  echo "==> python venv (functions/venv)"
  python3 -m venv functions/venv
  # `python -m pip`, not bin/pip: a copied venv's scripts name the interpreter they were made for
  functions/venv/bin/python -m pip install -q --upgrade pip >/dev/null
  functions/venv/bin/python -m pip install -q -r requirements-dev.txt
  echo "$req_hash" > functions/venv/.setup-stamp
fi
echo "==> set-up complete"
