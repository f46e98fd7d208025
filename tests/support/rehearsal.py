"""A rehearsal of the real Ray deployment on one machine, run by tests/cluster/test_rehearsal.py.

Inside one loopback-only network namespace (`tests.support.ray_head.namespace_command`) it
brings up the production shape and drives it the way a user does:

- PostgreSQL (the Dagster instance of deploy/dagster.ray.yaml and the DuckLake catalog)
  and moto's S3 API (the `s3://` data root and the lake's Parquet), tests/support/servers.py;
- a Ray head with the Jobs API (dashboard) and the runs' `dagster_run` resource, and two
  worker nodes (distinct ports, 2 CPUs and one GPU_STANDIN each: an encoder actor's place);
- a code server (`--use-python-environment-entry-point`), `dagster-daemon` with
  deploy/dagster.ray.yaml's EgoCleanRayRunLauncher (every run is a Ray job), and
  `dagster-webserver`;
- worker_001's clips registered with the CLI and backfilled through the webserver's
  GraphQL `launchPartitionBackfill` (what the UI's Materialize dialog sends), K clips per
  run; worker_002's clips backfilled through the CLI (`python -m egoclean_assets.backfill`,
  the CLI process is the Ray driver);
- meanwhile the raylet of a node running a `fetch_rectify` task is SIGKILLed and, at
  least 5 s later, that of the node hosting the encoder actor, mid-batch (a new worker
  node joins after each, as an autoscaler would replace it).

It prints each phase's time on stderr and one JSON report (the last stdout line) that the
test asserts on, and stops every process it started by pid (then, as a last resort, every
other process of its namespace, all of them its own).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tests.support.ray_head import free_port, in_private_namespace, kill_namespace_but_me

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CLIP_ASSETS = ("raw_tar", "intrinsics", "rectified_clip", "vjepa_embeddings", "similarity_matrix",
               "anomaly_segments", "diagnostics_plot", "camera_trajectory", "trajectory_plot")
CHECKS = (("rectified_clip", "same_frame_count"), ("vjepa_embeddings", "embeddings_valid"),
          ("similarity_matrix", "similarity_valid"), ("anomaly_segments", "matches_ground_truth"),
          ("camera_trajectory", "poses_valid"), ("camera_trajectory", "tracked_enough"),
          ("camera_trajectory", "head_motion_plausible"))
K = 2  # clips per run
CLIPS_PER_WORKER = 4
PHASES: dict[str, float] = {}


class Phase:
    """Times a phase and prints it (stderr), so a slow CI run shows where the time went."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.perf_counter()
        print(f"rehearsal: {self.name} ...", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc):
        PHASES[self.name] = round(time.perf_counter() - self.t0, 1)
        print(f"rehearsal: {self.name} {'done' if exc[0] is None else 'FAILED'} in {PHASES[self.name]} s",
              file=sys.stderr, flush=True)


class Procs:
    """Every process the rehearsal starts, each in its own process group, stopped by pid at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        p = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, p))
        return p

    def stop_all(self) -> None:
        for _name, p in reversed(self.started):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def tail(self, name: str, n: int = 3000) -> str:
        p = self.logs / f"{name}.log"
        return p.read_text(errors="replace")[-n:] if p.exists() else ""


def wait_for(what: str, ok, timeout: float, every: float = 0.5):
    deadline = time.time() + timeout
    while True:
        try:
            v = ok()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - not up yet
            last = e
        else:
            last = None
        if time.time() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s ({last})")
        time.sleep(every)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def pids_titled(marker: str) -> list[int]:
    """Pids of this namespace (the rehearsal's own processes, never another test's Ray) whose title has marker."""
    return [int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and marker in cmdline(int(d.name)) and _same_namespace(int(d.name))]


def raylet_of(pid: int) -> int | None:
    """The raylet a Ray worker process belongs to (its nearest ancestor that is a raylet)."""
    p: int | None = pid
    for _ in range(6):
        p = ppid(p) if p else None
        if not p:
            return None
        if "/raylet" in cmdline(p).split(" ")[0] or cmdline(p).split(" ")[0].endswith("raylet"):
            return p
    return None


def _same_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def graphql(port: int, query: str, variables: dict) -> dict:
    import requests

    r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=60)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey }
    ... on RunConflict { message }
    ... on InvalidSubsetError { message }
  }
}"""
STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { status } ... on PythonError { message }
  }
}"""


def start_worker_node(procs: Procs, env: dict, gcs: str, name: str) -> subprocess.Popen:
    ports = [free_port() for _ in range(5)]
    lo = free_port()
    lo = 20000 + (lo % 20000)  # a worker-port range of its own per node
    return procs.start(name, [
        str(BIN / "ray"), "start", "--block", f"--address={gcs}", "--node-ip-address=127.0.0.1",
        "--num-cpus=2", "--num-gpus=0", '--resources={"GPU_STANDIN": 1}',
        f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
        f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
        f"--metrics-export-port={ports[4]}", f"--min-worker-port={lo}", f"--max-worker-port={lo + 199}",
        "--disable-usage-stats"], env)


def alive_nodes(ray) -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


def main(out_dir: str) -> None:
    if not in_private_namespace():
        raise SystemExit("the rehearsal runs only in a loopback-only network namespace (namespace_command)")
    work = Path(out_dir)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = Procs(logs)
    report: dict = {"phases": PHASES}
    pg = s3 = ray_tmp = None
    t_all = time.perf_counter()
    try:
        from egoclean.embed.tiny_model import save_tiny_model
        from egoclean.synth import SynthConfig, write_dataset
        from tests.support.servers import PostgresServer, S3Server

        with Phase("data"):
            dataset = work / "source"
            write_dataset(dataset, SynthConfig(workers=2, clips=CLIPS_PER_WORKER, duration_sec=6.0, width=96,
                                               height=72, anomalies=False))
            model = str(save_tiny_model(work / "tiny"))
        with Phase("postgres+s3"):
            pg = PostgresServer().start()  # its own temp folder, one the postgres user can enter
            for db in ("dagster", "lake"):
                pg.createdb(db)
            s3 = S3Server().start()
            s3.create_bucket("egoclean")
        import secrets

        gcs_port, dash_port, code_port, web_port = free_port(), free_port(), free_port(), free_port()
        home = work / "dagster_home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOCLEAN_", "RAY_", "DAGSTER_"))}
        env.update(s3.env())
        # Ray's own temp folder: /tmp/ray/ray_current_cluster is shared by every Ray on the machine (other
        # namespaces included), and a job's driver found another cluster's address there. Short: socket paths.
        ray_tmp = tempfile.mkdtemp(prefix="rr", dir="/tmp")
        env.update({
            "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(home), "RAY_TMPDIR": ray_tmp,
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
            # a raylet waits this long for its dashboard agent, which starts slowly on a busy 2-core machine
            "RAY_agent_register_timeout_ms": "180000",
            "EGOCLEAN_PG_URL": pg.url("dagster"), "EGOCLEAN_DATA_ROOT": "s3://egoclean/data",
            "EGOCLEAN_DB": f"ducklake:postgres:{pg.dsn('lake')}", "EGOCLEAN_DB_DATA_PATH": "s3://egoclean/tables/",
            "EGOCLEAN_EXECUTION": "ray", "EGOCLEAN_CLIPS_PER_RUN": str(K),
            "EGOCLEAN_RAY_ACTOR_RESOURCES": '{"GPU_STANDIN": 1}', "EGOCLEAN_RAY_BATCH_WAIT_S": "0.5",
            "EGOCLEAN_RAY_SEND_WINDOWS": "1", "EGOCLEAN_RAY_RECTIFY_CPUS": "0.5", "EGOCLEAN_RAY_EMBED_CPUS": "0.5",
            "EGOCLEAN_RAY_ANALYSE_CPUS": "0.5", "EGOCLEAN_RAY_TRAJECTORY_CPUS": "0.5",
            "EGOCLEAN_SOURCE": str(dataset), "EGOCLEAN_MODEL": model, "EGOCLEAN_DEVICE": "cpu",
            "EGOCLEAN_GROUND_TRUTH": str(dataset / "ground_truth.csv"), "EGOCLEAN_GROUND_TRUTH_SEED": "0",
            "EGOCLEAN_CACHE": str(work / "cache"), "EGOCLEAN_WORK_DIR": str(work / "stage"),
        })
        # Dagster's own switches from deploy/ray.env, as the deployment sources it
        for line in (ROOT / "deploy" / "ray.env").read_text().splitlines():
            if line.startswith("DAGSTER_") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v.split("#")[0].strip()
        os.environ.update(env)
        with Phase("ray head + 2 workers"):
            gcs = f"127.0.0.1:{gcs_port}"
            procs.start("ray_head", [
                str(BIN / "ray"), "start", "--head", "--block", f"--port={gcs_port}", "--node-ip-address=127.0.0.1",
                "--num-cpus=0", "--num-gpus=0", '--resources={"dagster_run": 2}', "--include-dashboard=true",
                "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}", "--disable-usage-stats"],
                dict(env, RAY_ADDRESS=""))
            import ray

            wait_for("ray head", lambda: ray.init(address=gcs, namespace="rehearsal", log_to_driver=False) or True,
                     120, 2)
            for i in (1, 2):  # one after the other: two raylets starting at once time out on 2 busy cores
                start_worker_node(procs, dict(env, RAY_ADDRESS=""), gcs, f"ray_worker{i}")
                wait_for(f"{i + 1} Ray nodes", lambda n=i + 1: len(alive_nodes(ray)) == n, 180)
            from ray.job_submission import JobSubmissionClient

            jobs_api = f"http://127.0.0.1:{dash_port}"
            wait_for("the Jobs API", lambda: JobSubmissionClient(jobs_api).list_jobs() is not None,
                     120, 2)
            env["RAY_ADDRESS"] = gcs
            os.environ["RAY_ADDRESS"] = gcs
        with Phase("dagster: code server, daemon, webserver"):
            cfg = (ROOT / "deploy" / "dagster.ray.yaml").read_text()
            cfg = cfg.replace("http://ray-head:8265", f"http://127.0.0.1:{dash_port}")
            cfg = cfg.replace("poll_interval_seconds: 60", "poll_interval_seconds: 5")
            (home / "dagster.yaml").write_text(cfg)
            (work / "workspace.yaml").write_text(
                f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
                "      location_name: egoclean_assets\n")
            procs.start("code_server", [
                sys.executable, "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
                "-m", "egoclean_assets.definitions", "--location-name", "egoclean_assets",
                "--use-python-environment-entry-point"], env)
            import requests

            procs.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(work / "workspace.yaml")], env)
            procs.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                                      "-w", str(work / "workspace.yaml")], env)
            wait_for("webserver", lambda: requests.get(f"http://127.0.0.1:{web_port}/server_info", timeout=5).ok,
                     300, 2)
            wait_for("code location loaded", lambda: graphql(web_port, "{ repositoriesOrError { __typename "
                     "... on RepositoryConnection { nodes { name } } } }", {})["repositoriesOrError"].get("nodes"),
                     300, 2)

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "egoclean_assets.backfill", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=900)

        w1 = [f"factory001_worker001_{i:05d}" for i in range(CLIPS_PER_WORKER)]
        w2 = [f"factory001_worker002_{i:05d}" for i in range(CLIPS_PER_WORKER)]
        with Phase("backfill through GraphQL (UI), with raylet kills"):
            r = cli("factory_001/worker_001", "--register-only")
            assert r.returncode == 0, r.stderr[-2000:]
            data = graphql(web_port, LAUNCH, {"params": {
                "partitionNames": w1, "fromFailure": False,
                "assetSelection": [{"path": [a]} for a in CLIP_ASSETS]}})["launchPartitionBackfill"]
            assert data["__typename"] == "LaunchBackfillSuccess", data
            backfill_id = data["backfillId"]
            faults = Faults(ray, procs, env, gcs)
            faults.start()
            status = wait_for("backfill done", lambda: (s := graphql(web_port, STATUS, {"id": backfill_id})
                                                         ["partitionBackfillOrError"].get("status"))
                              not in (None, "REQUESTED") and s, 600, 2)
            report["ui_backfill"] = {"id": backfill_id, "status": status}
        with Phase("backfill through the CLI (its runs Ray jobs too)"):
            r = cli("factory_001/worker_002")
            report["cli_backfill"] = {"rc": r.returncode, "out": r.stdout[-3000:], "err": r.stderr[-3000:]}
            faults.stop()  # a kill the UI backfill did not see happens during this one
            report["faults"] = faults.report
        with Phase("collect"):
            report.update(collect(work, env, w1 + w2, model))
        for what, kill in (report.get("faults") or {}).items():
            if isinstance(kill, dict):
                after = [t for t in report["embedding_times"] if t > kill["at"]]
                kill["recovery_s"] = round(after[0] - kill["at"], 1) if after else None
                print(f"rehearsal: raylet of the {what} node killed; next clip embedded {kill['recovery_s']} s later",
                      file=sys.stderr, flush=True)
        with Phase("single-process reference"):
            report["reference"] = reference(work, dataset, model, w1 + w2, report.pop("_rectified"))
    except BaseException as e:
        import traceback

        report["error"] = "".join(traceback.format_exception(e))[-4000:]
        report["logs"] = {n: procs.tail(n) for n, _ in procs.started}
    finally:
        t_stop = time.perf_counter()
        try:
            import ray

            ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
        procs.stop_all()
        if s3 is not None:
            s3.stop()
        if pg is not None:
            pg.stop()
        # What outlived the stops by pid: Ray's job drivers and detached workers live in sessions of their
        # own (not the raylets' process groups); the namespace's processes are all this rehearsal's.
        left = [p for p in (int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit())
                if p != os.getpid() and _same_namespace(p)]
        report["left_running"] = {str(p): cmdline(p)[:100] for p in left}
        kill_namespace_but_me()
        if ray_tmp:
            shutil.rmtree(ray_tmp, ignore_errors=True)
        PHASES["stop"] = round(time.perf_counter() - t_stop, 1)
        PHASES["total"] = round(time.perf_counter() - t_all, 1)
        print(f"rehearsal: phases {json.dumps(PHASES)}", file=sys.stderr, flush=True)
    print(json.dumps(report, default=str))


class Faults(threading.Thread):
    """SIGKILLs the raylet of a node running a fetch_rectify task, then that of the encoder actor's node
    mid-batch; a new worker node joins after each. Records when (recovery is measured from there)."""

    def __init__(self, ray, procs: Procs, env: dict, gcs: str):
        super().__init__(daemon=True)
        self.ray, self.procs, self.env, self.gcs = ray, procs, env, gcs
        self.report: dict = {"actor": None, "rectify": None}
        self._halt = threading.Event()
        self._n = 2

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def _replace(self) -> None:
        self._n += 1
        start_worker_node(self.procs, dict(self.env, RAY_ADDRESS=""), self.gcs, f"ray_worker{self._n}")

    def _kill(self, what: str, worker_pid: int) -> None:
        raylet = raylet_of(worker_pid)
        if raylet is None:
            return
        t0 = time.time()
        os.kill(raylet, signal.SIGKILL)
        self.report[what] = {"worker_pid": worker_pid, "raylet_pid": raylet, "at": t0}
        self._replace()

    def run(self) -> None:
        # First a node running a fetch_rectify task (rectification comes first), then, at least 5 s
        # later and once the encoder actor is loaded and fed, the node hosting the actor.
        try:
            first = None
            while not self._halt.is_set() and (self.report["rectify"] is None or self.report["actor"] is None):
                if self.report["rectify"] is None:
                    tasks = pids_titled("ray::fetch_rectify")
                    if tasks:
                        self._kill("rectify", tasks[0])
                        first = time.time()
                elif first is not None and time.time() - first > 5:
                    # a named actor's title is "ray::<name>:EncoderActor.<method>"; one still loading: "__init__"
                    actors = [p for p in pids_titled(":EncoderActor") if "__init__" not in cmdline(p)]
                    if actors and pids_titled("ray::embed_clip"):
                        time.sleep(0.3)  # mid-batch: the actor has windows in flight
                        self._kill("actor", actors[0])
                time.sleep(0.2)
        except Exception as e:  # noqa: BLE001 - reported, the test asserts on it
            self.report["error"] = repr(e)


def collect(work: Path, env: dict, clips: list[str], model: str) -> dict:
    """What a user relies on, read from the instance, the lake, the bucket and the actors."""
    from dagster import AssetKey, DagsterInstance
    from dagster._core.definitions.asset_checks.asset_check_spec import AssetCheckKey

    from egoclean.core.object_store import RemoteRoot
    from egoclean.store import Store

    out: dict = {}
    with DagsterInstance.get() as inst:
        runs = inst.get_runs()
        out["runs"] = [{"id": r.run_id[:8], "status": r.status.value, "job": r.job_name,
                        "range": [r.tags.get("dagster/asset_partition_range_start"),
                                  r.tags.get("dagster/asset_partition_range_end")]} for r in runs]
        mats: dict = {}
        load_ids: dict = {}
        times: list[float] = []
        for a in CLIP_ASSETS:
            per: dict = {}
            for rec in inst.fetch_materializations(AssetKey(a), limit=1000).records:
                m = rec.asset_materialization
                per[m.partition] = per.get(m.partition, 0) + 1
                if a == "vjepa_embeddings":
                    load_ids[m.partition] = m.metadata["encoder_load_id"].value
                    times.append(rec.timestamp)
            mats[a] = per
        out["materializations"] = mats
        out["encoder_load_ids"] = load_ids
        out["embedding_times"] = sorted(times)
        checks: dict = {}
        for asset, name in CHECKS:
            hist = inst.event_log_storage.get_asset_check_execution_history(AssetCheckKey(AssetKey(asset), name),
                                                                            limit=1000)
            checks[name] = [[h.partition, h.status.value] for h in hist]
        out["checks"] = checks
    store = Store(env["EGOCLEAN_DB"], data_path=env["EGOCLEAN_DB_DATA_PATH"])
    _, rows = store.query("SELECT clip_id, count(*) FROM clips GROUP BY 1 ORDER BY 1")
    out["clip_rows"] = {c: n for c, n in rows}
    _, rows = store.query("SELECT clip_id, count(*) FROM window_scores GROUP BY 1 ORDER BY 1")
    out["window_rows"] = {c: n for c, n in rows}
    _, rows = store.query("SELECT clip_id, count(*) FROM trajectories GROUP BY 1 ORDER BY 1")
    out["trajectory_rows"] = {c: n for c, n in rows}
    remote = RemoteRoot("s3://egoclean")
    fs = remote.fs()
    objects = sorted(fs.find("egoclean"))
    out["objects"] = objects
    out["parquet"] = sum(1 for o in objects if o.endswith(".parquet"))
    stage = Path(env["EGOCLEAN_WORK_DIR"])
    out["stage_left"] = [str(p) for p in stage.rglob("*") if p.is_file()] if stage.exists() else []
    # the rectified clips and embeddings, fetched for the single-process comparison
    got = work / "from_bucket"
    rect = {}
    for o in objects:
        if o.endswith(("_rectified.mp4", "_emb.npy", "_temb.npy", "_ts.npy", "_meta.json", "_intrinsics.json")):
            dst = got / Path(o).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            fs.get(o, str(dst))
            if o.endswith("_rectified.mp4"):
                rect[Path(o).name.removesuffix("_rectified.mp4")] = str(dst)
    out["_rectified"] = rect
    # the encoder actors' own stats (a run's metadata reads the load id only once)
    from egoclean_assets.cluster import ray_resource_from_env

    cfg = ray_resource_from_env().config()
    from egoclean.cluster import ray_pipeline as rp

    enc = {"model": model, "revision": None, "device": "cpu", "dtype": "auto"}
    try:
        out["actors"] = rp.actor_stats(cfg, enc)
    except Exception as e:  # noqa: BLE001 - reported
        out["actors"] = repr(e)
    return out


def reference(work: Path, dataset: Path, model: str, clips: list[str], rectified: dict) -> dict:
    """Local mode on the same clips: rectify_file on the raw clip (its SHA-256 against the bucket's)
    and embed_video on the rectified clip (max |difference| against the bucket's embeddings)."""
    from egoclean.embed.embeddings import Embeddings
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder
    from egoclean.media.rectify import rectify_file

    enc = load_encoder(EncoderConfig(model=model, device="cpu"))
    raw = work / "raw_local"
    raw.mkdir()
    for tar in dataset.rglob("*.tar"):
        with tarfile.open(tar) as t:
            t.extractall(raw, filter="data")
    out = {}
    got = work / "from_bucket"
    for c in clips:
        f, w = c.split("_")[0].removeprefix("factory"), c.split("_")[1].removeprefix("worker")
        intr = dataset / f"factory_{f}" / "workers" / f"worker_{w}" / "intrinsics.json"
        local = work / "local" / c / f"{c}_rectified.mp4"
        local.parent.mkdir(parents=True)
        rectify_file(raw / f"{c}.mp4", intr, local, progress=False)
        entry: dict = {"rectified_in_bucket": c in rectified}
        if c in rectified:
            entry["same_mp4"] = (hashlib.sha256(local.read_bytes()).hexdigest()
                                 == hashlib.sha256(Path(rectified[c]).read_bytes()).hexdigest())
            ref = embed_video(str(local), enc, batch_size=4, progress=False)
            mine = Embeddings.load(got / c)
            entry["windows"] = [len(mine), len(ref)]
            entry["max_abs_emb"] = float(np.max(np.abs(mine.emb - ref.emb))) if len(mine) == len(ref) else None
            entry["max_abs_temb"] = float(np.max(np.abs(mine.temb - ref.temb))) if len(mine) == len(ref) else None
        out[c] = entry
    shutil.rmtree(raw)
    return out


if __name__ == "__main__":
    main(sys.argv[1])
