"""A check run with lerobot's own interpreter: load an EgoClean export with the real `LeRobotDataset`.

Usage: `python tests/export/lerobot_load.py DATASET_DIR [VIDEO_BACKEND]` in an environment where `lerobot` is
installed (not the project's: lerobot pins a torch the project does not use). It loads the
dataset as `LeRobotDataset('local/egoclean', root=DATASET_DIR)` (with `video_backend` when
given: "torchcodec", lerobot's default, or "pyav"), reads the first, a middle and
the last frame of every episode, and prints one JSON object: lerobot's version, what the
loader reports (episodes, frames, fps, features, names), per read frame the shapes of
`observation.state`, `action` and the decoded video frame, and the statistics lerobot loaded
from meta/stats.json. Anything lerobot refuses raises and exits non-zero with its traceback.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version


def main(root: str, video_backend: str | None = None) -> dict:
    """What the real loader reads from the dataset at `root` (see the module docstring)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/egoclean", root=root, video_backend=video_backend)
    meta = ds.meta
    frames = []
    for ep in range(meta.total_episodes):
        row = meta.episodes[ep]
        lo, hi = int(row["dataset_from_index"]), int(row["dataset_to_index"])
        for i in sorted({lo, (lo + hi) // 2, hi - 1}):
            item = ds[i]
            got = {"index": int(item["index"]), "episode_index": int(item["episode_index"]),
                   "frame_index": int(item["frame_index"]), "timestamp": float(item["timestamp"])}
            for key, value in item.items():
                if hasattr(value, "shape") and key not in got:
                    got[key] = {"shape": list(value.shape), "dtype": str(value.dtype)}
                    if key.startswith("observation.images"):
                        got[key] |= {"min": float(value.min()), "max": float(value.max()),
                                     "mean": float(value.double().mean())}
                    elif value.ndim == 1:
                        got[key]["values"] = [float(v) for v in value]
            frames.append(got)
    stats = {k: {s: list(getattr(v, "shape", ())) for s, v in d.items()} for k, d in (meta.stats or {}).items()}
    return {
        "lerobot": version("lerobot"), "torch": version("torch"), "torchvision": version("torchvision"),
        "video_backend": ds.video_backend,
        "total_episodes": meta.total_episodes, "total_frames": meta.total_frames, "num_frames": ds.num_frames,
        "fps": meta.fps, "camera_keys": list(meta.camera_keys),
        "features": {k: {"dtype": f["dtype"], "shape": list(f["shape"]), "names": f.get("names")}
                     for k, f in meta.features.items()},
        "stats_shapes": stats, "frames": frames,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
