"""Benchmark of the LeRobot export (egoclean.export): stream copy vs re-encoding every episode.

Not a test. Writes `--clips` H.264 clips like rectified_clip's (libx264 with
egoclean.media.rectify's preset, CRF and x264 parameters; synthetic work-bench frames rendered
small and scaled up, so they compress like camera video, not like noise), each with a
planted anomalous span, and exports their work spans as fixed-length episodes of
`--episode` seconds twice, into fresh directories, in one run:

  - egoclean: the default path, episodes as time ranges of the source video copied
    packet for packet (egoclean.media.remux), plus the decode of the sampled frames the
    image statistics need;
  - baseline: every episode's frames decoded and re-encoded (the same export with
    `resolution` = the clip's own height: the path `--resolution` takes).

It prints episodes/s, source-video MB/s (the MB of source video the kept spans cover,
per second of export), output size, and the ratios egoclean / baseline; medians of
`--repeat` runs.

    .venv/bin/python -m benchmarks.bench_export [--width 1280 --height 720 --duration 30 --clips 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import machine_line, median, ratio
from egoclean.export.episodes import EpisodeParams
from egoclean.export import ClipInput, ExportOptions, export_dataset
from egoclean.media.rectify import DEFAULT_CRF, DEFAULT_PRESET, DEFAULT_X264_PARAMS
from egoclean.synth import ClipRenderer, synth_intrinsics
from egoclean.media.video import VideoWriter


def write_clip(path: Path, width: int, height: int, duration: float, seed: int) -> None:
    intr = synth_intrinsics(320, 180)
    r = ClipRenderer(intr, 30.0, scene_seed=seed, clip_seed=[seed, 1])
    with VideoWriter(path, 30.0, width, height, crf=DEFAULT_CRF, preset=DEFAULT_PRESET,
                     options={"x264-params": DEFAULT_X264_PARAMS}) as w:
        for frame in r.frames(int(duration * 30)):
            w.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR))


def clip_input(i: int, path: Path, width: int, height: int, duration: float) -> ClipInput:
    # an off-task span in the middle; the rest is work
    a, b = duration * 0.4, duration * 0.55
    ts = np.arange(0.0, duration - 64 / 30, 1.0)
    return ClipInput(
        clip_id=f"factory001_worker001_{i:05d}", video=path, fps=30.0, width=width, height=height,
        duration_sec=duration, model="benchmark", random_weights=True, work=[(0.0, a), (b, float(ts[-1]))],
        anomalies=[(a, b)], window_ts=ts, window_scores=np.zeros(len(ts)),
        camera_matrix=[[width * 0.5, 0, width / 2], [0, width * 0.5, height / 2], [0, 0, 1]],
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per clip")
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--episode", type=float, default=5.0, help="episode length, seconds")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        t0 = time.perf_counter()
        clips = []
        for i in range(args.clips):
            path = work / f"clip{i}.mp4"
            write_clip(path, args.width, args.height, args.duration, seed=i)
            clips.append(clip_input(i, path, args.width, args.height, args.duration))
        src_mb = sum(c.video.stat().st_size for c in clips) / 1e6
        print(f"{args.clips} clip(s) of {args.duration:g} s at {args.width}x{args.height} "
              f"({src_mb:.1f} MB) written in {time.perf_counter() - t0:.1f} s", flush=True)
        params = EpisodeParams(split_cycles=False, max_episode_sec=args.episode, min_episode_sec=1.0, margin_sec=1.0)
        results = {}
        for name, resolution in (("egoclean (stream copy)", None), ("baseline (re-encode)", args.height)):
            times, rep = [], None
            for r in range(args.repeat):
                out = work / f"out-{resolution}-{r}"
                t = time.perf_counter()
                rep = export_dataset(out, clips, ExportOptions(params=params, resolution=resolution, check=False))
                times.append(time.perf_counter() - t)
            sec = median(times)
            covered_mb = rep.kept_sec / (args.duration * args.clips) * src_mb
            results[name] = {"sec": sec, "episodes": rep.episodes_added, "eps_per_s": rep.episodes_added / sec,
                             "mb_per_s": covered_mb / sec, "out_mb": rep.bytes_video / 1e6, "kept_sec": rep.kept_sec}
            print(f"{name:24s} {sec:7.2f} s  {rep.episodes_added} episodes ({rep.kept_sec:.0f} s of video)  "
                  f"{rep.episodes_added / sec:6.2f} episodes/s  {covered_mb / sec:6.2f} source MB/s  "
                  f"output {rep.bytes_video / 1e6:.1f} MB", flush=True)
        e, b = results["egoclean (stream copy)"], results["baseline (re-encode)"]
        print(f"\nratio egoclean / baseline: {ratio(e['eps_per_s'], b['eps_per_s'])} episodes/s, "
              f"{ratio(e['mb_per_s'], b['mb_per_s'])} MB/s; output size {ratio(e['out_mb'], b['out_mb'])}")
        print(machine_line())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
