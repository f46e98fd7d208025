"""Dagster resources: the dataset source, encoder, rectification, detection, store, ground truth.

Each resource is a thin, configurable handle on an `egoclean` library object.
`build_resources(mapping)` builds all of them from a mapping of environment variables
(`egoclean.settings.Settings.from_env`: the variables and defaults of
`egoclean.core.defaults.ENVIRONMENT`, the README's configuration table). The definitions call
it with this process's environment when they load, so the demo and `dagster dev` need no
run config; the demo, the backfill and the tests call it with their own mapping.

HF_TOKEN is passed as a Dagster EnvVar, so only its name ever appears in run config or
the UI. The object store (an `s3://` data root or DuckLake data path) takes the usual
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL (s3fs and DuckDB
both read them).

Relative paths are relative to the directory Dagster runs in: start `dagster dev` from
the repository root (workspace.yaml's working directory).
"""


import dataclasses
import fnmatch
from typing import Any, Mapping

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from egoclean.core import defaults


class SourceResource(ConfigurableResource):
    """The Egocentric-10K source (egoclean.ingest.source): Hugging Face, a local copy or fsspec URL.

    The token is read from HF_TOKEN (an EnvVar in the definitions, else `egoclean.core.secrets`
    at run time); it is never logged or written to metadata.
    """

    url: str = defaults.DATASET_URL
    revision: str | None = None
    token: str | None = Field(default=None, description="HF token; set it as EnvVar('HF_TOKEN'), never a literal")
    endpoint: str | None = Field(default=None, description="Hugging Face endpoint (tests: a stand-in hub)")
    cache_dir: str | None = Field(default=None, description="shard-index cache (default: $EGOCLEAN_CACHE/index)")
    retries: int | None = Field(
        default=None, description=f"retries per read after the first try (default {defaults.SOURCE_RETRIES})")
    timeout: float | None = Field(
        default=None,
        description=f"seconds per request before it counts as failed (default {defaults.SOURCE_TIMEOUT_SEC:g})"
    )
    backoff: float | None = Field(
        default=None, description=f"first wait between retries, doubling (default {defaults.SOURCE_BACKOFF_SEC:g} s)")

    def open(self):
        """An `egoclean.ingest.source.Source` over the configured URL."""
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.core.secrets import hf_token
        from egoclean.ingest.source import open_source

        kwargs: dict[str, Any] = {}
        if self.endpoint:
            kwargs["endpoint"] = self.endpoint
        if self.cache_dir:
            kwargs["cache_dir"] = self.cache_dir
        for name in ("retries", "timeout", "backoff"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        token = self.token
        if isinstance(token, EnvVar):
            # outside a run (the backfill's discovery, a script) Dagster has not resolved it
            token = token.get_value()
        return open_source(self.url, revision=self.revision, token=token or hf_token(), **kwargs)


class EncoderResource(ConfigurableResource):
    """The V-JEPA 2 encoder (egoclean.embed.encoder): model id or folder, device, dtype, batch size."""

    model: str = defaults.MODEL_ID
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4

    def load(self):
        """Load the encoder (from the local HF cache or folder when offline)."""
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.embed.encoder import EncoderConfig, load_encoder

        return load_encoder(
            EncoderConfig(model=self.model, revision=self.revision, device=self.device, dtype=self.dtype)
        )


class RectifyResource(ConfigurableResource):
    """Rectification settings (egoclean.media.rectify): balance, and the libx264 crf/preset
    (None: the library's defaults, see docs/PERFORMANCE.md)."""

    balance: float = 0.0
    crf: int | None = None
    preset: str | None = None

    def encode_kwargs(self) -> dict:
        """crf/preset for rectify_video, leaving out unset ones so library defaults apply."""
        return {k: v for k, v in (("crf", self.crf), ("preset", self.preset)) if v is not None}


class DetectionResource(ConfigurableResource):
    """Anomaly detection parameters (egoclean.temporal.detection.DetectionParams); unset fields keep
    the library's defaults (EMA 0.15, Otsu on 256 bins, theta_off at half-way from the
    median, 3 windows on/off, spans >= 3.0 s, no separation guard)."""

    ema_alpha: float | None = None
    otsu_bins: int | None = None
    off_fraction: float | None = None
    on_windows: int | None = None
    off_windows: int | None = None
    min_duration_sec: float | None = None
    min_separation: float | None = None

    def params(self):
        """The DetectionParams these settings give (InvalidInputError for bad values)."""
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.temporal.detection import DetectionParams

        names = [f.name for f in dataclasses.fields(DetectionParams)]
        given = {k: getattr(self, k) for k in names if getattr(self, k, None) is not None}
        return DetectionParams(**given)


class StoreResource(ConfigurableResource):
    """The segment tables (egoclean.store.Store): a local DuckDB file, or a shared DuckLake
    (`ducklake:postgres:...`) whose new tables keep their Parquet files under data_path."""

    path: str = defaults.DB_PATH
    data_path: str | None = None
    busy_timeout_sec: float | None = Field(
        default=None, description="how long a write waits for a DuckDB file held by another process before "
        "failing the attempt (default: the library's 30 s); the asset's retry policy then retries the step")

    def store(self):
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.store import Store

        extra = {} if self.busy_timeout_sec is None else {"timeout_sec": self.busy_timeout_sec}
        return Store(self.path, data_path=self.data_path, **extra)


class ExportResource(ConfigurableResource):
    """Where and how the LeRobot v3.0 export is written (egoclean.export); episode defaults from EpisodeParams."""

    out: str = defaults.EXPORT_DIR
    resolution: int | None = None  # re-encode to this frame height; None: stream copy
    min_episode_sec: float | None = None
    max_episode_sec: float | None = None
    margin_sec: float | None = None
    split_cycles: bool = True
    cycles_per_episode: int | None = None

    def options(self):
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.export.episodes import EpisodeParams
        from egoclean.export import ExportOptions

        names = ("min_episode_sec", "max_episode_sec", "margin_sec", "cycles_per_episode")
        given = {k: getattr(self, k) for k in names}
        params = EpisodeParams(split_cycles=self.split_cycles, **{k: v for k, v in given.items() if v is not None})
        return ExportOptions(params=params, resolution=self.resolution)


class GroundTruthResource(ConfigurableResource):
    """Ground truth (egoclean.temporal.ground_truth): the packaged seed plus configured CSVs.

    The rules (a configured file replaces the seed's spans for its clips, one source per
    file, the judging rule) are egoclean.temporal.ground_truth's; this only says which files.
    """

    include_seed: bool = True
    paths: list[str] = []

    def load(self):
        """The GroundTruth in effect (egoclean.temporal.ground_truth.GroundTruth)."""
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.temporal.ground_truth import GroundTruth

        return GroundTruth.load(self.include_seed, self.paths)

    def fingerprint(self) -> str:
        """Changes when the configuration or one of its files changes (no parsing)."""
        # imported here, not at module top: loading the definitions must stay free of heavy modules
        from egoclean.temporal.ground_truth import fingerprint

        return fingerprint(self.include_seed, self.paths)


class DiscoveryResource(ConfigurableResource):
    """What the discovery sensor scans: `factory/worker` fnmatch patterns, bounded per tick."""

    scope: list[str] = [defaults.SCOPE]
    max_workers_per_tick: int = 4
    max_new_partitions_per_tick: int = 200

    def matches(self, factory: str, worker: str) -> bool:
        return any(fnmatch.fnmatchcase(f"{factory}/{worker}", p.strip().strip("/")) for p in self.scope)

    def factory_patterns(self) -> list[str]:
        return [p.strip().strip("/").split("/")[0] for p in self.scope]


def scope_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The discovery scope EGOCLEAN_SCOPE names (comma-separated patterns), default defaults.SCOPE."""
    # imported here, not at module top, like build_resources's
    from egoclean.settings import Settings

    return list(Settings.from_env(env).scope)


def build_resources(env: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Every resource of the definitions from a mapping of environment variables (None: os.environ).

    `overrides` replace or add whole resources by key (e.g. `rectify=RectifyResource(preset=...)`).
    """
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean.settings import Settings
    from egoclean_assets.io_manager import ClipIOManager, ClipStorage

    s = Settings.from_env(env)
    storage = ClipStorage(data_root=s.data_root, work_dir=s.work_dir)
    resources = {
        "source": SourceResource(
            url=s.source,
            revision=s.revision,
            # EnvVar keeps the value out of run config; resolved only inside the run.
            token=EnvVar("HF_TOKEN") if s.has_token else None,
            endpoint=s.endpoint,
            cache_dir=s.index_cache,
        ),
        "encoder": EncoderResource(model=s.model, device=s.device, dtype=s.dtype, batch_size=s.batch),
        "rectify": RectifyResource(),
        "detection": DetectionResource(),
        "store": StoreResource(path=s.db, data_path=s.db_data_path),
        "export": ExportResource(out=s.export_dir),
        "ground_truth": GroundTruthResource(include_seed=s.ground_truth_seed, paths=list(s.ground_truth)),
        "discovery": DiscoveryResource(scope=list(s.scope)),
        "storage": storage,
        "io_manager": ClipIOManager(storage=storage),
    }
    return resources | overrides
