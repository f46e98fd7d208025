"""Where a clip's files live: one named path per artifact, under a data root.

The data root is a local folder, a `file://` URL or any fsspec URL (`s3://bucket/prefix`);
paths are joined with "/" so the same layout serves all of them, and one change of data
root moves every artifact. By factory / worker / clip::

    <root>/factory_001/worker_001/factory001_worker001_00001/
        raw/factory001_worker001_00001.mp4, .json     raw clip + sidecar (intermediate)
        factory001_worker001_00001_intrinsics.json    rectified pinhole camera (+ its fisheye)
        factory001_worker001_00001_rectified.mp4      rectified video
        factory001_worker001_00001_emb.npy, ...       embeddings (prefix; egoclean.embed.embeddings)
        factory001_worker001_00001_sim_mean.npy, ...  similarity analysis (prefix; egoclean.temporal.analysis)
        factory001_worker001_00001_segments.json      detection (egoclean.temporal.detection)
        factory001_worker001_00001_diagnostics.png    pictures (egoclean.temporal.plots)
        factory001_worker001_00001_detection.png
        factory001_worker001_00001_episodes.json      training episodes (egoclean.export)
        factory001_worker001_00001_trajectory.parquet camera poses per frame (egoclean.motion.Trajectory)
        factory001_worker001_00001_trajectory.png     the path picture (egoclean.motion.plots)
        _manifests/<asset>.json                       what each Dagster asset wrote, and when

A type that writes several files (embeddings, analysis) is given a prefix and names its
own files after it; everything else is named here. Nothing else builds these paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from egoclean.core.ids import ClipId

RAW_DIR = "raw"
MANIFEST_DIR = "_manifests"
# The CLI's `egoclean rectify OUT.mp4` writes its intrinsics beside the video, named after it.
INTRINSICS_SUFFIX = "_intrinsics.json"
TRAJECTORY_SUFFIX = "_trajectory.parquet"


def is_local(root: str | os.PathLike) -> bool:
    """True for a local folder or `file://` URL, False for any other fsspec URL."""
    root = str(root)
    return "://" not in root or root.startswith("file://")


def local_path(root: str | os.PathLike) -> Path:
    """The local folder of a local root (`file://` stripped, `~` expanded)."""
    root = str(root)
    return Path(root[len("file://"):] if root.startswith("file://") else root).expanduser()


def join(base: str | os.PathLike, *parts: str) -> str:
    """`base/part/...` with "/" (fsspec URLs and POSIX paths alike); no doubled separators."""
    base = str(base)
    head = base if base.endswith("/") else base + "/"
    return head + "/".join(p.strip("/") for p in parts if p)


def clip_folder(clip: ClipId) -> str:
    """`factory_001/worker_001/factory001_worker001_00001`: a clip's folder under the data root."""
    return f"{clip.factory_dir}/{clip.worker_dir}/{clip.key}"


def intrinsics_beside(video: str | os.PathLike) -> Path:
    """`<video stem>_intrinsics.json` beside a rectified video (the CLI's naming)."""
    video = Path(video)
    return video.with_name(f"{video.stem}{INTRINSICS_SUFFIX}")


@dataclass(frozen=True)
class ClipLayout:
    """The files of one clip (`key`) in its folder `dir` (a local path or a URL), by artifact.

    `ClipLayout.under(root, clip)` is the clip's folder under a data root; `ClipLayout(key,
    dir)` names the same files in any other folder (a work or download folder, the CLI's
    output folder).
    """

    key: str
    dir: str

    @classmethod
    def under(cls, root: str | os.PathLike, clip: ClipId) -> "ClipLayout":
        """The layout of `clip` under the data root `root`."""
        return cls(clip.key, join(root, clip_folder(clip)))

    def path(self, name: str) -> str:
        """A file of the clip's folder (relative name, "/"-separated)."""
        return join(self.dir, name)

    def relative(self, path: str | os.PathLike) -> str:
        """`path` relative to the clip's folder (ValueError when it lies outside)."""
        base, p = self.dir.rstrip("/") + "/", str(path)
        if not p.startswith(base):
            raise ValueError(f"{p} is not inside {self.dir}")
        return p[len(base):]

    @property
    def raw_dir(self) -> str:
        """The raw clip and its sidecar (`<key>.mp4`, `<key>.json`, named by egoclean.ingest.source)."""
        return self.path(RAW_DIR)

    @property
    def intrinsics(self) -> str:
        """The rectified pinhole camera and the fisheye it came from (RectifiedIntrinsics)."""
        return self.path(f"{self.key}{INTRINSICS_SUFFIX}")

    @property
    def rectified(self) -> str:
        """The rectified H.264 video."""
        return self.path(f"{self.key}_rectified.mp4")

    @property
    def embeddings(self) -> str:
        """The embeddings prefix (egoclean.embed.embeddings names `<prefix>_emb.npy` ...)."""
        return self.path(self.key)

    @property
    def analysis(self) -> str:
        """The similarity-analysis prefix (egoclean.temporal.analysis names `<prefix>_sim_mean.npy` ...)."""
        return self.path(self.key)

    @property
    def segments(self) -> str:
        """The detection document (egoclean.temporal.detection: spans and per-window series)."""
        return self.path(f"{self.key}_segments.json")

    @property
    def diagnostics_plot(self) -> str:
        """The 4-panel diagnostics picture."""
        return self.path(f"{self.key}_diagnostics.png")

    @property
    def detection_plot(self) -> str:
        """The detection picture (score, thresholds, spans, ground truth)."""
        return self.path(f"{self.key}_detection.png")

    @property
    def episodes(self) -> str:
        """The clip's training episodes (egoclean.export's plan table)."""
        return self.path(f"{self.key}_episodes.json")

    @property
    def trajectory(self) -> str:
        """The camera poses of every frame (egoclean.motion.Trajectory's Parquet table)."""
        return self.path(f"{self.key}{TRAJECTORY_SUFFIX}")

    @property
    def trajectory_plot(self) -> str:
        """The camera path picture (from above, height and heading over time)."""
        return self.path(f"{self.key}_trajectory.png")

    def manifest(self, asset: str) -> str:
        """What the Dagster asset `asset` wrote for this clip."""
        return self.path(f"{MANIFEST_DIR}/{asset}.json")
