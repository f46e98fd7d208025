"""Discovery of clips in scope: which workers match, which of their clips are new.

Shared by the sensor (bounded work per tick, resuming from a cursor), the one-off
discovery job and the backfill CLI.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field

from egoclean.core.errors import EgoCleanError
from egoclean_assets.partitions import validate_clip_keys


# How a user widens discovery: the one place that says it (logs, skip reasons, sensor page).
SCOPE_HINT = ("widen it with EGOCLEAN_SCOPE (comma-separated factory/worker fnmatch patterns, e.g. "
              "'factory_001/*' or '*/*') before starting dagster dev, or set the `discovery` resource's "
              "scope in the launchpad")


@dataclass
class DiscoveryResult:
    """New clip keys (not yet partitions), the workers scanned, the workers skipped as
    unreadable (with why), and the cursor to resume from."""

    new_keys: list[str] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    cursor: str | None = None
    workers_in_scope: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)

    def scope_note(self) -> str:
        """Which scope was scanned and how to widen it (for logs and the sensor's skip reason)."""
        return f"scope {', '.join(self.scope) or '(empty)'}; {SCOPE_HINT}"

    def failed_summary(self) -> str:
        """One line naming each skipped worker and its problem ("" when none)."""
        if not self.failed:
            return ""
        return f"skipped {len(self.failed)} unreadable worker(s): " + "; ".join(f"{w}: {why}" for w, why in self.failed)


def workers_in_scope(source, patterns: list[str]) -> list[str]:
    """`factory_XXX/worker_YYY` paths matching any fnmatch pattern, sorted."""
    patterns = [p.strip().strip("/") for p in patterns if p.strip()]
    factory_patterns = {p.split("/")[0] for p in patterns}
    # A literal factory name needs no listing of all factories.
    if all(not any(c in fp for c in "*?[") for fp in factory_patterns):
        factories = sorted(factory_patterns)
    else:
        factories = [f for f in source.list_factories() if any(fnmatch.fnmatchcase(f, fp) for fp in factory_patterns)]
    out = []
    for f in factories:
        for w in source.list_workers(f):
            if any(fnmatch.fnmatchcase(f"{f}/{w}", p) for p in patterns):
                out.append(f"{f}/{w}")
    return sorted(out)


def discover(source, settings, existing: set[str], cursor: str | None, whole_scope: bool = False) -> DiscoveryResult:
    """Scan workers after the cursor's one (wrapping around) for clips not in `existing`.

    At most `settings.max_workers_per_tick` workers and `settings.max_new_partitions_per_tick`
    new keys per call (unless `whole_scope`); a worker cut short by the key budget is
    scanned again first next time, so nothing is skipped. A worker whose shards cannot be
    listed or indexed is recorded in `failed` and passed over; the others proceed.
    """
    workers = workers_in_scope(source, list(settings.scope))
    after = json.loads(cursor).get("after") if cursor else None
    start = next((i for i, w in enumerate(workers) if after is None or w > after), 0)
    order = workers[start:] + workers[:start]
    max_workers = len(order) if whole_scope else settings.max_workers_per_tick
    budget = None if whole_scope else settings.max_new_partitions_per_tick
    result = DiscoveryResult(workers_in_scope=len(workers), scope=[p.strip() for p in settings.scope])
    last_done = after
    seen = set(existing)
    for w in order[:max_workers]:
        factory, worker = w.split("/")
        try:
            clips = [c.key for c in source.list_clips(factory, worker)]
        except EgoCleanError as e:
            # One bad shard (empty, damaged, unreadable) must not stop the rest of the
            # scope: report the worker and move on. It is scanned again when the cursor
            # comes round to it, so a fixed shard is picked up then.
            result.failed.append((w, str(e)))
            last_done = w
            continue
        new = [k for k in clips if k not in seen]
        result.scanned.append(w)
        if budget is not None and len(result.new_keys) + len(new) > budget:
            room = budget - len(result.new_keys)
            result.new_keys += new[:room]
            break  # this worker is not finished: the cursor stays before it
        result.new_keys += new
        seen.update(new)
        last_done = w
    result.new_keys = validate_clip_keys(result.new_keys)
    result.cursor = json.dumps({"after": last_done}) if last_done else cursor
    return result
