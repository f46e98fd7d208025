"""Backfill workers without the UI: register their clips as partitions and run the graph.

Usage (from the repository root)::

    DAGSTER_HOME=$PWD/dagster_home .venv/bin/python -m egoclean_assets.backfill factory_001/worker_002
    python -m egoclean_assets.backfill 'factory_00*/*' --limit 10        # fnmatch patterns
    python -m egoclean_assets.backfill factory_001/worker_002 --register-only   # then backfill in the UI
    python -m egoclean_assets.backfill factory_001/worker_001 --source data/demo/source --all

Clips are registered in the Dagster instance at $DAGSTER_HOME (default: ./dagster_home),
so the runs appear in `dagster dev` on the same instance. Without --register-only, each
clip that has not been fully materialized yet (or every clip with --all) is run through
the `clip_pipeline` job, one clip after another, launched from workspace.yaml's code
location like a UI run (so the runs show on the job's page); resources come from
the EGOCLEAN_* environment variables (see egoclean_assets/resources.py), and --source
overrides EGOCLEAN_SOURCE. Exit status: 0 when every run succeeded, 1 when a run failed or a worker was skipped
because its shards could not be read (each such worker is named on stderr),
2 for bad input (unknown worker, bad pattern, unreachable source).
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

from dagster import AssetKey, DagsterInstance

from egoclean.core.errors import EgoCleanError
from egoclean.core.options import whole
from egoclean.core.secrets import redact
from egoclean_assets.cluster import contiguous_batches, run_batches
from egoclean_assets.discovery import discover, is_pattern
from egoclean_assets.launch import launch_partition_runs
from egoclean_assets.partitions import CLIPS, add_clip_partitions
from egoclean_assets.resources import DiscoveryResource
from egoclean_assets.run_launcher import fail_dead_runs

# A clip counts as done when its last assets are materialized.
FINAL_ASSETS = ("anomaly_segments", "diagnostics_plot")
# Console output of in-process runs: step events stay in the instance's event log (and
# the UI); the terminal gets INFO and above (e.g. deleted intermediates, failures).
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def instance_from_env() -> DagsterInstance:
    """The persistent instance at $DAGSTER_HOME, else at ./dagster_home."""
    if not os.environ.get("DAGSTER_HOME"):
        home = Path("dagster_home").absolute()
        if not (home / "dagster.yaml").is_file():
            raise EgoCleanError("DAGSTER_HOME is not set and ./dagster_home/dagster.yaml does not exist; "
                                "run from the repository root or set DAGSTER_HOME")
        os.environ["DAGSTER_HOME"] = str(home)
    home = Path(os.environ["DAGSTER_HOME"])
    if not home.is_dir():
        # Dagster's own error here is a traceback; say what to do instead.
        raise EgoCleanError(f"DAGSTER_HOME={home} is not an existing folder: create it (with a dagster.yaml, "
                            "e.g. a copy of dagster_home/dagster.yaml) or point DAGSTER_HOME at the instance folder")
    return DagsterInstance.get()


def done_partitions(instance: DagsterInstance) -> set[str]:
    """Clips whose final assets have all been materialized."""
    sets = [set(instance.get_materialized_partitions(AssetKey(a))) for a in FINAL_ASSETS]
    return set.intersection(*sets) if sets else set()


def backfill(scope: list[str], instance: DagsterInstance, env: Mapping[str, str] | None = None,
             limit: int | None = None, register_only: bool = False, rerun_all: bool = False, out=print) -> int:
    """Register the clips of the workers matching `scope`, then run the ones not done.

    `env`: the environment variables the resources are built from (None: os.environ).

    Returns the number of failed runs plus the number of workers skipped as unreadable
    (each named on stderr; the other workers' clips are still registered and run)."""
    # imported here, not at module top: loading the definitions must stay free of heavy modules
    from egoclean_assets.definitions import build_definitions
    from egoclean_assets.resources import build_resources

    # Runs of an earlier backfill that was killed hold their pool slots until a daemon's
    # run monitoring fails them; this command works without a daemon, so it looks itself.
    dead = fail_dead_runs(instance)
    if dead:
        out(f"marked {len(dead)} run(s) whose worker is gone as failed, their pool slots freed: {', '.join(dead)}")
    defs = build_definitions(build_resources(env))
    source = defs.resources["source"]
    settings = DiscoveryResource(scope=scope)
    result = discover(source.open(), settings, set(), cursor=None, whole_scope=True)
    # Discovery names a missing worker of the scope and goes on (right for patterns and the
    # sensor); a worker named outright that is not there is this command's bad input.
    named = [p.strip().strip("/") for p in scope if p.strip() and not is_pattern(p)]
    bad = [f"no worker {p} ({why})" for p in named for name, why in result.missing if name in (p, p.split("/")[0])]
    if bad:
        raise EgoCleanError("; ".join(bad))
    if not result.scanned and not result.failed:
        raise EgoCleanError(f"no worker in {source.url} matches {', '.join(scope)}")
    for w, why in result.failed:
        print(f"backfill: skipped worker {w}: {redact(why)}", file=sys.stderr)
    keys = result.new_keys[:limit] if limit else result.new_keys
    new = add_clip_partitions(instance, keys)
    out(f"{len(result.scanned)} worker(s): {', '.join(result.scanned)}; "
        f"{len(keys)} clip(s), {len(new)} newly registered")
    if register_only:
        out("registered only; launch a backfill of the `clips` partitions from the UI")
        return len(result.failed)
    todo = keys if rerun_all else [k for k in keys if k not in done_partitions(instance)]
    out(f"running clip_pipeline for {len(todo)} clip(s)" + ("" if todo else " (all done; --all re-runs them)"))
    # Runs are launched from workspace.yaml's code location as the UI launches them, so each
    # has a row on clip_pipeline's page and the timeline (execute_in_process runs had none).
    # The code server reads its settings from the environment: this command's are put there.
    if env is not None:
        os.environ.update({k: v for k, v in env.items() if k.startswith("EGOCLEAN_")})
    policy = defs.resolve_assets_def("raw_tar").backfill_policy
    if policy is not None:  # Ray mode: K clips per run, as the asset backfills in the UI
        batches = contiguous_batches(instance.get_dynamic_partitions(CLIPS), todo, policy.max_partitions_per_run)
        tags = {"egoclean/backfill": ",".join(scope)}
        return run_batches(instance, batches, tags, QUIET, out) + len(result.failed)
    failed = 0
    runs = launch_partition_runs(instance, todo, tags={"egoclean/backfill": ",".join(scope)}, run_config=QUIET)
    for i, (key, run) in enumerate(runs, 1):
        failed += not run.success
        out(f"[{i}/{len(todo)}] {key}: {'ok' if run.success else 'FAILED'} (run {run.run_id[:8]}; {run.check_summary()}"
            + "".join(f"; {step}: {redact(message)}" for step, message in run.step_failures) + ")")
    return failed + len(result.failed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m egoclean_assets.backfill", description=__doc__.splitlines()[0])
    p.add_argument("scope", nargs="+", help="factory_XXX/worker_YYY (fnmatch patterns allowed, e.g. 'factory_00*/*')")
    p.add_argument("--source", default=None, help="dataset URL (default: EGOCLEAN_SOURCE or the Hugging Face dataset)")
    p.add_argument("--limit", type=whole(1, 10**9), default=None, help="at most this many clips")
    p.add_argument("--register-only", action="store_true", help="register the partitions, run nothing")
    p.add_argument("--all", action="store_true", help="re-run clips that are already done")
    args = p.parse_args(argv)
    try:
        # --source is EGOCLEAN_SOURCE for this command; everything else as the environment says
        env = dict(os.environ) | ({"EGOCLEAN_SOURCE": args.source} if args.source else {})
        with instance_from_env() as instance:
            failed = backfill(args.scope, instance, env, limit=args.limit, register_only=args.register_only,
                              rerun_all=args.all)
        return 1 if failed else 0
    except EgoCleanError as e:
        print(f"backfill: error: {redact(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
