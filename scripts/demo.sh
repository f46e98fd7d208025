#!/usr/bin/env bash
# Offline demo: synthetic dataset + tiny V-JEPA 2, whole Dagster graph, results from DuckDB.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec "$VENV/bin/python" -m egoclean_assets.demo "$@"
