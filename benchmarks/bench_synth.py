"""Benchmark of the synthetic clip generator (egoclean.synth): rendering vs encoding.

Not a test. For one clip at `--width` x `--height`, `--fps`, it times
  - baseline: `write_clip` of a `--duration` s clip (3D ray-cast through the fisheye +
    libx265 "fast" encode, the generator's default), end to end;
  - rendering only: the same frames rendered and dropped (no encoder);
  - a 3x longer clip written the same way, to show time is linear and memory flat.
Each case runs in its own subprocess, so its peak RSS (ru_maxrss) is its own.
Ratios are against the baseline of this run.

    .venv/bin/python -m benchmarks.bench_synth [--width 480 --height 270 --duration 60]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_line, ratio, run_module


def run_case(case: str, width: int, height: int, fps: float, duration: float) -> dict:
    """Run one case in this process and return its figures."""
    from egoclean import synth

    intr = synth.synth_intrinsics(width, height)
    spans = synth.plan_spans(duration, 0, __import__("numpy").random.default_rng(0))
    renderer = synth.ClipRenderer(intr, fps, spans, scene_seed=0, clip_seed=0)
    n = int(round(duration * fps))
    t0 = time.perf_counter()
    if case == "render":
        for _ in renderer.frames(n):
            pass
    else:
        with tempfile.TemporaryDirectory() as d:
            synth.write_clip(Path(d) / "clip.mp4", renderer, n)
    wall = time.perf_counter() - t0
    return {"frames": n, "wall_s": wall, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=270)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.case:
        print(json.dumps(run_case(a.case, a.width, a.height, a.fps, a.duration)))
        return

    def sub(case: str, duration: float) -> dict:
        out = run_module(__spec__.name, "--case", case, "--width", str(a.width), "--height", str(a.height),
                         "--fps", str(a.fps), "--duration", str(duration), check=True, capture_output=True,
                         text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    cases = [
        ("write_clip (render + x265 fast), baseline", sub("write", a.duration)),
        ("render only (3D ray-cast through the fisheye, no encoder)", sub("render", a.duration)),
        (f"write_clip, {3 * a.duration:g} s clip", sub("write", 3 * a.duration)),
    ]
    base = cases[0][1]["wall_s"]
    print(machine_line())
    print(f"clip: {a.width}x{a.height}, {a.fps:g} fps, {a.duration:g} s\n")
    print("| case | frames | wall (s) | wall / baseline | frames/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, r in cases:
        print(f"| {name} | {r['frames']} | {r['wall_s']:.2f} | {ratio(r['wall_s'], base)} | "
              f"{r['frames'] / r['wall_s']:.0f} | {r['rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
