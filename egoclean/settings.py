"""EgoClean's settings, read from a mapping of environment variables (defaults.ENVIRONMENT).

The one reader of every `EGOCLEAN_*` variable, for the command line, the Dagster resources
(egoclean_assets.resources.build_resources), the execution mode (egoclean_assets.cluster),
the Ray stages' configuration (`Settings.ray_config`), the video limits
(egoclean.media.video), the shard-index cache (egoclean.ingest.source), the demo, the
backfill and the tests: `Settings.from_env(mapping)`, or `current()` for this process.
Unset or empty variables take the defaults in egoclean.core.defaults; a bad value is a one-line
`InvalidInputError` naming the variable. The Hugging Face token is never kept here: only
whether HF_TOKEN is set (`has_token`); egoclean.core.secrets reads it where it is used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError
from egoclean.core.options import env_memory, env_whole

# The largest encoder batch that makes sense (windows per forward pass), as `egoclean embed --batch`.
MAX_BATCH = 1024
# Bounds of the whole-number variables (larger values are typing mistakes, not settings).
MAX_CLIPS_PER_RUN = 100_000
MAX_PIXELS_LIMIT = 10**12
# One variable per field of egoclean.cluster.ray_pipeline.RayConfig: EGOCLEAN_RAY_NUM_ACTORS -> num_actors.
RAY_PREFIX = "EGOCLEAN_RAY_"


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    v = env.get(name)
    return default if v is None or str(v).strip() == "" else str(v).strip()


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidInputError(f"environment variable {name}: expected 1 or 0, got {raw[:40]!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _get(env, name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise InvalidInputError(f"environment variable {name}: expected one of {', '.join(choices)}, got {raw[:40]!r}")
    return raw.lower()


@dataclass(frozen=True)
class Settings:
    """Every setting of defaults.ENVIRONMENT, typed (the token excepted: see `has_token`)."""

    source: str = defaults.DATASET_URL
    revision: str | None = None
    endpoint: str | None = None
    has_token: bool = False
    data_root: str = defaults.DATA_ROOT
    work_dir: str | None = None
    model: str = defaults.MODEL_ID
    device: str = defaults.ENCODER_DEVICE
    dtype: str = defaults.ENCODER_DTYPE
    batch: int = defaults.ENCODER_BATCH
    db: str = defaults.DB_PATH
    db_data_path: str | None = None
    ground_truth: tuple[str, ...] = ()
    ground_truth_seed: bool = True
    scope: tuple[str, ...] = (defaults.SCOPE,)
    export_dir: str = defaults.EXPORT_DIR
    cache: str = defaults.CACHE_DIR
    execution: str = defaults.EXECUTION
    clips_per_run: int = defaults.CLIPS_PER_RUN
    # The EGOCLEAN_RAY_* variables as given, (name, text) sorted; typed and checked by ray_config(),
    # which needs the Ray stages' module (imported in Ray mode only).
    ray: tuple[tuple[str, str], ...] = ()
    max_pixels: int = defaults.MAX_PIXELS
    hwaccel: str = defaults.HWACCEL
    sql_memory: str = defaults.SQL_MEMORY  # a DuckDB size (egoclean.core.options.memory_size)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """The settings a mapping of environment variables gives (None: this process's environment)."""
        env = os.environ if env is None else env
        scope = tuple(s.strip() for s in (_get(env, "EGOCLEAN_SCOPE", defaults.SCOPE) or "").split(",") if s.strip())
        return cls(
            source=_get(env, "EGOCLEAN_SOURCE", defaults.DATASET_URL),
            revision=_get(env, "EGOCLEAN_REVISION"),
            endpoint=_get(env, "HF_ENDPOINT"),
            has_token=_get(env, "HF_TOKEN") is not None,
            data_root=_get(env, "EGOCLEAN_DATA_ROOT", defaults.DATA_ROOT),
            work_dir=_get(env, "EGOCLEAN_WORK_DIR"),
            model=_get(env, "EGOCLEAN_MODEL", defaults.MODEL_ID),
            device=_get(env, "EGOCLEAN_DEVICE", defaults.ENCODER_DEVICE),
            dtype=_get(env, "EGOCLEAN_DTYPE", defaults.ENCODER_DTYPE),
            batch=env_whole(env, "EGOCLEAN_BATCH", defaults.ENCODER_BATCH, 1, MAX_BATCH),
            db=_get(env, "EGOCLEAN_DB", defaults.DB_PATH),
            db_data_path=_get(env, "EGOCLEAN_DB_DATA_PATH"),
            ground_truth=tuple(p for p in (_get(env, "EGOCLEAN_GROUND_TRUTH") or "").split(os.pathsep) if p),
            ground_truth_seed=_flag(env, "EGOCLEAN_GROUND_TRUTH_SEED", True),
            scope=scope or (defaults.SCOPE,),
            export_dir=_get(env, "EGOCLEAN_EXPORT", defaults.EXPORT_DIR),
            cache=_get(env, "EGOCLEAN_CACHE", defaults.CACHE_DIR),
            execution=_choice(env, "EGOCLEAN_EXECUTION", defaults.EXECUTION_CHOICES, defaults.EXECUTION),
            clips_per_run=env_whole(env, "EGOCLEAN_CLIPS_PER_RUN", defaults.CLIPS_PER_RUN, 1, MAX_CLIPS_PER_RUN),
            ray=tuple(sorted((k, str(v).strip()) for k, v in env.items()
                             if k.startswith(RAY_PREFIX) and str(v).strip())),
            max_pixels=env_whole(env, "EGOCLEAN_MAX_PIXELS", defaults.MAX_PIXELS, 1, MAX_PIXELS_LIMIT),
            hwaccel=_choice(env, "EGOCLEAN_HWACCEL", defaults.HWACCEL_CHOICES, defaults.HWACCEL),
            sql_memory=env_memory(env, "EGOCLEAN_SQL_MEMORY", defaults.SQL_MEMORY),
        )

    def but(self, **changes) -> "Settings":
        """A copy with some settings changed (e.g. a command-line option over the variable)."""
        return replace(self, **changes)

    @property
    def index_cache(self) -> str:
        """The shard-index cache folder: `index/` in EGOCLEAN_CACHE (default defaults.CACHE_DIR)."""
        return os.path.join(os.path.expanduser(self.cache), "index")

    def ray_config(self):
        """The egoclean.cluster.ray_pipeline.RayConfig the EGOCLEAN_RAY_* variables give (unset fields:
        its defaults; RAY_ADDRESS is Ray's own). InvalidInputError naming the variable when one is
        not a RayConfig field or its value is bad."""
        # imported here: only Ray mode needs the Ray stages' module
        from egoclean.cluster.ray_pipeline import RayConfig

        fields = {f.name: f for f in dataclasses.fields(RayConfig)}
        base = RayConfig()
        values: dict[str, Any] = {}
        for name, raw in self.ray:
            key = name[len(RAY_PREFIX):].lower()
            if key not in fields:
                known = ", ".join(RAY_PREFIX + k.upper() for k in fields)
                raise InvalidInputError(f"environment variable {name}: not a Ray setting (known: {known})")
            values[key] = _ray_value(name, raw, getattr(base, key))
            try:  # each variable alone first, so an error names the variable that caused it
                RayConfig(**{key: values[key]}).validate()
            except InvalidInputError as e:
                raise InvalidInputError(f"environment variable {name}: {e}") from None
        return RayConfig(**values).validate()

    def open_source(self, **kwargs):
        """An egoclean.ingest.source.Source over `source` (the token from egoclean.core.secrets at use)."""
        from egoclean.ingest.source import open_source  # imported at use: listing needs no fsspec until then

        if self.endpoint and "endpoint" not in kwargs:
            kwargs["endpoint"] = self.endpoint
        if self.index_cache and "cache_dir" not in kwargs:
            kwargs["cache_dir"] = self.index_cache
        return open_source(self.source, revision=self.revision, **kwargs)


def _ray_value(name: str, raw: str, default: Any) -> Any:
    """The text of EGOCLEAN_RAY_<FIELD> as the type of the field's default."""
    if isinstance(default, dict):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise InvalidInputError(f"environment variable {name}: expected a JSON object such as "
                                    f"{{\"GPU\": 1}}, got {raw[:40]!r}")
        return value
    if isinstance(default, bool):  # none today: a new one gets its parser here
        raise InvalidInputError(f"environment variable {name}: boolean Ray settings are not read")
    if isinstance(default, int):
        text = raw.removeprefix("-")
        if not (len(raw) <= 18 and text.isascii() and text.isdigit()):
            raise InvalidInputError(f"environment variable {name}: expected a whole number, got {raw[:40]!r}")
        return int(raw)
    if isinstance(default, float):
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidInputError(f"environment variable {name}: expected a number, got {raw[:40]!r}")
        return value
    return raw  # text: the address, namespace and actor name


def current() -> Settings:
    """The settings of this process's environment, read now (a bad variable: InvalidInputError naming it)."""
    return Settings.from_env(os.environ)
