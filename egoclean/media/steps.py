"""The media step of one clip: rectify the raw fisheye clip to a pinhole camera (`rectify`).

Called by the `rectified_clip` asset and by the Ray task `fetch_rectify` alike; its result
(`Rectified`) carries every fact either records (see egoclean.ingest.steps for the pattern).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

# The facts of a rectified video a manifest keeps (and later steps and checks read): the one projection
# of rectify_video's report, for every executor.
VIDEO_FACTS = ("frames", "fps", "duration_sec", "width", "height", "size_bytes")


@dataclass(frozen=True)
class Rectified:
    """The clip rectified to a pinhole camera (same frames and rate, H.264 MP4), with rectify_video's report."""

    mp4: str
    report: dict  # egoclean.media.rectify.rectify_video's result (frames, fps, seconds, codecs, crf, ...)
    raw_frames: int  # the raw clip's frame count and rate, for the same_frame_count check
    raw_fps: float
    raw_refetched: bool = False  # the raw clip had been deleted after use and was fetched again for this step

    @property
    def files(self) -> dict[str, str]:
        return {"mp4": self.mp4}

    @property
    def video(self) -> dict:
        """frames, fps, duration_sec, width, height, size_bytes of the rectified video."""
        return {k: self.report[k] for k in VIDEO_FACTS}

    def info(self) -> dict:
        return {"video": self.video, "raw_frames": self.raw_frames, "raw_fps": self.raw_fps}

    def moved(self, files: dict[str, str]) -> "Rectified":
        """The same result with its file at `files["mp4"]` (where an executor put it)."""
        return replace(self, mp4=files["mp4"])


def rectify(raw_mp4: str | os.PathLike, camera_json: str | os.PathLike, out: str | os.PathLike, raw_video: dict,
            encode_kwargs: dict | None = None, raw_refetched: bool = False) -> Rectified:
    """Rectify `raw_mp4` with the camera saved at `camera_json` (read back as saved: K_new, balance, fov_scale)
    into `out`. `raw_video`: the raw clip's probed facts (n_frames, fps)."""
    from egoclean.media.intrinsics import RectifiedIntrinsics  # at use: OpenCV and PyAV
    from egoclean.media.rectify import rectify_video

    rect = RectifiedIntrinsics.load(camera_json)
    report = rectify_video(raw_mp4, rect, out, progress=False, **(encode_kwargs or {}))
    return Rectified(mp4=str(out), report=dict(report), raw_frames=int(raw_video["n_frames"]),
                     raw_fps=float(raw_video["fps"]), raw_refetched=bool(raw_refetched))
