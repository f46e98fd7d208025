"""Backfills in Ray mode from the command line: clip keys in contiguous ranges of at most K, one run each."""

from egoclean.core.errors import InvalidInputError
from egoclean_assets.cluster.batch import CLIP_ASSETS
from egoclean_assets.launch import launch_range_runs


def contiguous_batches(order: list[str], keys: list[str], k: int) -> list[list[str]]:
    """`keys` in runs of at most k that are contiguous in the partition order `order`.

    A range run covers every partition between its first and last key, so keys with
    others between them go to different runs (Dagster's multi_run backfills do the same)."""
    pos = {key: i for i, key in enumerate(order)}
    missing = [key for key in keys if key not in pos]
    if missing:
        raise InvalidInputError(f"clips not registered as partitions: {', '.join(missing)}")
    out: list[list[str]] = []
    for key in sorted(set(keys), key=pos.__getitem__):
        if out and len(out[-1]) < k and pos[key] == pos[out[-1][-1]] + 1:
            out[-1].append(key)
        else:
            out.append([key])
    return out


def run_batches(instance, batches: list[list[str]], tags: dict, run_config: dict, out=print) -> int:
    """Launch a run of `clip_pipeline`'s clip assets (`clip_batch`) per batch (a partition range), one after another.

    Launched through the instance from workspace.yaml's code location, as the UI launches a
    backfill's runs, so each has a row on the job's page and the timeline (a run executed
    in this process had none). Assets of the job outside the batch (training_episodes: one
    clip per run) are left to their own runs. Returns the failed runs."""
    failed = 0
    runs = launch_range_runs(instance, batches, CLIP_ASSETS, tags=tags, run_config=run_config)
    for i, (run, b) in enumerate(zip(runs, batches), 1):
        failed += not run.success
        # the step's failure starts with EgoClean's one line (egoclean_assets.failures)
        why = "".join(f"; {message.splitlines()[0][:400]}" for _, message in run.step_failures[:1])
        out(f"[{i}/{len(batches)}] {b[0]}..{b[-1]} ({len(b)} clip(s)): {'ok' if run.success else 'FAILED'} "
            f"(run {run.run_id[:8]}; {run.check_summary(lambda c: f'{c.check_name}[{c.partition}]')}{why})")
    return failed
