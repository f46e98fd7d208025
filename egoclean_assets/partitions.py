"""The `clips` dynamic partitions: one partition per clip id `factoryXXX_workerYYY_NNNNN`.

Dagster accepts any string as a dynamic partition key, so the keys are validated here:
at registration (`add_clip_partitions`) and again when an asset runs (`clip_of`).
"""

from __future__ import annotations

from typing import Iterable

from dagster import DagsterInstance, DynamicPartitionsDefinition, Failure

from egoclean.core.errors import ClipIdError
from egoclean.core.ids import ClipId
from egoclean_assets.pools import prepare_pools

CLIPS = "clips"

clip_partitions = DynamicPartitionsDefinition(name=CLIPS)


def validate_clip_keys(keys: Iterable[str]) -> list[str]:
    """The keys, de-duplicated in order, each checked with ClipId.parse.

    Raises ClipIdError naming every bad key, before anything is registered.
    """
    keys = list(keys)
    bad = []
    for key in keys:
        try:
            ClipId.parse(key)
        except ClipIdError:
            bad.append(key)
    if bad:
        raise ClipIdError(
            f"refusing partition key(s) {', '.join(repr(k) for k in bad)}: clip partitions must be "
            "clip ids of the form factoryXXX_workerYYY_NNNNN, e.g. factory001_worker001_00001"
        )
    return list(dict.fromkeys(keys))


def add_clip_partitions(instance: DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Register clip ids as `clips` partitions; returns the keys that were new.

    All keys are validated first: one bad key refuses the whole call (nothing added).
    The instance's pools are set up too (egoclean_assets.pools), before any run of the
    clips can claim them.
    """
    keys = validate_clip_keys(keys)
    prepare_pools(instance)
    existing = set(instance.get_dynamic_partitions(CLIPS))
    new = [k for k in keys if k not in existing]
    if new:
        instance.add_dynamic_partitions(CLIPS, new)
    return new


def clip_of(context) -> ClipId:
    """The ClipId of the partition an asset or check is running for.

    A bad key (Dagster's "Add a partition" field takes any text, with no hook for user
    code) fails the step with a dagster.Failure, whose description is the first line
    of the run page, not a wrapped stack trace; it is not retried.
    """
    key = context.partition_key
    try:
        return ClipId.parse(key)
    except ClipIdError as e:
        raise Failure(
            description=f"partition key {key!r} of the `{CLIPS}` partitions is not a clip id: {e}; "
            "delete it (Partitions tab of any asset) and add the clip's id",
            allow_retries=False,
        ) from None
