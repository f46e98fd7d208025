#!/usr/bin/env bash
# Shared-storage demo: a throwaway PostgreSQL (Dagster instance + DuckLake catalog) and a
# local S3 API server (moto) on 127.0.0.1; two synthetic workers' clips run through the
# whole graph by two processes at once; the shared tables queried; everything it started
# stopped by pid. Offline, CPU only, a few minutes. Usage: bash scripts/cluster-demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
PY="$VENV/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

WORK="$(mktemp -d /tmp/egoclean-cluster-demo.XXXXXX)"
SERVERS_PID=""
cleanup() {
  # the servers process stops PostgreSQL and the S3 server by their pids on SIGTERM
  if [ -n "$SERVERS_PID" ] && kill -0 "$SERVERS_PID" 2>/dev/null; then
    kill -TERM "$SERVERS_PID"; wait "$SERVERS_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "cluster-demo: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 2
fi

echo "== starting PostgreSQL and the S3 API server (127.0.0.1 only) in $WORK"
"$PY" -m tests.support.servers > "$WORK/servers.env" &
SERVERS_PID=$!
for _ in $(seq 1800); do
  grep -q '^# ready' "$WORK/servers.env" 2>/dev/null && break
  kill -0 "$SERVERS_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q '^# ready' "$WORK/servers.env" || { echo "cluster-demo: servers did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/servers.env"
echo "   PostgreSQL pid $EGOCLEAN_PG_PID, S3 server pid $EGOCLEAN_S3_PID at $AWS_ENDPOINT_URL"

echo "== synthetic dataset: 1 factory, 2 workers, 1 clip of 45 s each; tiny random-weight model"
"$VENV/bin/egoclean" synth "$WORK/source" --workers 2 --clips 1 --duration 45 --json > "$WORK/synth.json"
"$PY" -c "import sys; from egoclean.embed.tiny_model import save_tiny_model; save_tiny_model(sys.argv[1])" "$WORK/model"
GT="$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['ground_truth'])" "$WORK/synth.json")"

# One setting: the instance yaml plus this environment switch every piece to shared storage.
mkdir -p "$WORK/dagster_home"
cp deploy/dagster.cluster.yaml "$WORK/dagster_home/dagster.yaml"
export DAGSTER_HOME="$WORK/dagster_home" EGOCLEAN_SOURCE="$WORK/source" EGOCLEAN_MODEL="$WORK/model" \
  EGOCLEAN_DEVICE=cpu EGOCLEAN_GROUND_TRUTH="$GT" EGOCLEAN_GROUND_TRUTH_SEED=0 EGOCLEAN_WORK_DIR="$WORK/work" \
  EGOCLEAN_CACHE="$WORK/cache"
echo "   DAGSTER_HOME=$DAGSTER_HOME (PostgreSQL: $EGOCLEAN_PG_URL)"
echo "   EGOCLEAN_DATA_ROOT=$EGOCLEAN_DATA_ROOT"
echo "   EGOCLEAN_DB=$EGOCLEAN_DB  EGOCLEAN_DB_DATA_PATH=$EGOCLEAN_DB_DATA_PATH"

echo "== two processes at once, one worker each"
"$PY" -m egoclean_assets.backfill factory_001/worker_001 > "$WORK/run1.log" 2>&1 &
P1=$!
"$PY" -m egoclean_assets.backfill factory_001/worker_002 > "$WORK/run2.log" 2>&1 &
P2=$!
RC=0
wait "$P1" || RC=1
wait "$P2" || RC=1
grep -h -E '^\[|worker' "$WORK/run1.log" "$WORK/run2.log" | sed 's/^/   /'
if [ "$RC" -ne 0 ]; then tail -n 30 "$WORK/run1.log" "$WORK/run2.log" >&2; echo "cluster-demo: a run failed" >&2; exit 1; fi

echo "== the shared tables (DuckLake: catalog in PostgreSQL, Parquet in S3), through egoclean sql"
"$VENV/bin/egoclean" sql --db "$EGOCLEAN_DB" \
  "SELECT clip_id, kind, egoclean_mmss(start_sec) AS start, egoclean_mmss(end_sec) AS end, round(peak_score, 3) AS peak
   FROM segments WHERE kind = 'anomaly' ORDER BY clip_id, start_sec"
"$VENV/bin/egoclean" sql --db "$EGOCLEAN_DB" \
  "SELECT clip_id, status, truth, detected, round(iou, 2) AS iou FROM detection_eval ORDER BY clip_id"

echo "== the Dagster instance (PostgreSQL) and the objects (S3)"
"$PY" - <<'PYEOF'
import s3fs
from dagster import AssetKey, DagsterInstance
with DagsterInstance.get() as inst:
    done = sorted(inst.get_materialized_partitions(AssetKey("diagnostics_plot")))
    print(f"   {type(inst.run_storage).__name__}: {len(inst.get_runs())} runs; clips done: {', '.join(done)}")
fs = s3fs.S3FileSystem()
import os
bucket = os.environ["EGOCLEAN_DATA_ROOT"][len("s3://"):].split("/")[0]
files = fs.find(bucket)
data = [f for f in files if "/data/" in f and "/_manifests/" not in f]
print(f"   s3://{bucket}: {len(files)} objects ({len(data)} artifacts, "
      f"{sum(1 for f in files if f.endswith('.parquet'))} Parquet files of the tables)")
for f in sorted(data):
    print("     s3://" + f)
PYEOF
echo "== stopping PostgreSQL (pid $EGOCLEAN_PG_PID) and the S3 server (pid $EGOCLEAN_S3_PID)"
