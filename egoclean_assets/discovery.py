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
    unreadable (with why), and the cursor to resume from.

    `missing`: the part of `failed` that names a factory or worker of the scope the source
    could not list (not there, or its listing failed), as (scope name, why)."""

    new_keys: list[str] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    cursor: str | None = None
    workers_in_scope: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    scope: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)

    def scope_note(self) -> str:
        """Which scope was scanned and how to widen it (for logs and the sensor's skip reason)."""
        return f"scope {', '.join(self.scope) or '(empty)'}; {SCOPE_HINT}"

    def failed_summary(self) -> str:
        """One line naming each skipped worker and its problem ("" when none)."""
        if not self.failed:
            return ""
        return f"skipped {len(self.failed)} unreadable worker(s): " + "; ".join(f"{w}: {why}" for w, why in self.failed)


def workers_in_scope(source, patterns: list[str], failed: list[tuple[str, str]] | None = None) -> list[str]:
    """`factory_XXX/worker_YYY` paths matching any fnmatch pattern, sorted.

    With `failed`, a factory that cannot be listed (a literal name not in the source) and
    a literal pattern that matches no worker are appended there as (name, why) and the
    rest of the scope is still returned; without it, the first such error raises."""
    patterns = [p.strip().strip("/") for p in patterns if p.strip()]
    factory_patterns = {p.split("/")[0] for p in patterns}
    # A literal factory name needs no listing of all factories.
    if all(not is_pattern(fp) for fp in factory_patterns):
        factories = sorted(factory_patterns)
    else:
        factories = [f for f in source.list_factories() if any(fnmatch.fnmatchcase(f, fp) for fp in factory_patterns)]
    out = []
    for f in factories:
        try:
            workers = source.list_workers(f)
        except EgoCleanError as e:
            if failed is None:
                raise
            failed.append((f, str(e)))
            continue
        for w in workers:
            if any(fnmatch.fnmatchcase(f"{f}/{w}", p) for p in patterns):
                out.append(f"{f}/{w}")
        for p in patterns:  # a worker named outright that is not there is a mistake to report, not silence
            pf, _, pw = p.partition("/")
            if failed is not None and pf == f and pw and not is_pattern(pw) and f"{f}/{pw}" not in out:
                known = ", ".join(workers) or "none"
                failed.append((p, f"worker {pw} not found in {f} of {source.url} (workers: {known})"))
    return sorted(out)


def is_pattern(text: str) -> bool:
    """Whether a scope entry (or part of one) has fnmatch wildcards."""
    return any(c in text for c in "*?[")


def _cursor_after(cursor: str | None) -> tuple[str | None, str | None]:
    """The worker a cursor names (None: start at the beginning), and why it was ignored if damaged."""
    if not cursor:
        return None, None
    try:
        after = json.loads(cursor).get("after")
    except (ValueError, AttributeError):
        after = 0
    if after is None or isinstance(after, str):
        return after, None
    # Starting again from the first worker loses nothing: known clips are not registered twice.
    return None, f"ignored a damaged sensor cursor {cursor[:80]!r}; scanning from the first worker"


def discover(source, settings, existing: set[str], cursor: str | None, whole_scope: bool = False) -> DiscoveryResult:
    """Scan workers after the cursor's one (wrapping around) for clips not in `existing`.

    At most `settings.max_workers_per_tick` workers and `settings.max_new_partitions_per_tick`
    new keys per call (unless `whole_scope`); a worker cut short by the key budget is
    scanned again first next time, so nothing is skipped. A worker whose shards cannot be
    listed or indexed is recorded in `failed` and passed over; the others proceed.
    """
    failed: list[tuple[str, str]] = []
    workers = workers_in_scope(source, list(settings.scope), failed)
    after, cursor_note = _cursor_after(cursor)
    start = next((i for i, w in enumerate(workers) if after is None or w > after), 0)
    order = workers[start:] + workers[:start]
    max_workers = len(order) if whole_scope else settings.max_workers_per_tick
    budget = None if whole_scope else settings.max_new_partitions_per_tick
    result = DiscoveryResult(workers_in_scope=len(workers), scope=[p.strip() for p in settings.scope],
                             failed=failed, missing=list(failed))
    if cursor_note:
        result.failed.append(("cursor", cursor_note))
        cursor = None
    last_done = after
    seen = set(existing)
    for w in order[:max_workers]:
        factory, worker = w.split("/")
        damaged: list = []
        try:
            clips = [c.key for c in source.list_clips(factory, worker, damaged=damaged)]
        except EgoCleanError as e:
            # One bad worker (unlistable, unreadable) must not stop the rest of the
            # scope: report the worker and move on. It is scanned again when the cursor
            # comes round to it, so a fixed shard is picked up then.
            result.failed.append((w, str(e)))
            last_done = w
            continue
        # A damaged shard is reported; the clips of the worker's readable shards are
        # registered (none of them can be in the damaged one, see Source.locate_clip).
        result.failed += [(w, str(err)) for _, err in damaged]
        if not clips and damaged:
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
