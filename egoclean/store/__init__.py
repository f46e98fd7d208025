"""The segment store: clips, segments, window scores, ground truth, detection_eval (the package's public names).

- `tables`: `Store`, the domain tables and their transactions, over either backend.
- `backends`: an embedded DuckDB file or a shared DuckLake behind one small interface
  (locks, bounded retries, per-clip advisory locks, commit-conflict re-runs).
- `schema`: the tables, macros and the detection_eval view.
- `ducklake`: the shared store's plumbing (extensions, S3 secret, attach, advisory locks).
- `text`: query results as an aligned table.
"""

from egoclean.store.backends import StoreMissingError, lock_holder
from egoclean.store.schema import EMBEDDED_SCHEMA, LAKE_SCHEMA, SCHEMA, SCHEMA_TAG
from egoclean.store.tables import DEFAULT_RETRIES, DEFAULT_TIMEOUT_SEC, SANDBOX, QueryError, Store
from egoclean.store.text import format_table

__all__ = [
    "DEFAULT_RETRIES", "DEFAULT_TIMEOUT_SEC", "EMBEDDED_SCHEMA", "LAKE_SCHEMA",
    "SANDBOX", "SCHEMA", "SCHEMA_TAG", "QueryError", "Store", "StoreMissingError", "format_table", "lock_holder",
]
