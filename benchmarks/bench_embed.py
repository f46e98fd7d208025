"""Benchmark: streaming `embed_video` against a plain per-window baseline (tiny model, CPU).

Both run in the same process on the same generated H.265 clip:

- baseline: for each window, seek to its first frame, decode its 64 frames, preprocess
  the full-resolution frames (`preprocess_frames`, float32), one window per forward
  pass through the model's `get_vision_features`;
- streaming: `egoclean.embed.encoder.embed_video` (decode once, resize+crop each frame once
  into a ring buffer, windows batched, decode thread) with and without the thread.

The results are checked to agree before any speed is reported. Usage:

    .venv/bin/python -m benchmarks.bench_embed [--seconds 15] [--width 1920 --height 1080]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from benchmarks.common import machine, machine_line, median, ratio
from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder
from egoclean.embed.preprocess import preprocess_frames
from egoclean.embed.tiny_model import save_tiny_model
from egoclean.media.video import VideoWriter, probe
from egoclean.embed.windows import window_starts


def make_clip(path: Path, seconds: float, width: int, height: int, fps: float = 30.0) -> Path:
    """A textured, moving H.265 clip (libx265 defaults: keyint 250, as a camera export
    would have long GOPs), so decoding costs what real footage costs."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(base, 8, 0), 8, 1)[:height, :width]
    with VideoWriter(path, fps, width, height, codec="libx265", crf=23, preset="ultrafast") as w:
        for i in range(int(seconds * fps)):
            f = np.roll(base, shift=(3 * i, 5 * i), axis=(0, 1))
            f[(i * 7) % height : (i * 7) % height + 60] = 255 - f[(i * 7) % height : (i * 7) % height + 60]
            w.write(f)
    return path


def decode_window(path: Path, start: int, size: int, fps: float) -> np.ndarray:
    """Seek to frame `start` and decode `size` RGB frames (what a per-window tool does)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        t0 = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
        c.seek(int((t0 + start / fps) / s.time_base), stream=s, backward=True, any_frame=False)
        out = []
        for frame in c.decode(s):
            idx = int(round((frame.time - t0) * fps))
            if idx < start:
                continue
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == size:
                break
    if len(out) != size:
        raise RuntimeError(f"baseline: window at frame {start} decoded {len(out)} of {size} frames")
    return np.stack(out)


def baseline(path: Path, enc, fps: float, n_frames: int) -> tuple[np.ndarray, float]:
    starts = window_starts(n_frames, fps, enc.frames_per_window)
    embs = []
    t = time.perf_counter()
    for s in starts:
        frames = decode_window(path, s, enc.frames_per_window, fps)
        x = torch.from_numpy(preprocess_frames(frames, enc.shortest_edge, enc.crop))[None]
        with torch.inference_mode():
            embs.append(enc.model.encoder(pixel_values_videos=x).last_hidden_state.mean(1).numpy())
    return np.concatenate(embs), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip", default=None, help="use this clip instead of generating one")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip = Path(args.clip) if args.clip else make_clip(tmp / "bench.mp4", args.seconds, args.width, args.height)
        info = probe(clip)
        enc = load_encoder(EncoderConfig(str(save_tiny_model(tmp / "tiny")), device="cpu"))

        # Interleaved repeats, median time of each: other load on the machine hits all
        # three paths alike, so the ratios stay fair.
        times: dict[str, list[float]] = {"base": [], "seq": [], "thr": []}
        outs = {}
        for _ in range(args.repeats):
            ref, t_base = baseline(clip, enc, info.fps, info.n_frames)
            times["base"].append(t_base)
            for key, pre in (("seq", False), ("thr", True)):
                t = time.perf_counter()
                out = embed_video(clip, enc, batch_size=args.batch, progress=False, prefetch=pre)
                times[key].append(time.perf_counter() - t)
                outs[key] = out
        t_base, t_seq, t_thr = (median(times[k]) for k in ("base", "seq", "thr"))
        seq, thr = outs["seq"], outs["thr"]

        n = len(ref)
        assert len(seq) == len(thr) == n, (len(seq), len(thr), n)
        # Same windows, same preprocessing maths: the embeddings must agree before the
        # speeds mean anything.
        np.testing.assert_allclose(thr.emb, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(seq.emb, ref, rtol=1e-4, atol=1e-5)

    res = {
        "clip": f"{info.width}x{info.height} H.265 {info.fps:g} fps, {info.n_frames} frames, {n} windows",
        "machine": f"{machine()}, {torch.get_num_threads()} torch threads",
        "repeats": args.repeats,
        "baseline_win_s": n / t_base,
        "stream_no_thread_win_s": n / t_seq,
        "stream_thread_win_s": n / t_thr,
        "speedup_no_thread": t_base / t_seq,
        "speedup_thread": t_base / t_thr,
        "thread_gain": t_seq / t_thr,
    }
    print(json.dumps(res, indent=2))
    print()
    print("| path | windows/s | vs baseline |")
    print("|---|---:|---:|")
    print("| baseline: seek + decode 64 frames per window, full-res preprocess, batch 1 | "
          f"{res['baseline_win_s']:.2f} | 1.00x |")
    print(f"| embed_video, no decode thread, batch {args.batch} | {res['stream_no_thread_win_s']:.2f} | "
          f"{ratio(t_base, t_seq)} |")
    print(f"| embed_video, decode thread, batch {args.batch} | {res['stream_thread_win_s']:.2f} | "
          f"{ratio(t_base, t_thr)} |")
    print(machine_line(f"{torch.get_num_threads()} torch threads"))


if __name__ == "__main__":
    main()
