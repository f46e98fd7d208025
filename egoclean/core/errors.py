"""Exceptions EgoClean raises for bad input and unreachable sources.

Every message names the input (path, URL, clip id, field) and the problem, so a user
can act on it without reading a traceback. Messages never contain the HF token.
"""


class EgoCleanError(Exception):
    """Base class of every error EgoClean raises on purpose."""


class InvalidInputError(EgoCleanError, ValueError):
    """An input (file, argument, key) is malformed."""


class ClipIdError(InvalidInputError):
    """A clip id / partition key is not of the form factoryXXX_workerYYY_NNNNN."""


class IntrinsicsError(InvalidInputError):
    """An intrinsics.json is missing, malformed or gives a degenerate rectification."""


class VideoError(InvalidInputError):
    """A video cannot be decoded, or is not usable (too short, wrong codec, VFR...)."""


class TarError(InvalidInputError):
    """A tar shard is truncated, corrupt or holds unsafe / inconsistent members."""


class GroundTruthError(InvalidInputError):
    """A ground-truth CSV has bad times or columns."""


class SourceError(EgoCleanError):
    """The dataset source could not be read (network, server error, bad URL)."""


class AuthError(SourceError):
    """The source refused access (gated dataset, missing or bad token)."""


class NotFoundError(SourceError, LookupError):
    """A factory, worker, shard or clip does not exist in the source."""


class ModelLoadError(EgoCleanError):
    """The V-JEPA 2 weights are neither cached nor reachable, or do not load."""


class StoreBusyError(EgoCleanError):
    """The DuckDB file is held for writing by another process."""


class StoreUnavailableError(StoreBusyError):
    """The shared store's catalog (PostgreSQL) could not be reached or dropped the connection: worth a retry later."""


class StoreSchemaError(InvalidInputError):
    """The store's tables were made by another EgoClean version (columns missing): a retry cannot help."""


class ObjectStoreError(EgoCleanError):
    """An object store (the data root) kept failing after bounded retries, or is unreachable."""


class ObjectNotFoundError(ObjectStoreError, FileNotFoundError):
    """A bucket or object of the data root does not exist (named by its URL)."""


class IncompleteOutputError(InvalidInputError):
    """A stored output's files are not the set its manifest describes (an update failed half-way)."""
