"""GPU benchmark: the resident Ray encoder actor (ViT-L bf16, random weights) fed by 1, 2, 4, 8 parallel clip decoders.

What Ray mode does on a GPU node, measured end to end: one `EncoderActor`
(egoclean.cluster.ray_pipeline, `num_gpus=1`) loads V-JEPA 2 ViT-L once; N `embed_clip` tasks
decode N generated 1080p H.265 clips at once (CPU, PyAV) and send their windows to it;
the actor batches windows of all of them into each forward pass. For N = 1, 2, 4, 8 it
reports windows/s, MFU (windows/s x 11.6 TFLOP / peak) and the actor's busy fraction
(GPU-bound when near 1, decode-bound when low), so it shows how many decoders keep one
GPU fed. It also measures NVDEC (`hevc_cuvid` in the PyAV wheel's FFmpeg) decode
alone, 1-8 decoders in parallel, when the node has it (the embed tasks decode on the
CPU today; NVDEC in the embed path is not implemented).

Ray binds every interface and probes an outside address at start-up, so the script
re-runs itself in a loopback-only network namespace (root: `unshare --net`).

Usage (GPU node):   sudo .venv/bin/python -m benchmarks.gpu_ray_encoder [--peak-tflops 790] [--out res.json]
Logic check (CPU):  sudo .venv/bin/python -m benchmarks.gpu_ray_encoder --cpu-smoke
Target: >= 40 % MFU end to end (>= ~27 windows/s on an H200).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import machine_line
from tests.support.ray_head import rerun_in_loopback_namespace


def nvdec_rate(path: Path, n: int, seconds_cap: float = 60.0) -> float | None:
    """Frames/s of n parallel hevc_cuvid decoders on `path` (None: no NVDEC here)."""
    import av

    if "hevc_cuvid" not in av.codecs_available:
        return None
    counts = [0] * n
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            with av.open(str(path)) as c:
                s = c.streams.video[0]
                ctx = av.CodecContext.create("hevc_cuvid", "r")
                ctx.extradata = s.codec_context.extradata
                t0 = time.perf_counter()
                for pkt in c.demux(s):
                    for _ in ctx.decode(pkt):
                        counts[i] += 1
                    if time.perf_counter() - t0 > seconds_cap:
                        break
        except Exception as e:  # no device / driver: reported, not fatal
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors and not sum(counts):
        print(f"  NVDEC unavailable: {errors[0][:200]}", flush=True)
        return None
    return sum(counts) / (time.perf_counter() - t0)


def inside(args) -> dict:
    import ray
    import torch

    from egoclean.cluster import ray_pipeline as rp
    from benchmarks.gpu_vitl import TINY, VITL, encoder_flops, make_clip

    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("gpu_ray_encoder: no CUDA device (use --cpu-smoke for a logic check)", file=sys.stderr)
        raise SystemExit(2)
    arch = TINY if smoke else VITL
    flop = encoder_flops(arch)
    peak = args.peak_tflops * 1e12
    work = Path(tempfile.mkdtemp(prefix="gpu_ray_"))
    decoders = [int(x) for x in args.decoders.split(",")]
    w, h = (320, 180) if smoke else (args.width, args.height)
    seconds = 4.0 if smoke else args.seconds
    print(f"clips: {max(decoders)} x {seconds:g} s {w}x{h} H.265 ...", flush=True)
    template = make_clip(work / "template.mp4", seconds, w, h)
    ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=0 if smoke else torch.cuda.device_count(),
             include_dashboard=False, log_to_driver=False, namespace="egoclean-bench")
    if smoke:
        from egoclean.embed.tiny_model import save_tiny_model

        encoder = {"model": str(save_tiny_model(work / "tiny")), "device": "cpu"}
    else:
        encoder = {"model": "facebook/vjepa2-vitl-fpc64-256", "random_weights": True, "device": "cuda",
                   "dtype": "bf16"}
    cfg = rp.RayConfig(actor_name="bench-encoder", actor_num_gpus=0 if smoke else 1,
                       actor_num_cpus=1 if smoke else 2, batch_size=args.batch, batch_wait_s=0.02,
                       send_windows=2, in_flight=3, embed_cpus=args.embed_cpus)
    actor = rp.encoder_actors(cfg, encoder)[0]
    spec = ray.get(actor.spec.remote(), timeout=1200)
    embed = ray.remote(rp.embed_clip).options(num_cpus=cfg.embed_cpus)
    rows = []
    # warm-up: kernels and allocator on one clip
    jobs = []
    for i in range(max(decoders)):
        key = f"factory001_worker001_{i:05d}"
        d = work / key
        d.mkdir()
        os.link(template, d / f"{key}_rectified.mp4")
        jobs.append(rp.ClipJob(key, str(d)))
    ray.get(embed.remote(actor, spec, jobs[0], {}, cfg.send_windows, cfg.in_flight))
    for n in decoders:
        before = ray.get(actor.stats.remote())
        t0 = time.perf_counter()
        # {}: the rectified video's facts, only carried into the Embedded results (not read here)
        outs = ray.get([embed.remote(actor, spec, j, {}, cfg.send_windows, cfg.in_flight) for j in jobs[:n]])
        wall = time.perf_counter() - t0
        after = ray.get(actor.stats.remote())
        windows = sum(o.windows for o in outs)
        busy = (after["busy_seconds"] - before["busy_seconds"]) / wall
        mixed = after["mixed_batches"] - before["mixed_batches"]
        wps = windows / wall
        row = {"decoders": n, "windows": windows, "wall_s": wall, "windows_per_s": wps, "mfu": wps * flop / peak,
               "actor_busy_fraction": busy, "mixed_batches": mixed,
               "frames_per_s": wps * 30, "nvdec_frames_per_s": None if smoke else nvdec_rate(template, n)}
        rows.append(row)
        print(f"  {n} decoder(s): {wps:7.2f} windows/s  MFU {100 * row['mfu']:5.1f} %  actor busy "
              f"{100 * busy:5.1f} %  mixed batches {mixed}  NVDEC {row['nvdec_frames_per_s']}", flush=True)
    stats = ray.get(actor.stats.remote())
    ray.kill(actor, no_restart=True)
    ray.shutdown()
    best = max(rows, key=lambda r: r["windows_per_s"])
    return {"device": "cpu (smoke)" if smoke else torch.cuda.get_device_name(0), "peak_tflops": args.peak_tflops,
            "tflop_per_window": flop / 1e12, "model_load_s": stats["load_seconds"], "loads": 1, "rows": rows,
            "best": best, "target_met": (not smoke) and best["mfu"] >= 0.40}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decoders", default="1,2,4,8")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--batch", type=int, default=8, help="windows per forward pass in the actor")
    p.add_argument("--embed-cpus", type=float, default=2.0, help="Ray CPUs per decoding task")
    p.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak (H200 SXM: 790 here)")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny model on the CPU: checks the logic, not speed")
    p.add_argument("--out", default=None)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.cpu_smoke and args.decoders == "1,2,4,8":
        args.decoders, args.embed_cpus = "1,2", 0.5
    if not args.inside:
        # token authentication with a token made for this run (nothing written to ~/.ray)
        env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
        return rerun_in_loopback_namespace(__spec__.name, [*sys.argv[1:], "--inside"], env=env)
    res = inside(args)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=2, default=str))
    print(machine_line(res["device"]))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
