"""The dataset card (`README.md` of the dataset): source, licence, what was removed and why, counts, features,
and how to load it."""

from __future__ import annotations

import os
from pathlib import Path

from egoclean.core import defaults
from egoclean.export import lerobot
from egoclean.export.directory import CARD_PATH, SCORE_KEY, VIDEO_KEY

SOURCE_DATASET = defaults.DATASET_REPO
SOURCE_LICENCE = "Apache-2.0 (gated: accept the dataset's conditions on Hugging Face)"


def loading_code(root: str | os.PathLike) -> str:
    """The Python lines that load the dataset at `root` with lerobot (the card, the demo and the UI show them)."""
    return ("from lerobot.datasets.lerobot_dataset import LeRobotDataset\n"
            f"ds = LeRobotDataset('local/egoclean', root={str(root)!r})\n"
            f"frame = ds[0]  # frame[{VIDEO_KEY!r}]: (3, H, W) float in [0, 1]")


def dataset_card(root: str | os.PathLike) -> str:
    """The dataset card of the export at `root` without its YAML front matter (for display), "" when absent."""
    try:
        text = (Path(root) / CARD_PATH).read_text()
    except FileNotFoundError:
        return ""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        text = text[end + 5:] if end >= 0 else text
    return text.strip() + "\n"


def card(meta: dict, info: dict) -> str:
    """The card of a dataset from its `meta/egoclean.json` and `info.json` contents."""
    clips = meta.get("clips", {})
    kept = sum(c.get("kept_sec", 0) for c in clips.values())
    dropped = sum(c.get("dropped_sec", 0) for c in clips.values())
    random = any(c.get("random_weights") for c in clips.values())
    models = sorted({str(c.get("model")) for c in clips.values() if c.get("model")})
    skipped = meta.get("skipped", {})
    p = meta.get("params", {})
    lines = [
        "---",
        "license: apache-2.0",
        "task_categories:",
        "- robotics",
        "tags:",
        "- LeRobot",
        "- egocentric",
        "- Egocentric-10K",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
        "# EgoClean export of Egocentric-10K work cycles",
        "",
        f"A [LeRobot](https://github.com/huggingface/lerobot) dataset, format {lerobot.CODEBASE_VERSION}, written by "
        "EgoClean. Each episode is a stretch of clean work from a head-mounted camera in a factory, "
        "cut at work-cycle boundaries.",
        "",
        "## Source and licence",
        "",
        f"Video from [{SOURCE_DATASET}](https://huggingface.co/datasets/{SOURCE_DATASET}), licence "
        f"{SOURCE_LICENCE}. The fisheye clips were rectified to a pinhole camera; each episode carries "
        "its camera matrix (`egoclean/camera_matrix`, row-major 3x3, for the exported image size).",
        "",
        "## What was removed and why",
        "",
        "- Anomalous / off-task spans found by EgoClean's V-JEPA 2 typicality detector, with a safety "
        f"margin of {p.get('margin_sec', '?')} s on each side.",
        f"- Pieces shorter than {p.get('min_episode_sec', '?')} s, and partial cycles at span ends "
        "(when a clip has a clear work-cycle period).",
        "- Clips that could not be exported: " + (", ".join(f"{k} ({v})" for k, v in sorted(skipped.items()))
                                                  if skipped else "none") + ".",
        "",
        "## Counts",
        "",
        "| clips | episodes | frames | hours kept | hours dropped |",
        "|---|---|---|---|---|",
        f"| {len(clips)} | {info['total_episodes']} | {info['total_frames']} | {kept / 3600:.3f} "
        f"| {dropped / 3600:.3f} |",
        "",
        "## Tasks",
        "",
        "The source has no language labels. The task strings are generated, one per factory "
        "(`meta/tasks.parquet`), and say only where the work happened, not what it is.",
        "",
        "## Features",
        "",
        f"- `{VIDEO_KEY}`: rectified RGB video at {info['fps']} fps.",
        f"- `{SCORE_KEY}`: the anomaly score (1 - typicality) of the embedding window nearest the frame.",
        "- episode columns `egoclean/*` in `meta/episodes/`: clip id, factory, worker, start/end in the source "
        "clip, cycle index and period, camera matrix and image size, model, `egoclean/random_weights`, and "
        "`egoclean/embedding`: the mean V-JEPA 2 embedding of the windows inside the episode.",
        "",
        "Model(s): " + (", ".join(models) or "unknown") + (
            " — **computed with random weights (a test model): the spans are not meaningful**" if random else ""),
        "",
        "## Loading",
        "",
        "```python",
        loading_code("<this directory>"),
        "```",
        "",
        "Without lerobot: `pandas.read_parquet('meta/episodes/chunk-000/file-000.parquet')` lists the "
        "episodes; an episode's frames are those of its video file between `videos/<key>/from_timestamp` and "
        "`to_timestamp`.",
        "",
    ]
    return "\n".join(lines)
