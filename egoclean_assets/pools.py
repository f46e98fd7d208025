"""The concurrency pools the clip assets run in, and their set-up on an instance.

- `gpu`    - vjepa_embeddings: one model on the accelerator at a time per slot
- `duckdb` - anomaly_segments and lerobot_dataset: the embedded DuckDB file takes a single
             writing process (the shared DuckLake store takes many: raise the limit)

The limits come from the instance's `concurrency.pools` (dagster.yaml); Dagster writes a
pool's row the first time a step claims it. Two processes doing that at once on a fresh
PostgreSQL instance collide (a unique-key violation fails one step), so the rows are
written once, when clips are registered, before any run of them can start. Two processes
registering at once can collide there too: the one that loses finds the row written.
"""

from __future__ import annotations

from dagster import DagsterInstance
from sqlalchemy.exc import DBAPIError

GPU = "gpu"
DUCKDB = "duckdb"
POOLS = (GPU, DUCKDB)


def prepare_pools(instance: DagsterInstance) -> list[str]:
    """Give every pool without a limit row the instance's default limit; returns those set.

    A limit someone set (`dagster instance concurrency set gpu 8`) is left as it is."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    have = set(storage.get_concurrency_keys())
    added = [p for p in POOLS if p not in have]
    for pool in added:
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except DBAPIError:
            # another process wrote it between our read and our write (unique key): fine if it is there now
            if pool not in set(storage.get_concurrency_keys()):
                raise
    return added
