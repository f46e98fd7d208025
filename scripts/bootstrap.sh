#!/usr/bin/env bash
# Create .venv/ in the repository root on first use and install EgoClean into it.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it is a no-op
# once the install stamp matches pyproject.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.egoclean-installed"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "EgoClean needs Python 3.11+ (found $("$PY" --version 2>&1)); set PYTHON=..." >&2; exit 1; }
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  # torch first, so the project's open "torch>=2.5" does not pull a multi-GB CUDA build
  # on machines without a GPU. GPU users: install the CUDA build of torch into .venv
  # before running this (see README), and it is kept.
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    "$VENV/bin/pip" install -q "${EGOCLEAN_TORCH_SPEC:-torch==2.13.0}"
  fi
  "$VENV/bin/pip" install -q -e "$ROOT[dev,cluster]"
  echo "$want" > "$STAMP"
fi
