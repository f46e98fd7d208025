"""Rows of the store's tables built from a clip's step results (the one place both executors build them)."""

from __future__ import annotations


def clip_row(clip_id: str, video: dict, segments: str, rectified: str, embeddings: str) -> dict:
    """The clip's row of the `clips` table: the rectified video's facts and where its artifacts are (paths or URLs).

    `video`: egoclean.media.steps.Rectified.video (frames, fps, width, height, duration_sec)."""
    return {"clip_id": clip_id, "n_frames": video["frames"], "fps": video["fps"], "width": video["width"],
            "height": video["height"], "duration_sec": video["duration_sec"],
            "paths": {"segments": segments, "rectified": rectified, "embeddings": embeddings}}
