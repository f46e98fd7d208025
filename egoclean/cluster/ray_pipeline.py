"""Many clips through a Ray cluster: fetch+rectify tasks, resident encoder actors fed by many clips, CPU analysis tasks.

The stages are the same library calls the single-process path makes; Ray only decides
where they run:

- `fetch_rectify` (a task, `rectify_cpus`, bounded retries): ranged read of the raw clip,
  intrinsics, rectification; the raw clip is deleted once the rectified one is written.
- `EncoderActor` (named, detached, restartable): loads the encoder once and keeps it;
  `encode` calls from many clips are queued and run together, so one forward pass
  holds windows of several clips. A crashed actor is restarted by Ray
  (`max_restarts`) and its unfinished calls are sent again (`max_task_retries`).
- `embed_clip` (a task): decodes and preprocesses one clip (CPU), sends its windows to
  an actor a few at a time and writes `<prefix>_emb.npy` etc. Several of these run at
  once, one per clip, and feed the same actor.
- `analyse_detect` (a task): similarity analysis, detection, the two pictures.

`run_clips` drives a list of clips through these stages, each clip as soon as its
previous stage is done, and reports every clip as done or failed (with the stage and
the error) without letting one clip's failure stop the others. Rows go to the store
from the driver (`on_done` callback), since the store has one writer.

Nothing here imports Ray at module load: `import ray` happens where it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

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
    task_retries: int = 3  # retries of a task whose worker died (not of errors it raised)
    actor_start_timeout_s: float = 600.0  # an actor the cluster cannot place fails the run instead of waiting forever

    def validate(self) -> "RayConfig":
        """Raise InvalidInputError naming the first bad setting."""
        from egoclean.core.errors import InvalidInputError

        for name in ("num_actors", "batch_size", "send_windows", "in_flight"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidInputError(f"ray setting {name}={v!r}: must be an integer >= 1")
        for name in ("actor_num_gpus", "actor_num_cpus", "rectify_cpus", "embed_cpus", "analyse_cpus", "batch_wait_s",
                     "actor_start_timeout_s"):
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
        self.dir = Path(tempfile.mkdtemp(prefix=f"{job.clip_id}-", dir=base))
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


@dataclass
class ClipResult:
    """What happened to one clip: the stages' results, or the stage that failed and why."""

    clip_id: str
    stages: dict[str, dict] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed_stage is None


# ---------------------------------------------------------------------------- stages


def fetch_rectify(job: ClipJob, source: dict, balance: float = 0.0, encode_kwargs: dict | None = None) -> dict:
    """Fetch the raw clip, validate and scale the intrinsics, rectify; delete the raw clip.

    `source` is `open_source`'s keyword arguments without the token (read on the node
    from HF_TOKEN, so it never travels in a task argument)."""
    from egoclean.core.ids import ClipId
    from egoclean.core.secrets import hf_token
    from egoclean.ingest.source import open_source

    clip = ClipId.parse(job.clip_id)
    src = open_source(**source, token=hf_token())
    with _Staging(job) as stage:
        return _fetch_rectify(job, stage, clip, src, source, balance, encode_kwargs)


def _fetch_rectify(job, stage, clip, src, source, balance, encode_kwargs) -> dict:
    from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
    from egoclean.media.rectify import rectify_video
    from egoclean.media.video import probe

    t0 = time.perf_counter()
    lay = stage.layout
    fetched = src.fetch_clip(clip, lay.raw_dir, progress=False)
    fetch_s = time.perf_counter() - t0
    info = probe(fetched.mp4_path)
    where = f"{source.get('url')}/{clip.worker_path}/intrinsics.json"
    fisheye = FisheyeIntrinsics.from_dict(src.read_intrinsics(clip.factory_dir, clip.worker_dir), source=where)
    rect = rectified_intrinsics(fisheye, info.width, info.height, balance=balance)
    intr_path = rect.save(lay.intrinsics)
    out = lay.rectified
    result = rectify_video(fetched.mp4_path, rect, out, progress=False, **(encode_kwargs or {}))
    raw_files = {"mp4": str(fetched.mp4_path), "sidecar": str(fetched.sidecar_path)}
    for p in raw_files.values():
        Path(p).unlink(missing_ok=True)
    published = stage.publish({"json": str(intr_path), "mp4": str(out)})
    raw_files = {k: job.layout.path(lay.relative(v)) for k, v in raw_files.items()}
    with_raw = Path(lay.raw_dir)
    if with_raw.is_dir() and not any(with_raw.iterdir()):
        with_raw.rmdir()
    return {
        "raw": {"files": raw_files, "video": info.as_dict(), "sidecar": dict(fetched.sidecar),
                "shard": getattr(fetched.shard, "name", None) or str(fetched.shard),
                "size_bytes": fetched.size_bytes, "fetch_seconds": fetch_s},
        "intrinsics": {"json": published["json"], "rectified": rect.to_dict()},
        "rectified": {**{k: v for k, v in result.items()}, "mp4": published["mp4"]},
        "pid": os.getpid(),
    }


class EncoderActor:
    """A resident V-JEPA 2 encoder: loaded once, it runs windows queued by many clips in shared batches."""

    def __init__(self, encoder: dict, batch_size: int = 8, wait_s: float = 0.05):
        from egoclean.embed.encoder import EncoderConfig, load_encoder

        t0 = time.perf_counter()
        self.enc = load_encoder(EncoderConfig(**encoder))
        self.load_seconds = time.perf_counter() - t0
        self.load_id = uuid.uuid4().hex[:12]  # a new one per load: a restart is visible
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
        e = self.enc
        return {"frames_per_window": e.frames_per_window, "crop": e.crop, "shortest_edge": e.shortest_edge,
                "describe": e.describe(), "preprocess_source": getattr(e, "preprocess_source", None),
                "random_weights": bool(e.random_weights), "model": e.model_id, "load_id": self.load_id,
                "device": str(e.device), "dtype": str(e.dtype).replace("torch.", "")}

    def encode(self, clip_id: str, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(emb (B, hidden), temb (B, T, hidden)) for uint8 windows (B, F, crop, crop, 3) of one clip."""
        slot: dict = {}
        done = threading.Event()
        self._q.put((clip_id, windows, done, slot))
        done.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["emb"], slot["temb"]

    def stats(self) -> dict:
        """Load id, pid, batches run (and how many mixed clips), windows, busy time, the recent batches."""
        return {"load_id": self.load_id, "pid": os.getpid(), "load_seconds": self.load_seconds,
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


def embed_clip(actor, spec: dict, job: ClipJob, send_windows: int = 2, in_flight: int = 2) -> dict:
    """Decode one rectified clip, send its windows to `actor`, write its embedding files.

    Same windows, preprocessing and meta as `egoclean.embed.encoder.embed_video`; only the
    forward passes happen in the actor, batched with other clips' windows."""
    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(job.layout.rectified)])
        return _embed_clip(actor, spec, job, stage, send_windows, in_flight)


def _embed_clip(actor, spec: dict, job: ClipJob, stage: _Staging, send_windows: int, in_flight: int) -> dict:
    import ray

    from egoclean.embed.embeddings import Embeddings
    from egoclean.embed.encoder import _WindowStream, embedding_meta
    from egoclean.core.errors import VideoError
    from egoclean.media.prefetch import read_ahead
    from egoclean.media.video import probe
    from egoclean.embed.windows import n_windows, window_stride

    path = stage.layout.rectified
    info = probe(path)
    F = int(spec["frames_per_window"])
    stride = window_stride(info.fps)
    if n_windows(info.n_frames, info.fps, F) == 0:
        raise VideoError(f"video {path}: {info.n_frames} frames at {info.fps:g} fps is shorter than one "
                         f"{F}-frame window ({F / info.fps:.2f} s): nothing to embed")
    shape = SimpleNamespace(frames_per_window=F, crop=int(spec["crop"]), shortest_edge=int(spec["shortest_edge"]))
    stream = _WindowStream(path, shape, stride, send_windows)
    t0 = time.perf_counter()
    pending: deque = deque()
    embs, tembs, starts = [], [], []

    def collect_one():
        s, ref = pending.popleft()
        emb, temb = ray.get(ref)
        embs.append(emb)
        tembs.append(temb)
        starts.extend(s)

    for s, windows in read_ahead(stream):
        pending.append((list(s), actor.encode.remote(job.clip_id, windows.numpy())))
        while len(pending) >= in_flight:
            collect_one()
    while pending:
        collect_one()
    if not starts:
        raise VideoError(f"video {path}: decoded only {stream.n_decoded} frames (header says {info.n_frames}); "
                         f"fewer than one {F}-frame window")
    ts = np.asarray(starts, dtype=np.float64) / info.fps
    meta = embedding_meta(spec["describe"], spec["preprocess_source"], path, info, stream.n_decoded, stride,
                          len(starts))
    emb = Embeddings(emb=np.concatenate(embs), temb=np.concatenate(tembs), ts=ts, meta=meta)
    files = stage.publish({k: str(v) for k, v in emb.save(stage.layout.embeddings).items()})
    return {"files": files, "windows": len(emb), "seconds": time.perf_counter() - t0,
            "emb_shape": list(emb.emb.shape), "temb_shape": list(emb.temb.shape), "stride": stride,
            "n_frames": stream.n_decoded, "load_id": spec["load_id"], "model": spec["model"],
            "random_weights": spec["random_weights"], "device": spec["device"], "dtype": spec["dtype"]}


def analyse_detect(job: ClipJob, params: dict, video: dict, model: str, random_weights: bool,
                   embeddings: dict | None = None) -> dict:
    """Similarity analysis, detection (segments JSON) and the two pictures of one clip.

    `embeddings`: the embedding files (role -> path under `clip_dir`), fetched first from a remote root."""
    with _Staging(job) as stage:
        stage.fetch([job.layout.relative(p) for p in (embeddings or {}).values()])
        return _analyse_detect(job, stage, params, video, model, random_weights)


def _analyse_detect(job: ClipJob, stage: _Staging, params: dict, video: dict, model: str,
                    random_weights: bool) -> dict:
    from egoclean.core import atomic
    from egoclean.temporal.analysis import analyse
    from egoclean.temporal.detection import DetectionParams, detect
    from egoclean.embed.embeddings import Embeddings
    from egoclean.temporal.ground_truth import judge
    from egoclean.temporal.plots import plot_detection, plot_diagnostics
    from egoclean.temporal.segments import segments_document

    lay = stage.layout
    emb = Embeddings.load(lay.embeddings, mmap=True)
    t0 = time.perf_counter()
    an = analyse(emb, matrices=True)
    analyse_s = time.perf_counter() - t0
    an_files = an.save(lay.analysis)
    t0 = time.perf_counter()
    det = detect(emb, DetectionParams(**params))
    detect_s = time.perf_counter() - t0
    seg = atomic.write_json(lay.segments, segments_document(job.clip_id, det, model, random_weights,
                                                            video["duration_sec"]))
    title = f"{job.clip_id} - {model}" + (" (random weights)" if random_weights else "")
    diag = plot_diagnostics(an, lay.diagnostics_plot, title)
    # the spans the check judges against, drawn only when it judges them
    verdict = judge(job.clip_id, det.spans, job.ground_truth, video["duration_sec"])
    detp = plot_detection(det, lay.detection_plot, title, truth=verdict.truth if verdict.judged else None)
    an_files = stage.publish({k: str(v) for k, v in an_files.items()})
    pub = stage.publish({"json": str(seg), "diagnostics": str(diag), "detection": str(detp)})
    del emb  # its memory map, before the staging folder goes
    return {
        "similarity": {"files": an_files, "period_sec": an.period_sec,
                       "step_sec": float(an.step_sec), "windows": int(len(an.ts)),
                       "matrix_size": int(an.sim_mean.shape[0]), "subsampled": bool(an.matrices_subsampled),
                       "seconds": analyse_s},
        "segments": {"json": pub["json"], "detection": det, "seconds": detect_s},
        "plots": {"diagnostics": pub["diagnostics"], "detection": pub["detection"]},
    }


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
    """Run every clip through fetch+rectify -> embed (actors) -> analyse+detect on Ray.

    Each clip moves to its next stage as soon as its previous one is done; clips are
    spread over the actors round-robin. A clip whose stage raised (or whose worker died
    more than `task_retries` times) is reported failed with that stage and error; the
    others go on. `on_done(result)` is called in this process as each clip finishes
    (done or failed), in completion order. Returns the results in `jobs`' order."""
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
            f"each needs num_gpus={cfg.actor_num_gpus:g} num_cpus={cfg.actor_num_cpus:g} resources="
            f"{cfg.actor_resources or {}}, the cluster has free {ray.available_resources()}"
        ) from None
    t_rect = ray.remote(fetch_rectify).options(num_cpus=cfg.rectify_cpus, max_retries=cfg.task_retries,
                                               retry_exceptions=False)
    t_embed = ray.remote(embed_clip).options(num_cpus=cfg.embed_cpus, max_retries=cfg.task_retries,
                                             retry_exceptions=False)
    t_analyse = ray.remote(analyse_detect).options(num_cpus=cfg.analyse_cpus, max_retries=cfg.task_retries,
                                                   retry_exceptions=False)
    results = {j.clip_id: ClipResult(j.clip_id) for j in jobs}
    by_id = {j.clip_id: j for j in jobs}
    waiting: dict = {}  # ObjectRef -> (clip id, stage)
    for i, j in enumerate(jobs):
        if j.store is None:
            Path(j.clip_dir).mkdir(parents=True, exist_ok=True)
        waiting[t_rect.remote(j, source, balance, encode_kwargs)] = (j.clip_id, "rectify", i % len(actors))

    def finish(r: ClipResult) -> None:
        if on_done is not None:
            on_done(r)

    while waiting:
        ready, _ = ray.wait(list(waiting), num_returns=1)
        ref = ready[0]
        clip_id, stage, slot = waiting.pop(ref)
        r, j = results[clip_id], by_id[clip_id]
        try:
            out = ray.get(ref)
        except Exception as e:  # the task raised, or its worker/actor died past the retries
            r.failed_stage, r.error = stage, _short(e)
            log.warning("clip %s failed in %s: %s", clip_id, stage, r.error)
            log.debug("%s", "".join(traceback.format_exception(e)))
            finish(r)
            continue
        r.stages[stage] = out
        if stage == "rectify":
            waiting[t_embed.remote(actors[slot], specs[slot], j, cfg.send_windows, cfg.in_flight)] = (
                clip_id, "embed", slot)
        elif stage == "embed":
            video = {k: out_v for k, out_v in r.stages["rectify"]["rectified"].items()}
            waiting[t_analyse.remote(j, dict(detection or {}), video, out["model"], out["random_weights"],
                                     out["files"])] = (
                clip_id, "analyse", slot)
        else:
            finish(r)
    return [results[j.clip_id] for j in jobs]


def actor_stats(cfg: RayConfig, encoder: dict) -> list[dict]:
    """stats() of the encoder actors for these settings (they must exist)."""
    import ray

    handles = [ray.get_actor(actor_name(cfg, encoder, i), namespace=cfg.namespace) for i in range(cfg.num_actors)]
    return ray.get([h.stats.remote() for h in handles])


