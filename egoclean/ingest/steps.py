"""The ingest steps of one clip: fetch the raw clip from its shard, read and scale its worker's camera.

A step is one library call that does the work and returns a typed result holding every
fact the orchestration records about it (files, the manifest's `info`, what the UI
shows). Both executors call the same steps: the Dagster assets (egoclean_assets.assets)
and the Ray tasks (egoclean.cluster.ray_pipeline), and both turn a result into metadata
through the same function (egoclean_assets.assets.ingest), so a fact added here shows in
both modes or in neither.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

from egoclean.core.ids import ClipId


@dataclass(frozen=True)
class Fetched:
    """The raw clip taken from its worker's shard: its two files, the decoded video's facts, shard, timing."""

    mp4: str
    sidecar_path: str
    video: dict  # egoclean.media.video.VideoInfo.as_dict() of the raw MP4 (as decoded, not as the sidecar says)
    sidecar: dict
    shard: str
    size_bytes: int
    seconds: float  # the ranged read alone

    @property
    def files(self) -> dict[str, str]:
        """The raw clip's files by role (`mp4`, `sidecar`)."""
        return {"mp4": self.mp4, "sidecar": self.sidecar_path}

    def info(self) -> dict:
        """The manifest's facts: kept after the raw clip is deleted (the rectified check needs its frame count)."""
        return {"video": self.video, "sidecar": dict(self.sidecar), "shard": self.shard}

    def moved(self, files: dict[str, str]) -> "Fetched":
        """The same result with its files named `files` (where an executor put them, or named them once deleted)."""
        return replace(self, mp4=files["mp4"], sidecar_path=files["sidecar"])


def fetch_raw(source, clip: ClipId, out_dir: str | os.PathLike) -> Fetched:
    """Fetch `clip`'s raw MP4 and sidecar from `source` (an egoclean.ingest.source.Source) into `out_dir`."""
    from egoclean.media.video import probe  # at use: PyAV only for the steps that decode

    t0 = time.perf_counter()
    fetched = source.fetch_clip(clip, out_dir, progress=False)
    seconds = time.perf_counter() - t0
    info = probe(fetched.mp4_path)
    return Fetched(mp4=str(fetched.mp4_path), sidecar_path=str(fetched.sidecar_path), video=info.as_dict(),
                   sidecar=dict(fetched.sidecar), shard=getattr(fetched.shard, "name", None) or str(fetched.shard),
                   size_bytes=int(fetched.size_bytes), seconds=seconds)


@dataclass(frozen=True)
class Camera:
    """The worker's fisheye intrinsics, validated and scaled to the clip, and the rectified pinhole camera saved."""

    path: str  # the rectified intrinsics JSON (egoclean.media.intrinsics.RectifiedIntrinsics.save)
    fisheye_size: tuple[int, int]
    clip_size: tuple[int, int]
    rectified: dict  # RectifiedIntrinsics.to_dict()
    balance: float
    valid_fraction: float

    @property
    def files(self) -> dict[str, str]:
        return {"json": self.path}

    def info(self) -> dict:
        return {"rectified": self.rectified}

    def moved(self, files: dict[str, str]) -> "Camera":
        """The same camera with its file at the path `files["json"]` (where an executor put it)."""
        return replace(self, path=files["json"])


def read_camera(source, clip: ClipId, width: int, height: int, path: str | os.PathLike, balance: float = 0.0,
                source_url: str | None = None) -> Camera:
    """Read `clip`'s worker intrinsics from `source`, scale them to the decoded `width` x `height`, save the
    rectified camera at `path`. `source_url` names the source in errors."""
    from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics  # at use: OpenCV

    where = f"{source_url or getattr(source, 'url', 'the source')}/{clip.worker_path}/intrinsics.json"
    fisheye = FisheyeIntrinsics.from_dict(source.read_intrinsics(clip.factory_dir, clip.worker_dir), source=where)
    # The decoded size, not the sidecar's claim, is what the maps will sample.
    rect = rectified_intrinsics(fisheye, int(width), int(height), balance=balance)
    saved = rect.save(path)
    return Camera(path=str(saved), fisheye_size=(int(fisheye.image_width), int(fisheye.image_height)),
                  clip_size=(int(width), int(height)), rectified=rect.to_dict(), balance=float(rect.balance),
                  valid_fraction=float(rect.valid_fraction))
