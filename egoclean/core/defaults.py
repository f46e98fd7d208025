"""Every default and fixed rule of EgoClean, in one torch-free module.

The library, the command line and the Dagster resources all take their defaults from
here, so a default changes in one place. Importing this module imports nothing heavy
(no torch, cv2, av, duckdb or matplotlib): the Dagster definitions use it when they load.

`ENVIRONMENT` lists the environment variables that configure EgoClean, with their
defaults and meaning; `egoclean.settings` reads them, and the README's configuration
table is checked against it (tests/core/test_defaults.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# -- where things are ---------------------------------------------------------------

# The gated Egocentric-10K dataset on the Hugging Face hub.
DATASET_REPO = "builddotai/Egocentric-10K"
DATASET_URL = f"hf://datasets/{DATASET_REPO}"
# V-JEPA 2 ViT-L, 64-frame clips at 256 px: the SPEC's encoder.
MODEL_ID = "facebook/vjepa2-vitl-fpc64-256"
# Outputs by factory / worker / clip (egoclean.core.layout); a local folder or fsspec URL.
DATA_ROOT = "data"
# The DuckDB segment database.
DB_PATH = "data/egoclean.duckdb"
# The LeRobot v3.0 dataset the export asset writes (egoclean.export).
EXPORT_DIR = "data/lerobot"
# Shard-index cache (tar headers only, never video) lives in CACHE_DIR/index.
CACHE_DIR = "~/.cache/egoclean"
# Workers the discovery sensor scans: comma-separated `factory/worker` fnmatch patterns.
SCOPE = "factory_001/worker_001"

# -- encoder --------------------------------------------------------------------------

ENCODER_DEVICE = "auto"  # cuda, then mps, then cpu
ENCODER_DTYPE = "auto"  # bf16 on CUDA, else fp32
ENCODER_BATCH = 4  # windows per forward pass

# -- ground truth and evaluation --------------------------------------------------------

# A detection matches a ground-truth span at temporal IoU >= this (SPEC).
IOU_THRESHOLD = 0.5
# Judging rule: ground truth states the duration of the clip it was labelled on; a clip
# whose duration differs by more than this is not that clip (e.g. a synthetic clip that
# reuses a real clip id), and its detections are not judged against those labels.
LABELLED_DURATION_TOLERANCE_SEC = 1.5
# Parsing rule: durations in annotation tables are rounded (the SPEC gives "~1200 s"),
# and the SPEC's own table ends a span at 07:13 in a clip it lists as 431 s. A span end
# up to this far past the stated clip duration is accepted as written; beyond, an error.
SPAN_END_TOLERANCE_SEC = 5.0
# The ground-truth source name of the packaged seed table (egoclean/data/ground_truth_seed.csv).
SEED_SOURCE = "seed"
# A synthetic dataset's true camera path of each clip, beside its shards in the worker's
# folder: `<clip_id>` + this, TUM format (timestamp tx ty tz qx qy qz qw; metres).
SYNTH_TRAJECTORY_SUFFIX = ".tum.txt"

# -- execution ------------------------------------------------------------------------

EXECUTION = "local"  # or "ray" (egoclean_assets.cluster)
EXECUTION_CHOICES = ("local", "ray")
# clips one Ray-mode run takes (local mode: one clip per run). 64: submitting a run costs about the
# same at any K, so per clip a quarter of K = 16's; a failed run leaves up to 64 clips to re-run
# (docs/SCALE.md, "Submission in Ray mode").
CLIPS_PER_RUN = 64

# -- bad-input limits -------------------------------------------------------------------

# The largest frame (width x height) a video may declare: 8K UHD (egoclean.media.video).
MAX_PIXELS = 7680 * 4320

# -- video hardware ---------------------------------------------------------------------

# Decoder/encoder choice (egoclean.media.video): `auto` tries NVDEC/NVENC and falls back to
# the CPU codecs, `cpu` never tries them, `nvidia` requires them.
HWACCEL = "auto"
HWACCEL_CHOICES = ("auto", "cpu", "nvidia")

# -- camera motion (egoclean.motion) ------------------------------------------------------

# Monocular scale: the height of the camera above the floor (a standing worker's head).
CAMERA_HEIGHT_M = 1.6
# Visual odometry tracks frames resized so that their long side is this many pixels.
VO_LONG_SIDE = 640
# A clip shorter than this cannot initialise (two views with parallax): a one-line error.
VO_MIN_FRAMES = 10
# The camera_trajectory checks: at least this fraction of a clip's frames tracked (an error
# below), and no step faster than a head moves (warnings): metres per second over metric
# segments (a brisk walk is ~2), degrees per second of turning (fast head turns peak at ~400-500).
TRAJECTORY_MIN_TRACKED = 0.8
HEAD_MAX_SPEED_M_S = 3.0
HEAD_MAX_ANGULAR_RATE_DEG_S = 600.0

# -- retries and timeouts --------------------------------------------------------------

# Every retried operation (egoclean.core.retry) waits base * 2**(n-1) s after its n-th failure,
# at most its cap, each wait drawn from [(1 - RETRY_JITTER) * w, w] so that clients that
# failed together (parallel reads, writers queued on one lock) do not retry in lockstep.
RETRY_JITTER = 0.5
# Dataset reads and listings (egoclean.ingest.source): retries after the first try, the first
# wait, the longest wait, and each request's timeout.
SOURCE_RETRIES = 4
SOURCE_BACKOFF_SEC = 0.5
SOURCE_BACKOFF_CAP_SEC = 8.0
SOURCE_TIMEOUT_SEC = 30.0
# A remote data root (egoclean.core.object_store.RemoteRoot): attempts per operation (the
# first included), the first and longest waits, each request's timeout.
OBJECT_STORE_ATTEMPTS = 4
OBJECT_STORE_BACKOFF_SEC = 0.25
OBJECT_STORE_BACKOFF_CAP_SEC = 5.0
OBJECT_STORE_TIMEOUT_SEC = 60.0
# A span selected for export (`egoclean export --sql`) may end this far past the clip's
# recorded duration (the last frame's time rounding); further is outside the clip.
EXPORT_SPAN_END_TOLERANCE_SEC = 0.05
# Run monitoring (egoclean_assets.run_launcher): how often a run worker says it is alive,
# and how long without a word means its machine is gone (judged from another machine;
# generous, since the clocks of two machines differ by some seconds).
RUN_HEARTBEAT_SEC = 10.0
RUN_HEARTBEAT_TIMEOUT_SEC = 300.0
# The segment store (egoclean.store) while another process holds the DuckDB file, or a
# DuckLake commit conflicted with another writer: attempts in all, seconds in all, the
# first and longest waits.
STORE_ATTEMPTS = 60
STORE_TIMEOUT_SEC = 30.0
STORE_BACKOFF_SEC = 0.05
STORE_BACKOFF_CAP_SEC = 1.0

# -- command line ---------------------------------------------------------------------

# `egoclean sql`: seconds to wait while a writer holds the database.
SQL_TIMEOUT_SEC = 10.0
# SQL typed by a user (`egoclean sql`, `egoclean export --sql`) may use this much memory
# (a DuckDB size); nothing is spilled to disk, so a query that needs more fails with one
# line naming the limit and EGOCLEAN_SQL_MEMORY, instead of taking 80 % of RAM and the disk.
SQL_MEMORY = "2GiB"


@dataclass(frozen=True)
class EnvVar:
    """One environment variable that configures EgoClean."""

    name: str
    default: str | None  # as the text a user would set; None: unset
    meaning: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("HF_TOKEN", None, "token for the gated dataset (or `.env` in the working directory)"),
    EnvVar("HF_ENDPOINT", None,
           "Hugging Face endpoint (huggingface_hub's default when unset; the tests use a stand-in hub)"),
    EnvVar("EGOCLEAN_SOURCE", DATASET_URL,
           "dataset: hf:// URL, local folder in the same layout, or any fsspec URL"),
    EnvVar("EGOCLEAN_REVISION", None, "pin a dataset revision (hf:// only)"),
    EnvVar("EGOCLEAN_DATA_ROOT", DATA_ROOT,
           "where outputs go (local, or an fsspec URL such as `s3://bucket/egoclean`)"),
    EnvVar("EGOCLEAN_WORK_DIR", None,
           "local processing folder when the data root is remote (default: a folder in the system temp dir)"),
    EnvVar("EGOCLEAN_MODEL", MODEL_ID, "V-JEPA 2 hub id or local folder"),
    EnvVar("EGOCLEAN_DEVICE", ENCODER_DEVICE, "encoder device: auto, cuda, mps or cpu"),
    EnvVar("EGOCLEAN_DTYPE", ENCODER_DTYPE, "encoder precision: auto, bf16, fp16 or fp32"),
    EnvVar("EGOCLEAN_BATCH", str(ENCODER_BATCH), "windows per encoder forward pass"),
    EnvVar("EGOCLEAN_DB", DB_PATH,
           "the segment tables: a DuckDB file, or a shared DuckLake `ducklake:postgres:<libpq keywords>`"),
    EnvVar("EGOCLEAN_DB_DATA_PATH", None,
           "where a new shared DuckLake keeps its Parquet files (`s3://bucket/tables/` or a shared folder)"),
    EnvVar("EGOCLEAN_GROUND_TRUTH", None,
           "extra ground-truth CSVs (`:`-separated), format of `egoclean/data/ground_truth_seed.csv`; "
           "they replace the seed's spans for the clips they cover"),
    EnvVar("EGOCLEAN_GROUND_TRUTH_SEED", "1",
           "`0` leaves the packaged seed ground truth out (the synthetic demo does, as its clip ids reuse the seed's)"),
    EnvVar("EGOCLEAN_SCOPE", SCOPE,
           "workers the discovery sensor and job scan: comma-separated fnmatch patterns such as `factory_00*/*`"),
    EnvVar("EGOCLEAN_EXPORT", EXPORT_DIR, "the LeRobot v3.0 dataset directory the `lerobot_dataset` asset writes"),
    EnvVar("EGOCLEAN_EXECUTION", EXECUTION,
           "`local` (one run per clip, no Ray) or `ray` (batched steps on a Ray cluster)"),
    EnvVar("EGOCLEAN_CLIPS_PER_RUN", str(CLIPS_PER_RUN), "clips one Ray-mode run takes"),
    EnvVar("EGOCLEAN_RAY_*", None, "the Ray cluster's settings, one variable per RayConfig field (deploy/ray.env)"),
    EnvVar("EGOCLEAN_CACHE", CACHE_DIR, "shard-index cache (tar headers only), in its `index/` folder"),
    EnvVar("EGOCLEAN_MAX_PIXELS", str(MAX_PIXELS),
           "largest frame (width x height) a video may declare; larger ones are refused from the header"),
    EnvVar("EGOCLEAN_SQL_MEMORY", SQL_MEMORY,
           "memory a query typed by a user may use (`egoclean sql`, `export --sql`): a size such as `2GiB` or "
           "`500MB`; nothing spills to disk, a query that needs more fails naming this variable"),
    EnvVar("EGOCLEAN_HWACCEL", HWACCEL,
           "video decode/encode: `auto` (NVDEC/NVENC when they open, else CPU), `cpu`, or `nvidia` (required)"),
)
