"""Many clips through a Ray cluster: fetch+rectify tasks, resident encoder actors fed by many clips, CPU analysis tasks.

The stages are the library's steps (egoclean.ingest.steps, egoclean.media.steps,
egoclean.embed.steps, egoclean.temporal.steps, egoclean.motion.steps), the same calls the
Dagster assets make, returning the same typed results; Ray only decides where they run:

- `fetch_rectify` (a task, `rectify_cpus`, bounded retries): ranged read of the raw clip,
  intrinsics, rectification; the raw clip is deleted once the rectified one is written.
- `EncoderActor` (named, detached, restartable): loads the encoder once and keeps it;
  `encode` calls from many clips are queued and run together, so one forward pass
  holds windows of several clips. A crashed actor is restarted by Ray
  (`max_restarts`) and its unfinished calls are sent again (`max_task_retries`).
- `embed_clip` (a task): decodes and preprocesses one clip (CPU), sends its windows to
  an actor a few at a time (egoclean.embed.encoder.embed_stream) and writes
  `<prefix>_emb.npy` etc. Several of these run at once, one per clip, and feed the same
  actor. A call lost with the actor's node (ActorUnavailableError: Ray cannot tell
  whether it ran, so it does not resend it) is sent again by the task, for up to
  `encode_resend_s` while the actor restarts elsewhere; encoding is idempotent. A call
  waiting on an actor that no alive node can host (its resource was on the lost node
  only) fails the clip with `ClusterError` after `encode_resend_s`, not waits for ever.
- `analyse_detect` (a task): similarity analysis, detection, the two pictures.
- `track_clip` (a task, `trajectory_cpus`, bounded retries): the camera's path (visual
  odometry on the rectified clip with its intrinsics), started with the embedding as soon
  as the clip is rectified; `draw_trajectory` (a task) draws its picture once both it and
  `analyse_detect` are done (the picture marks the anomalous spans).

`run_clips` drives a list of clips through these stages, each clip as soon as its
previous stage is done, and reports every clip as done or failed (with the stage and
the error) without letting one clip's failure stop the others. Rows go to the store
from the driver (`on_done` callback), since the store has one writer.

Nothing here imports Ray at module load: `import ray` happens where it is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import queue
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from egoclean.core.errors import EgoCleanError
from egoclean.core.layout import ClipLayout

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "egoclean"
DEFAULT_ACTOR_NAME = "egoclean-encoder"
# Batches the actor remembers (clip keys per forward pass) for stats(): enough to show
# mixing, bounded so a resident actor's memory does not grow with the runs it served.
BATCH_LOG = 256


@dataclass
class RayConfig:
    """Where and how the clip stages run on Ray (resources are Ray's logical resources)."""

    address: str | None = None  # a cluster ("auto", "ray://host:10001", "host:6379"); None: RAY_ADDRESS or a local Ray
    namespace: str = DEFAULT_NAMESPACE
    actor_name: str = DEFAULT_ACTOR_NAME
    num_actors: int = 1  # encoder actors (one per GPU)
    actor_num_gpus: float = 0.0  # 1 on GPU nodes
    actor_num_cpus: float = 0.0  # the actor's work is the model; decoding is in the embed tasks
    actor_resources: dict[str, float] = field(default_factory=dict)  # e.g. {"GPU_STANDIN": 1} in tests
    actor_max_restarts: int = 3
    actor_max_task_retries: int = 3
    batch_size: int = 8  # windows per forward pass, from any clips
    batch_wait_s: float = 0.05  # how long a forward pass waits for more windows to fill up
    send_windows: int = 2  # windows per request an embed task sends
    in_flight: int = 2  # requests an embed task keeps outstanding
    rectify_cpus: float = 1.0
    embed_cpus: float = 1.0
    analyse_cpus: float = 1.0
    trajectory_cpus: float = 1.0  # the camera path's task (visual odometry: one core)
    task_retries: int = 3  # retries of a task whose worker died (not of errors it raised)
    actor_start_timeout_s: float = 600.0  # an actor the cluster cannot place fails the run instead of waiting forever
    encode_resend_s: float = 300.0  # how long an embed task sends a lost encode call again (its actor restarting)

    def validate(self) -> "RayConfig":
        """Raise InvalidInputError naming the first bad setting."""
        from egoclean.core.errors import InvalidInputError

        for name in ("num_actors", "batch_size", "send_windows", "in_flight"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidInputError(f"ray setting {name}={v!r}: must be an integer >= 1")
        for name in ("actor_num_gpus", "actor_num_cpus", "rectify_cpus", "embed_cpus", "analyse_cpus",
                     "trajectory_cpus", "batch_wait_s", "actor_start_timeout_s", "encode_resend_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0:
                raise InvalidInputError(f"ray setting {name}={v!r}: must be a number >= 0")
        for name in ("actor_max_restarts", "actor_max_task_retries", "task_retries"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < -1:
                raise InvalidInputError(f"ray setting {name}={v!r}: must be an integer >= -1 (-1: unlimited)")
        return self


class ClusterError(EgoCleanError):
    """The cluster cannot run the stages as configured (e.g. no node can place an encoder actor)."""


@dataclass
class ClipJob:
    """One clip's inputs and where its outputs go.

    With `store` unset, `clip_dir` is the clip's final folder and every node sees it (a
    local root, or a shared mount). With `store` set (a remote data root: RemoteRoot's
    keyword arguments), each task downloads its inputs from `store_dir` (the clip's folder
    in the root), works in a folder of its own under `work_dir` (this node's disk), uploads
    its outputs to `store_dir` and removes its folder; `clip_dir` is then only the name the
    results' paths are given (the driver's local folder of the clip)."""

    clip_id: str
    clip_dir: str  # the clip's output folder; files named by egoclean.core.layout (the raw clip in its raw/)
    ground_truth: list = field(default_factory=list)  # GroundTruthSpan-like, for the detection picture
    store: dict | None = None  # RemoteRoot(**store): the remote data root the tasks read and write
    store_dir: str | None = None  # the clip's folder in that root (a URL)
    work_dir: str | None = None  # local staging on the task's node; None: <system temp>/egoclean-work

    @property
    def layout(self):
        """The clip's files in `clip_dir` (egoclean.core.layout.ClipLayout)."""
        return ClipLayout(self.clip_id, self.clip_dir)


class _Staging:
    """Where one task works on a clip: `clip_dir` itself, or (remote root) a folder of its own, removed after."""

    def __init__(self, job: ClipJob):
        self.job = job
        self.remote = None
        if job.store is None:
            self.layout = job.layout
            self.dir = None
            return
        import tempfile

        from egoclean.core.object_store import RemoteRoot

        self.remote = RemoteRoot(**job.store)
        self.fs = self.remote.fs()
        base = Path(job.work_dir) if job.work_dir else Path(tempfile.gettempdir()) / "egoclean-work"
        base = base / "ray"
        base.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(base)
        # the owner's pid in the name: a folder whose task died (SIGKILL, its node's raylet lost) is
        # removed by the next task that stages on this node
        self.dir = Path(tempfile.mkdtemp(prefix=f"{job.clip_id}-{os.getpid()}-", dir=base))
        self.layout = ClipLayout(job.clip_id, str(self.dir))

    def __enter__(self) -> "_Staging":
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)

    def fetch(self, names: list[str]) -> None:
        """Download the clip's files `names` (relative to its folder) from the root into the staging folder."""
        if self.remote is not None:
            final = ClipLayout(self.job.clip_id, self.job.store_dir)
            for n in names:
                self.remote.get(final.path(n), self.layout.path(n), fs=self.fs)

    def publish(self, paths: dict) -> dict:
        """Upload the staged files (role -> path) to the root; their paths as named under `clip_dir`.

        Only files go up here; the driver writes the manifests after, so no manifest
        ever names a file that is not in the root yet."""
        out = {}
        for role, p in paths.items():
            rel = self.layout.relative(p)
            if self.remote is not None:
                self.remote.put(p, ClipLayout(self.job.clip_id, self.job.store_dir).path(rel), fs=self.fs)
            out[role] = self.job.layout.path(rel)
        return out


def _remove_dead_staging(base: Path) -> None:
    """Remove staging folders under `base` whose owning task's process is gone (`<clip>-<pid>-<random>`)."""
    import shutil

    for d in base.iterdir():
        parts = d.name.split("-")
        if len(parts) >= 3 and parts[-2].isdigit() and not _pid_alive(int(parts[-2])):
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class ClipResult:
    """What happened to one clip: each step's typed result (None until it ran), or the stage that failed and why."""

    clip_id: str
    fetched: Any = None  # egoclean.ingest.steps.Fetched (its files deleted once rectified)
    camera: Any = None  # egoclean.ingest.steps.Camera
    rectified: Any = None  # egoclean.media.steps.Rectified
    embedded: Any = None  # egoclean.embed.steps.Embedded
    analysed: Any = None  # egoclean.temporal.steps.Analysed
    segmented: Any = None  # egoclean.temporal.steps.Segmented
    drawn: Any = None  # egoclean.temporal.steps.Drawn
    tracked: Any = None  # egoclean.motion.steps.Tracked
    path_drawn: Any = None  # egoclean.motion.steps.PathDrawn
    failed_stage: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_stage is None


# ---------------------------------------------------------------------------- stages


def fetch_rectify(job: ClipJob, source: dict, balance: float = 0.0, encode_kwargs: dict | None = None) -> tuple:
    """Fetch the raw clip, validate and scale the intrinsics, rectify; delete the raw clip.

    Returns (Fetched, Camera, Rectified), their files named under `job.clip_dir`.
    `source` is `open_source`'s keyword arguments without the token (read on the node
    from HF_TOKEN, so it never travels in a task argument)."""
    from egoclean.core.ids import ClipId
    from egoclean.core.secrets import hf_token
    from egoclean.ingest.source import open_source

    clip = ClipId.parse(job.clip_id)
    src = open_source(**source, token=hf_token())
    with _Staging(job) as stage:
        return _fetch_rectify(job, stage, clip, src, source.get("url"), balance, encode_kwargs)


def _fetch_rectify(job, stage, clip, src, source_url, balance, encode_kwargs) -> tuple:
    from egoclean.ingest.steps import fetch_raw, read_camera
    from egoclean.media.steps import rectify

    lay = stage.layout
    fetched = fetch_raw(src, clip, lay.raw_dir)
    camera = read_camera(src, clip, fetched.video["width"], fetched.video["height"], lay.intrinsics, balance=balance,
                         source_url=source_url)
    rectified = rectify(fetched.mp4, camera.path, lay.rectified, fetched.video, encode_kwargs)
    for p in fetched.files.values():
        Path(p).unlink(missing_ok=True)
    with_raw = Path(lay.raw_dir)
    if with_raw.is_dir() and not any(with_raw.iterdir()):
        with_raw.rmdir()
    published = stage.publish({"json": camera.path, "mp4": rectified.mp4})
    raw_names = {k: job.layout.path(lay.relative(v)) for k, v in fetched.files.items()}
    return fetched.moved(raw_names), camera.moved(published), rectified.moved(published)


class EncoderActor:
    """A resident V-JEPA 2 encoder: loaded once, it runs windows queued by many clips in shared batches."""

    def __init__(self, encoder: dict, batch_size: int = 8, wait_s: float = 0.05):
        from egoclean.embed.encoder import EncoderConfig, load_encoder

        t0 = time.perf_counter()
        self.enc = load_encoder(EncoderConfig(**encoder))
        self.load_seconds = time.perf_counter() - t0
        self.load_id = self.enc.load_id  # a new one per load: a restart is visible
        self.config = dict(encoder)
        self.batch_size, self.wait_s = int(batch_size), float(wait_s)
        self._q: queue.Queue = queue.Queue()
        self._carry = None
        self._log: deque = deque(maxlen=BATCH_LOG)
        self._n_batches = self._n_windows = self._n_mixed = 0
        self._busy_s = 0.0
        self._started = time.time()
        threading.Thread(target=self._loop, name="encoder-batches", daemon=True).start()

    def spec(self) -> dict:
        """What an embed task needs to cut windows for this encoder, and what the embeddings' meta records."""
        from egoclean.embed.steps import encoder_facts

        e = self.enc
        return {"window": dataclasses.asdict(e.window_shape), "describe": e.describe(),
                "preprocess_source": getattr(e, "preprocess_source", None), "encoder": encoder_facts(e)}

    def encode(self, clip_id: str, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        """(emb (B, hidden), temb (B, T, hidden), this load's id) for uint8 windows (B, F, crop, crop, 3) of one clip.

        The load id tells the caller which load encoded the windows: a restarted actor has another."""
        slot: dict = {}
        done = threading.Event()
        self._q.put((clip_id, windows, done, slot))
        done.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["emb"], slot["temb"], self.load_id

    def stats(self) -> dict:
        """Load id, pid, node, batches run (and how many mixed clips), windows, busy time, the recent batches."""
        import ray

        return {"load_id": self.load_id, "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "load_seconds": self.load_seconds,
                "batches": self._n_batches, "mixed_batches": self._n_mixed, "windows": self._n_windows,
                "busy_seconds": self._busy_s, "alive_seconds": time.time() - self._started,
                "recent_batches": list(self._log)}

    def _next_batch(self) -> list:
        first = self._carry if self._carry is not None else self._q.get()
        self._carry = None
        reqs, n = [first], len(first[1])
        deadline = time.monotonic() + self.wait_s
        while n < self.batch_size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                r = self._q.get(timeout=left)
            except queue.Empty:
                break
            if n + len(r[1]) > self.batch_size:
                self._carry = r  # first in the next batch: the batch stays within batch_size
                break
            reqs.append(r)
            n += len(r[1])
        return reqs

    def _loop(self) -> None:
        import torch

        while True:
            reqs = self._next_batch()
            try:
                t0 = time.perf_counter()
                x = torch.from_numpy(np.concatenate([r[1] for r in reqs]))
                emb, temb = self.enc.encode(x)
                self._busy_s += time.perf_counter() - t0
                i = 0
                for _, w, _, slot in reqs:
                    slot["emb"], slot["temb"] = emb[i : i + len(w)], temb[i : i + len(w)]
                    i += len(w)
                clips = [r[0] for r in reqs]
                self._n_batches += 1
                self._n_windows += i
                self._n_mixed += len(set(clips)) > 1
                self._log.append([[c, len(r[1])] for c, r in zip(clips, reqs)])
            except BaseException as e:  # handed to every waiting caller, which re-raises it
                for *_, slot in reqs:
                    slot["error"] = e
            for _, _, done, _ in reqs:
                done.set()


def embed_clip(actor, spec: dict, job: ClipJob, video: dict, send_windows: int = 2, in_flight: int = 2,
               resend_s: float = 300.0, needs: dict | None = None):
    """Decode one rectified clip, send its windows to `actor`, write its embedding files; returns Embedded.

    The one sequence of `egoclean.embed.encoder.embed_video` (embed_stream: same windows,
    preprocessing and meta); only the forward passes happen in the actor, batched with
    other clips' windows. `video`: the rectified video's facts (Rectified.video). `needs`:
    what the actor asks of a node (`actor_needs`), to tell a restart from an actor no node can host."""
    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(job.layout.rectified)])
        return _embed_clip(actor, spec, job, stage, video, send_windows, in_flight, resend_s, needs)


def _embed_clip(actor, spec: dict, job: ClipJob, stage: _Staging, video: dict, send_windows: int, in_flight: int,
                resend_s: float, needs: dict | None = None):
    from egoclean.embed.encoder import WindowShape, embed_stream
    from egoclean.embed.steps import embedded

    t0 = time.perf_counter()
    loads: list[str] = []
    emb = embed_stream(stage.layout.rectified, WindowShape(**spec["window"]), spec["describe"],
                       spec["preprocess_source"], remote_encode(actor, job.clip_id, resend_s, loads, needs),
                       batch_size=send_windows, in_flight=in_flight)
    seconds = time.perf_counter() - t0
    files = stage.publish({k: str(v) for k, v in emb.save(stage.layout.embeddings).items()})
    # The loads that encoded this clip's windows, in order: more than one when the actor restarted meanwhile.
    return embedded(emb, files, spec["encoder"] | {"load_id": ",".join(loads)}, video, seconds)


# Waits between sends of a lost encode call: short at first (a network blip), then at most this.
RESEND_MAX_WAIT_S = 5.0
# How long an encode call is waited for before the task looks whether any node can still host its actor.
HOSTABLE_POLL_S = 5.0


def actor_needs(cfg: RayConfig) -> dict[str, float]:
    """What one encoder actor asks of a node, as Ray resources (only those it asks a non-zero amount of)."""
    asked = {"GPU": cfg.actor_num_gpus, "CPU": cfg.actor_num_cpus, **cfg.actor_resources}
    return {k: v for k, v in asked.items() if v}


def _needs_text(needs: dict) -> str:
    """`num_gpus=… num_cpus=… resources={…}`: an actor's needs as the actor options name them."""
    rest = {k: v for k, v in needs.items() if k not in ("GPU", "CPU")}
    return f"num_gpus={needs.get('GPU', 0):g} num_cpus={needs.get('CPU', 0):g} resources={rest}"


def _hostable(ray, needs: dict) -> bool:
    """Whether some alive node of the cluster has (in total, busy or not) every resource in `needs`."""
    return any(all(n.get("Resources", {}).get(k, 0) >= v for k, v in needs.items())
               for n in ray.nodes() if n.get("Alive"))


def remote_encode(actor, clip_id: str, resend_s: float, loads: list | None = None, needs: dict | None = None):
    """`encode` for embed_stream through an EncoderActor: each batch becomes one `actor.encode` call;
    `loads` gets each actor load id that answered, once.

    A call Ray reports as lost with its actor (ActorUnavailableError: the actor's node died
    or cannot be reached; Ray does not know whether it ran and does not send it again) is
    sent again, the same windows, until `resend_s` have passed since it was first lost:
    the actor restarts on another node meanwhile (`max_restarts`). Encoding is idempotent.

    A call (first sent or sent again) waits for its answer as long as some alive node has
    what the actor `needs` (a restart there is only slow); once no node has had it for
    `resend_s` (the node with the encoder's resource died and none replaced it), the call
    fails with ClusterError naming the needs, instead of Ray holding it for ever."""
    import ray

    def wait(ref):
        if not needs:
            return ray.get(ref)
        unhostable_since = None
        while True:
            try:
                return ray.get(ref, timeout=HOSTABLE_POLL_S)
            except ray.exceptions.GetTimeoutError:
                pass
            if _hostable(ray, needs):
                unhostable_since = None
                continue
            now = time.monotonic()
            unhostable_since = unhostable_since if unhostable_since is not None else now
            if now - unhostable_since >= resend_s:
                with contextlib.suppress(Exception):  # the call is dropped either way
                    ray.cancel(ref)
                raise unhostable()

    def hostable_within(seconds: float) -> bool:
        """False as soon as no alive node has what the actor needs; True if some node had it all along."""
        end = time.monotonic() + seconds
        while _hostable(ray, needs):
            if time.monotonic() >= end:
                return True
            time.sleep(min(HOSTABLE_POLL_S, max(0.0, end - time.monotonic())))
        return False

    def unhostable() -> ClusterError:
        return ClusterError(
            f"clip {clip_id}: its encoder actor cannot be placed again: it needs {_needs_text(needs)} and "
            f"no alive node offers them (none for {resend_s:g} s, EGOCLEAN_RAY_ENCODE_RESEND_S)")

    def encode(windows):
        w = windows.numpy()
        ref = actor.encode.remote(clip_id, w)

        def result():
            nonlocal ref
            deadline, attempt = None, 0
            while True:
                try:
                    emb, temb, load_id = wait(ref)
                    if loads is not None and load_id not in loads:
                        loads.append(load_id)
                    return emb, temb
                except ray.exceptions.ActorUnavailableError as e:
                    now = time.monotonic()
                    deadline = deadline if deadline is not None else now + resend_s
                    if now >= deadline:
                        # resent calls can each be refused at once while the actor waits for a node,
                        # so `wait` never sees resend_s pass: the same verdict is made here, giving
                        # Ray up to resend_s more to notice a dead node (its heartbeats lag)
                        if needs and not hostable_within(resend_s):
                            raise unhostable() from None
                        raise
                    pause = min(RESEND_MAX_WAIT_S, 0.25 * 2 ** attempt, deadline - now)
                    attempt += 1
                    log.warning("clip %s: encode call lost with its actor (%s); sending it again in %.1f s "
                                "(attempt %d)", clip_id, _short(e), pause, attempt + 1)
                    time.sleep(pause)
                    ref = actor.encode.remote(clip_id, w)

        return result

    return encode


def analyse_detect(job: ClipJob, params: dict, model: str, random_weights: bool, duration_sec: float,
                   embeddings: dict | None = None) -> tuple:
    """Similarity analysis, detection (segments JSON) and the two pictures of one clip: (Analysed, Segmented, Drawn).

    `embeddings`: the embedding files (role -> path under `clip_dir`), fetched first from a remote root."""
    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(p) for p in (embeddings or {}).values()])
        return _analyse_detect(job, stage, params, model, random_weights, duration_sec)


def _analyse_detect(job: ClipJob, stage: _Staging, params: dict, model: str, random_weights: bool,
                    duration_sec: float) -> tuple:
    from egoclean.core import atomic
    from egoclean.temporal.detection import DetectionParams
    from egoclean.temporal.steps import analyse_clip, draw, segment

    lay = stage.layout
    analysed = analyse_clip(lay.embeddings, lay.analysis)
    seg = segment(job.clip_id, lay.embeddings, DetectionParams(**params), model, random_weights, duration_sec)
    with atomic.atomic_path(lay.segments) as tmp:
        seg.write(tmp)
    seg = seg.at(lay.segments)
    drawn = draw(job.clip_id, lay.analysis, lay.segments, job.ground_truth, lay)
    an_files = stage.publish(analysed.files)
    pub = stage.publish({**seg.files, **drawn.files})
    return analysed.moved(an_files), seg.moved(pub), drawn.moved(pub)


def track_clip(job: ClipJob):
    """The camera path of one rectified clip with its pinhole camera (egoclean.motion.steps.track, as the
    camera_trajectory asset calls it); returns Tracked, its Parquet named under `job.clip_dir`.

    Reads the clip's rectified video and intrinsics (fetch_rectify's outputs), fetched first from a remote root."""
    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(p) for p in (job.layout.intrinsics, job.layout.rectified)])
        return _track_clip(job, stage)


def _track_clip(job: ClipJob, stage: _Staging):
    from egoclean.motion.steps import track

    lay = stage.layout
    tracked = track(job.clip_id, lay.rectified, lay.intrinsics, lay.trajectory)
    return tracked.moved(stage.publish(tracked.files))


def draw_trajectory(job: ClipJob, spans: list):
    """The camera path's picture of one clip (egoclean.motion.steps.draw_clip_path, as trajectory_plot
    draws it), the anomalous `spans` (Segmented.spans) marked; returns PathDrawn.

    Reads the clip's trajectory (track_clip's output), fetched first from a remote root."""
    from egoclean.motion.steps import draw_clip_path

    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(job.layout.trajectory)])
        lay = stage.layout
        drawn = draw_clip_path(job.clip_id, lay.trajectory, lay.trajectory_plot, spans)
        return drawn.moved(stage.publish(drawn.files))


# ---------------------------------------------------------------------------- driver


def connect(cfg: RayConfig):
    """Connect to the cluster (cfg.address, else RAY_ADDRESS, else start a local Ray); returns the ray module."""
    import ray

    if not ray.is_initialized():
        address = cfg.address or os.environ.get("RAY_ADDRESS") or None
        # "local": a new Ray for this process. Left to itself, ray.init would join whatever
        # cluster last wrote /tmp/ray/ray_current_cluster on this machine, even a dead one.
        ray.init(address=address or "local", namespace=cfg.namespace, ignore_reinit_error=True,
                 log_to_driver=False, **({} if address else {"include_dashboard": False}))
    return ray


def actor_name(cfg: RayConfig, encoder: dict, index: int) -> str:
    """`<actor_name>-<hash of the encoder settings>-<index>`: runs with the same encoder share its actors."""
    digest = hashlib.sha1(json.dumps(encoder, sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.actor_name}-{digest}-{index}"


def encoder_actors(cfg: RayConfig, encoder: dict) -> list:
    """The named, detached encoder actors for these encoder settings: found if they exist, else created."""
    import ray

    remote = ray.remote(EncoderActor)
    handles = []
    for i in range(cfg.num_actors):
        handles.append(remote.options(
            name=actor_name(cfg, encoder, i), namespace=cfg.namespace, lifetime="detached", get_if_exists=True,
            max_restarts=cfg.actor_max_restarts, max_task_retries=cfg.actor_max_task_retries,
            # Threaded: many clips' encode calls wait at once while one thread runs the batches.
            max_concurrency=64, num_cpus=cfg.actor_num_cpus, num_gpus=cfg.actor_num_gpus,
            resources=dict(cfg.actor_resources) or None,
        ).remote(encoder, cfg.batch_size, cfg.batch_wait_s))
    return handles


def _short(e: BaseException) -> str:
    """A one-line error: Ray wraps task errors (RayTaskError) around the original; keep the cause's line."""
    cause = getattr(e, "cause", None) or e
    text = f"{type(cause).__name__}: {cause}"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:500] if lines else type(e).__name__


def run_clips(
    jobs: list[ClipJob],
    cfg: RayConfig,
    encoder: dict,
    source: dict,
    detection: dict | None = None,
    balance: float = 0.0,
    encode_kwargs: dict | None = None,
    on_done: Callable[[ClipResult], None] | None = None,
) -> list[ClipResult]:
    """Run every clip through fetch+rectify -> embed (actors) -> analyse+detect on Ray, and
    fetch+rectify -> track (the camera path) beside the embedding, then its picture once
    both branches are done.

    Each clip moves to its next stage as soon as its previous one is done; clips are
    spread over the actors round-robin. A clip whose stage raised (or whose worker died
    more than `task_retries` times) is reported failed with that stage and error (the
    first to fail); its other branch still runs to its end, and the others go on.
    `on_done(result)` is called in this process as each clip finishes (every task of it
    done or failed), in completion order. Returns the results in `jobs`' order."""
    from egoclean.core.errors import InvalidInputError

    cfg.validate()
    if len({j.clip_id for j in jobs}) != len(jobs):
        raise InvalidInputError("run_clips: a clip is listed twice")
    ray = connect(cfg)
    actors = encoder_actors(cfg, encoder)
    try:
        specs = ray.get([a.spec.remote() for a in actors], timeout=cfg.actor_start_timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(
            f"encoder actor(s) {actor_name(cfg, encoder, 0)}...: not started within {cfg.actor_start_timeout_s:g} s; "
            f"each needs {_needs_text(actor_needs(cfg))}, the cluster has free {ray.available_resources()}"
        ) from None
    t_rect = ray.remote(fetch_rectify).options(num_cpus=cfg.rectify_cpus, max_retries=cfg.task_retries,
                                               retry_exceptions=False)
    t_embed = ray.remote(embed_clip).options(num_cpus=cfg.embed_cpus, max_retries=cfg.task_retries,
                                             retry_exceptions=False)
    t_analyse = ray.remote(analyse_detect).options(num_cpus=cfg.analyse_cpus, max_retries=cfg.task_retries,
                                                   retry_exceptions=False)
    t_track = ray.remote(track_clip).options(num_cpus=cfg.trajectory_cpus, max_retries=cfg.task_retries,
                                             retry_exceptions=False)
    t_draw_path = ray.remote(draw_trajectory).options(num_cpus=cfg.analyse_cpus, max_retries=cfg.task_retries,
                                                      retry_exceptions=False)
    results = {j.clip_id: ClipResult(j.clip_id) for j in jobs}
    by_id = {j.clip_id: j for j in jobs}
    waiting: dict = {}  # ObjectRef -> (clip id, stage, actor slot)
    for i, j in enumerate(jobs):
        if j.store is None:
            Path(j.clip_dir).mkdir(parents=True, exist_ok=True)
        waiting[t_rect.remote(j, source, balance, encode_kwargs)] = (j.clip_id, "rectify", i % len(actors))

    def draw_path_when_ready(r: ClipResult, j: ClipJob, slot: int) -> None:
        # the picture marks the anomalous spans: it waits for both branches
        if r.tracked is not None and r.segmented is not None:
            waiting[t_draw_path.remote(j, r.segmented.spans)] = (r.clip_id, "trajectory_plot", slot)

    while waiting:
        ready, _ = ray.wait(list(waiting), num_returns=1)
        ref = ready[0]
        clip_id, stage, slot = waiting.pop(ref)
        r, j = results[clip_id], by_id[clip_id]
        try:
            out = ray.get(ref)
        except Exception as e:  # the task raised, or its worker/actor died past the retries
            error = _short(e)
            log.warning("clip %s failed in %s: %s", clip_id, stage, error)
            log.debug("%s", "".join(traceback.format_exception(e)))
            if r.failed_stage is None:  # the first failure is the clip's (a later one may follow from it)
                r.failed_stage, r.error = stage, error
        else:
            if stage == "rectify":
                r.fetched, r.camera, r.rectified = out
                waiting[t_embed.remote(actors[slot], specs[slot], j, r.rectified.video, cfg.send_windows,
                                       cfg.in_flight, cfg.encode_resend_s, actor_needs(cfg))] = (clip_id, "embed", slot)
                waiting[t_track.remote(j)] = (clip_id, "trajectory", slot)
            elif stage == "embed":
                r.embedded = out
                waiting[t_analyse.remote(j, dict(detection or {}), out.model, out.random_weights,
                                         r.rectified.video["duration_sec"], out.files)] = (clip_id, "analyse", slot)
            elif stage == "analyse":
                r.analysed, r.segmented, r.drawn = out
                draw_path_when_ready(r, j, slot)
            elif stage == "trajectory":
                r.tracked = out
                draw_path_when_ready(r, j, slot)
            else:
                r.path_drawn = out
        if on_done is not None and not any(c == clip_id for c, *_ in waiting.values()):
            on_done(r)  # nothing of this clip left running: done, or failed with what it finished
    return [results[j.clip_id] for j in jobs]


def actor_stats(cfg: RayConfig, encoder: dict) -> list[dict]:
    """stats() of the encoder actors for these settings (they must exist)."""
    import ray

    handles = [ray.get_actor(actor_name(cfg, encoder, i), namespace=cfg.namespace) for i in range(cfg.num_actors)]
    return ray.get([h.stats.remote() for h in handles])


