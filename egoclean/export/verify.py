"""Check an exported dataset's frames against the rectified clips they came from."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from egoclean.export import lerobot
from egoclean.export.directory import VIDEO_KEY
from egoclean.core.layout import is_local
from egoclean.export.selection import download


def verify_frames(root: str | os.PathLike, sources: dict[str, str | os.PathLike], samples: int = 8,
                  seed: int = 0, min_psnr: float = 30.0) -> dict:
    """Compare sampled episode frames with the rectified clips they came from.

    `sources` maps clip id -> rectified video. Frames are read from the dataset at
    from_timestamp + k / fps (as a LeRobot reader does) and from the source at the
    episode's start_frame + k. A stream-copied dataset must match bit for bit; a
    re-encoded one (another size) must reach `min_psnr` dB against the source frame
    scaled the same way. Returns {"checked", "mismatches": [...], "min_psnr"}.
    """
    import av
    import cv2

    from egoclean.media.remux import decode_range, index_packets

    root = Path(root)
    info = lerobot.read_info(root)
    fps = int(info["fps"])
    eps = lerobot.read_table(root, "meta/episodes")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(eps), size=min(samples, len(eps)), replace=False) if len(eps) else []
    mismatches, checked, worst = [], 0, float("inf")
    tmp = tempfile.TemporaryDirectory(prefix="egoclean-verify-")
    fetched: dict[str, Path | None] = {}
    for e in sorted(int(x) for x in picks):
        row = eps.iloc[e]
        clip = str(row["egoclean/clip_id"])
        src = sources.get(clip)
        if src is not None and not is_local(str(src)):  # a remote data root: a local copy, once per clip
            src = fetched.get(clip) or fetched.setdefault(clip, _fetch(str(src), Path(tmp.name)))
        if src is None or not Path(src).is_file():
            mismatches.append(f"episode {e}: source video of {clip} not available")
            continue
        k = int(rng.integers(0, int(row["length"])))
        video = root / lerobot.VIDEO_PATH.format(video_key=VIDEO_KEY,
                                                 chunk_index=int(row[f"videos/{VIDEO_KEY}/chunk_index"]),
                                                 file_index=int(row[f"videos/{VIDEO_KEY}/file_index"]))
        t = float(row[f"videos/{VIDEO_KEY}/from_timestamp"]) + k / fps
        got = None
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            c.seek(int(t / s.time_base), stream=s, backward=True)
            for f in c.decode(s):
                ft = float(f.pts * s.time_base)
                if abs(ft - t) < lerobot.TOLERANCE_S:
                    got = f.to_ndarray(format="rgb24")
                    break
                if ft > t:
                    break
        if got is None:
            mismatches.append(f"episode {e}: no frame at {t:.4f} s in {video.name}")
            continue
        want_i = int(row["egoclean/start_frame"]) + k
        want = None
        for _, rgb in decode_range(Path(src), index_packets(src), want_i, want_i + 1):
            want = rgb
        if want is None:
            mismatches.append(f"episode {e}: source {clip} has no frame {want_i}")
            continue
        checked += 1
        if got.shape != want.shape:
            want = cv2.resize(want, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA)
            mse = float(np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2))
            psnr = float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)
            worst = min(worst, psnr)
            if psnr < min_psnr:
                mismatches.append(f"episode {e} frame {k}: {psnr:.1f} dB against the scaled source (< {min_psnr})")
        elif not np.array_equal(got, want):
            mismatches.append(f"episode {e} frame {k}: differs from {clip} frame {want_i}")
    tmp.cleanup()
    return {"checked": checked, "mismatches": mismatches, "min_psnr": None if worst == float("inf") else worst}



def _fetch(url: str, into: Path) -> Path | None:
    """A local copy of a file at a remote URL (None when it is not there), under a name of its own in `into`."""
    return download(url, into / f"{len(list(into.iterdir()))}-{url.rsplit('/', 1)[-1]}")
