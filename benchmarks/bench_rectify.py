"""Benchmark: EgoClean rectification against the plain decode -> remap -> x264 medium pipe.

Not a test. Generates a textured, moving 1920x1080 H.265 clip (and one 4x longer),
then rectifies each with
  - baseline: the plain approach (VideoCapture -> remap -> raw frames piped to ffmpeg
    libx264 -preset medium -crf 28). There is no system ffmpeg here, so it is rebuilt
    with PyAV: decode to BGR, cv2.remap (same CV_16SC2 maps), PyAV libx264 medium crf 28
    from BGR frames, all in one thread of Python;
  - egoclean: `egoclean.media.rectify.rectify_video` with its defaults (yuv420p planes,
    decode thread, DEFAULT_PRESET / DEFAULT_CRF), plus the other candidates given;
  - h264_nvenc when a CUDA device and the encoder are present (skipped with a line
    otherwise).
Each run is its own subprocess, so its peak RSS (resource.getrusage) is its own.
Quality: PSNR of the decoded output against a float reference (float32 maps,
INTER_LINEAR, on the decoded input frames), over every frame of the short clip.

    .venv/bin/python -m benchmarks.bench_rectify [--seconds 10] [--workdir /tmp/egoclean_bench]
        [--candidates veryfast:26,faster:27]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import ROOT, machine_line, median, run_module
from egoclean.media import video
from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
from egoclean.media.rectify import DEFAULT_CRF, DEFAULT_PRESET, DEFAULT_X264_PARAMS, Rectifier, rectify_video

W, H, FPS = 1920, 1080, 30
CARD = ROOT.parent / "shared" / "data" / "egocentric10k" / "intrinsics_card_1920x1080.json"
CARD_FALLBACK = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
                 "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}


def card_intrinsics() -> FisheyeIntrinsics:
    if CARD.is_file():
        return FisheyeIntrinsics.load(CARD)
    return FisheyeIntrinsics.from_dict(CARD_FALLBACK, source="dataset card (inline copy)")


def _canvas(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A factory-ish texture: 1/f noise, hard-edged boxes, lines and text."""
    img = np.zeros((h, w, 3), np.float32)
    for scale, amp in ((64, 60), (16, 35), (4, 20), (1, 10)):
        # mostly luminance texture with a little colour, like painted metal and concrete
        small = rng.standard_normal((h // scale + 1, w // scale + 1, 1)) + 0.25 * rng.standard_normal(
            (h // scale + 1, w // scale + 1, 3))
        img += amp * cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img += 110
    for _ in range(260):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        bw, bh = int(rng.integers(20, 400)), int(rng.integers(20, 300))
        col = tuple(float(c) for c in rng.integers(40, 200) + rng.integers(-40, 40, 3))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), col, -1 if rng.random() < 0.6 else int(rng.integers(2, 8)))
    for _ in range(40):
        p = tuple(int(v) for v in rng.integers(0, (w, h)))
        q = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.line(img, p, q, tuple(float(c) for c in rng.integers(0, 255, 3)), int(rng.integers(1, 6)), cv2.LINE_AA)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(60):
        org = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.putText(img, f"LINE {int(rng.integers(0, 999)):03d}", org, cv2.FONT_HERSHEY_SIMPLEX,
                    float(rng.uniform(0.5, 2.5)), (240, 240, 240), 2, cv2.LINE_AA)
    return img


def make_clip(path: Path, seconds: float, seed: int = 0) -> Path:
    """A 1920x1080 30 fps H.265 clip: a head-mounted-like camera (pan, bob, roll, zoom)
    over a textured scene with a moving object and sensor noise."""
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    canvas = _canvas(rng, int(W * 1.6), int(H * 1.6))
    n = int(round(seconds * FPS))
    noise = np.empty((H, W, 3), np.int16)
    tmp = path.with_suffix(".part.mp4")
    with video.VideoWriter(tmp, FPS, W, H, codec="libx265", crf=24, preset="ultrafast") as vw:
        for i in range(n):
            t = i / FPS
            cx = canvas.shape[1] / 2 + 300 * math.sin(0.21 * t) + 25 * math.sin(2 * math.pi * 2 * t)
            cy = canvas.shape[0] / 2 + 150 * math.sin(0.13 * t + 1) + 18 * math.sin(2 * math.pi * 2 * t + 0.5)
            m = cv2.getRotationMatrix2D((cx, cy), 4 * math.sin(0.5 * t), 1.0 + 0.08 * math.sin(0.17 * t))
            m[:, 2] += (W / 2 - cx, H / 2 - cy)
            frame = cv2.warpAffine(canvas, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            ox, oy = int(W / 2 + 500 * math.sin(0.9 * t)), int(H / 2 + 200 * math.cos(0.7 * t))
            cv2.rectangle(frame, (ox - 120, oy - 80), (ox + 120, oy + 80), (200, 120, 30), -1)
            cv2.randn(noise, 0, 3)
            vw.write(cv2.add(frame, noise, dtype=cv2.CV_8U))
    tmp.rename(path)
    return path


# ---------------------------------------------------------------- one run (subprocess)

def baseline(in_path: Path, out_path: Path, rect) -> None:
    """The plain approach, rebuilt with PyAV (see the module docstring)."""
    rectifier = Rectifier(rect)
    info = video.probe(in_path)
    with video.VideoWriter(out_path, info.fps, rectifier.width, rectifier.height,
                           codec="libx264", crf=28, preset="medium") as vw:
        for bgr in video.iter_frames(in_path):
            vw.write(rectifier(bgr))


def run_one(method: str, in_path: Path, out_path: Path) -> dict:
    rect = rectified_intrinsics(card_intrinsics(), W, H)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if method == "baseline":
        baseline(in_path, out_path, rect)
    elif method == "nvenc":
        rectify_video(in_path, rect, out_path, crf=None, preset="p5", codec="h264_nvenc", progress=False)
    else:
        spec, _, flag = method.partition("@")
        preset, crf, *params = spec.split(":", 2)
        rectify_video(in_path, rect, out_path, crf=float(crf), preset=preset, progress=False,
                      x264_params=params[0] if params else None, prefetch=flag == "prefetch")
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime)
    n = video.probe(out_path).n_frames
    return {"method": method, "frames": n, "seconds": seconds, "fps": n / seconds, "cpu_ms_per_frame": 1000 * cpu / n,
            "size_bytes": out_path.stat().st_size,
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the process image, while getrusage's
    ru_maxrss survives exec on Linux: a worker spawned by a large parent would report
    the parent's size (every run here read 649 MB that way)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psnr(in_path: Path, out_path: Path) -> float:
    """PSNR (dB, all pixels, BGR) of `out_path` against a float32-map INTER_LINEAR remap
    of the decoded input."""
    rect = rectified_intrinsics(card_intrinsics(), W, H)
    mx, my, _ = rect.float_maps()
    se, count = 0.0, 0
    for a, b in zip(video.iter_frames(in_path), video.iter_frames(out_path)):
        ref = cv2.remap(a, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        se += cv2.norm(ref, b, cv2.NORM_L2SQR)
        count += ref.size
    mse = se / count
    return 10 * math.log10(255 ** 2 / mse) if mse > 0 else float("inf")


def nvenc_available() -> str | None:
    """None when h264_nvenc can encode here, else why not."""
    import av

    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = __import__("fractions").Fraction(1, 30)
        ctx.open()
        return None
    except Exception as e:  # any failure means: not usable on this machine
        return f"{type(e).__name__}: {e}"


def subprocess_run(method: str, in_path: Path, out_path: Path) -> dict:
    out = run_module(__spec__.name, "--worker", method, str(in_path), str(out_path), check=True,
                     capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rounds(clip: Path, wd: Path, ours: str, n: int) -> int:
    """Interleaved timing: each round runs the three methods back to back, so a load
    change hits all of them; the ratio is taken per round, then the median."""
    methods = ["baseline", ours, ours + "@prefetch"]
    fps: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for i in range(n):
        for m in methods:
            r = subprocess_run(m, clip, wd / "out_rounds.mp4")
            fps[m].append(r["fps"])
            cpu[m].append(r["cpu_ms_per_frame"])
        print(f"round {i + 1}: " + "  ".join(f"{m} {fps[m][-1]:.1f} fps" for m in methods), flush=True)
    print("\n| method | wall fps per round | median x baseline (per-round ratios) | CPU ms/frame (median) |")
    print("|---|---|---|---|")
    for m in methods:
        ratios = [a / b for a, b in zip(fps[m], fps["baseline"])]
        print(f"| {m} | {', '.join(f'{v:.1f}' for v in fps[m])} | {median(ratios):.2f} "
              f"({', '.join(f'{v:.2f}' for v in ratios)}) | {median(cpu[m]):.1f} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="short clip length (the long one is 4x)")
    p.add_argument("--workdir", default="/tmp/egoclean_bench")
    p.add_argument("--candidates", default="",
                   help="extra preset:crf[:x264-params] runs on the short clip, separated by ';'")
    p.add_argument("--no-long", action="store_true", help="skip the 4x clip")
    p.add_argument("--rounds", type=int, default=0,
                   help="only time baseline / egoclean / egoclean with the decode thread, interleaved, "
                        "this many rounds on the short clip (wall-clock ratios under a varying load)")
    p.add_argument("--worker", nargs=3, metavar=("METHOD", "IN", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        method, i, o = args.worker
        print(json.dumps(run_one(method, Path(i), Path(o))))
        return 0

    wd = Path(args.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    print(f"# bench_rectify; {machine_line(f'opencv {cv2.__version__}')}")
    t0 = time.perf_counter()
    short = make_clip(wd / f"clip_{args.seconds:g}s.mp4", args.seconds)
    clips = [("short", short)]
    if not args.no_long:
        clips.append(("long", make_clip(wd / f"clip_{4 * args.seconds:g}s.mp4", 4 * args.seconds, seed=0)))
    print(f"clips generated/cached in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{k} {video.probe(c).n_frames} frames {video.probe(c).size_bytes / 1e6:.1f} MB"
                      for k, c in clips))

    ours = f"{DEFAULT_PRESET}:{DEFAULT_CRF:g}" + (f":{DEFAULT_X264_PARAMS}" if DEFAULT_X264_PARAMS else "")
    if args.rounds:
        return rounds(short, wd, ours, args.rounds)
    methods = ["baseline", ours] + [c for c in args.candidates.split(";") if c and c != ours]
    why = nvenc_available()
    if why is None:
        methods.append("nvenc")
    else:
        print(f"h264_nvenc: skipped ({why.splitlines()[0][:120]})")

    rows = []
    for label, clip in clips:
        for m in methods if label == "short" else ["baseline", ours]:
            out = wd / f"out_{label}_{m.replace(':', '_')}.mp4"
            r = subprocess_run(m, clip, out)
            r["clip"] = label
            r["psnr_db"] = psnr(clip, out) if label == "short" else float("nan")
            rows.append(r)
            print(f"  {label:5s} {m:16s} {r['fps']:6.1f} fps  {r['cpu_ms_per_frame']:5.1f} CPU ms/frame  "
                  f"{r['size_bytes'] / 1e6:7.2f} MB  "
                  f"PSNR {r['psnr_db']:6.2f} dB  peak RSS {r['peak_rss_mb']:6.0f} MB", flush=True)

    base = {r["clip"]: r for r in rows if r["method"] == "baseline"}
    print("\n| clip | method | fps | x baseline fps | CPU ms/frame | x baseline CPU | PSNR dB | dPSNR dB "
          "| size MB | x baseline size | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = base[r["clip"]]
        print(f"| {r['clip']} ({r['frames']} fr) | {r['method']} | {r['fps']:.1f} | {r['fps'] / b['fps']:.2f} | "
              f"{r['cpu_ms_per_frame']:.1f} | {b['cpu_ms_per_frame'] / r['cpu_ms_per_frame']:.2f} | "
              f"{r['psnr_db']:.2f} | {r['psnr_db'] - b['psnr_db']:+.2f} | {r['size_bytes'] / 1e6:.2f} | "
              f"{r['size_bytes'] / b['size_bytes']:.3f} | {r['peak_rss_mb']:.0f} |")
    if len(clips) > 1:
        for m in ("baseline", ours):
            s = next(r for r in rows if r["clip"] == "short" and r["method"] == m)
            lg = next(r for r in rows if r["clip"] == "long" and r["method"] == m)
            print(f"peak RSS long/short for {m}: {lg['peak_rss_mb'] / s['peak_rss_mb']:.3f}")
    print(f"total benchmark time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
