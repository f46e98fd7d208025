"""EgoClean's settings, read from a mapping of environment variables (defaults.ENVIRONMENT).

One reader for the command line, the Dagster resources (egoclean_assets.resources.
build_resources), the demo, the backfill and the tests: `Settings.from_env(mapping)`.
Unset or empty variables take the defaults in egoclean.core.defaults; a bad value is a one-line
`InvalidInputError` naming the variable. The Hugging Face token is never kept here: only
whether HF_TOKEN is set (`has_token`); egoclean.core.secrets reads it where it is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Mapping

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError
from egoclean.core.options import env_whole

# The largest encoder batch that makes sense (windows per forward pass), as `egoclean embed --batch`.
MAX_BATCH = 1024


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
    cache: str | None = None  # None: egoclean.ingest.source's default (EGOCLEAN_CACHE of the process, else CACHE_DIR)

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
            cache=_get(env, "EGOCLEAN_CACHE"),
        )

    def but(self, **changes) -> "Settings":
        """A copy with some settings changed (e.g. a command-line option over the variable)."""
        return replace(self, **changes)

    @property
    def index_cache(self) -> str | None:
        """The shard-index cache folder, when EGOCLEAN_CACHE was given."""
        return None if self.cache is None else os.path.join(os.path.expanduser(self.cache), "index")

    def open_source(self, **kwargs):
        """An egoclean.ingest.source.Source over `source` (the token from egoclean.core.secrets at use)."""
        from egoclean.ingest.source import open_source  # imported at use: listing needs no fsspec until then

        if self.endpoint and "endpoint" not in kwargs:
            kwargs["endpoint"] = self.endpoint
        if self.index_cache and "cache_dir" not in kwargs:
            kwargs["cache_dir"] = self.index_cache
        return open_source(self.source, revision=self.revision, **kwargs)
