"""GPU benchmark: V-JEPA 2 ViT-L (random weights, bf16) windows/s, MFU, and whether decoding keeps up.

Self-contained: needs only torch (CUDA), transformers, numpy and PyAV; no hub access
(the facebook/vjepa2-vitl-fpc64-256 architecture is embedded below) and no egoclean
import. It measures, in one run:

1. model only: encoder forward on device-resident inputs, batch sizes 1..8, windows/s
   and model FLOP utilisation (MFU = windows/s x FLOP per window / peak);
2. decoding: a generated 1080p H.265 clip (and a 292x292 rendition) decoded with PyAV
   (threaded), alone and with several decoders in parallel, with and without the uint8
   resize + centre crop; compared with the frames/s the model needs (windows/s x stride);
3. end to end: decode threads -> resize/crop (uint8, = the hub processor) -> ring
   buffer -> batched windows -> normalise on the GPU -> encoder, for one clip and for
   several clips in parallel, 1080p and the 292 rendition; windows/s and MFU.

Usage (on a CUDA machine):   .venv/bin/python -m benchmarks.gpu_vitl [--peak-tflops 790] [--out res.json]
Logic check on a CPU:        .venv/bin/python -m benchmarks.gpu_vitl --cpu-smoke
(It imports nothing of this repository, so the file alone also runs as a script on a GPU box.)
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

# facebook/vjepa2-vitl-fpc64-256 (config.json of the hub repo, architecture fields).
VITL = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4.0, patch_size=16,
    tubelet_size=2, crop_size=256, frames_per_clip=64, in_chans=3, qkv_bias=True, hidden_act="gelu",
    layer_norm_eps=1e-6, pred_hidden_size=384, pred_num_hidden_layers=12, pred_num_attention_heads=12,
    pred_num_mask_tokens=10, pred_mlp_ratio=4.0, num_pooler_layers=3,
)
# A tiny stand-in for --cpu-smoke (same window logic; crop 128 -> short side 146, even,
# so the rendition is encodable in yuv420p; checks the script, not the speed).
TINY = VITL | dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2.0, crop_size=128,
                   pred_hidden_size=32, pred_num_hidden_layers=1, pred_num_attention_heads=2)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SPEC_TFLOP_PER_WINDOW = 11.6


def encoder_flops(c: dict) -> float:
    """Forward FLOPs (2 per multiply-add) of the encoder for one window."""
    d, L = c["hidden_size"], c["num_hidden_layers"]
    n = (c["frames_per_clip"] // c["tubelet_size"]) * (c["crop_size"] // c["patch_size"]) ** 2
    mlp = int(d * c["mlp_ratio"])
    patch = 2 * n * d * 3 * c["tubelet_size"] * c["patch_size"] ** 2
    linear = 2 * n * (4 * d * d + 2 * d * mlp)  # q, k, v, out; fc1, fc2
    attn = 2 * 2 * n * n * d  # QK^T and AV
    return patch + L * (linear + attn)


def build_model(c: dict, device: torch.device, dtype: torch.dtype):
    from transformers import VJEPA2Config, VJEPA2Model

    cfg = VJEPA2Config(**c)
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = VJEPA2Model(cfg)
    model.predictor = None  # only the encoder runs
    return model.to(dtype=dtype).eval()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(model, c, device, dtype, batches, iters, peak) -> list[dict]:
    fr, crop = c["frames_per_clip"], c["crop_size"]
    flop = encoder_flops(c)
    out = []
    for b in batches:
        x = torch.randn(b, fr, 3, crop, crop, device=device, dtype=dtype)
        try:
            with torch.inference_mode():
                for _ in range(2):  # warm-up: kernels, allocator
                    model.encoder(pixel_values_videos=x)
                sync(device)
                t = time.perf_counter()
                for _ in range(iters):
                    model.encoder(pixel_values_videos=x).last_hidden_state.float().mean()
                sync(device)
                dt = time.perf_counter() - t
        except torch.OutOfMemoryError:
            out.append({"batch": b, "error": "out of memory"})
            break
        wps = b * iters / dt
        mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        out.append({"batch": b, "win_s": wps, "ms_per_window": 1e3 / wps, "mfu": wps * flop / peak,
                    "max_mem_gib": mem})
        print(f"  model batch {b}: {wps:7.2f} windows/s  MFU {100 * wps * flop / peak:5.1f} %  mem {mem:.1f} GiB",
              flush=True)
        del x
    return out


def make_clip(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """Textured moving H.265 clip (libx265 ultrafast, default long GOP)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(base, 8, 0), 8, 1)[:height, :width]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "23", "x265-params": "log-level=error"}
        s.thread_type = "AUTO"
        for i in range(int(seconds * fps)):
            f = np.roll(base, shift=(3 * i, 5 * i), axis=(0, 1))
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return path


def resize_crop(rgb: np.ndarray, short: int, crop: int) -> torch.Tensor:
    """uint8 (T,H,W,3) -> uint8 (T,crop,crop,3): antialiased bilinear on uint8 (what
    torchvision, hence the hub's VJEPA2VideoProcessor, does), then centre crop."""
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2)
    _, _, h, w = x.shape
    nh, nw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = int((nh - crop) / 2), int((nw - crop) / 2)
    return x[:, :, top : top + crop, left : left + crop].permute(0, 2, 3, 1)


def decode(path: Path, threads: int, preprocess: tuple[int, int] | None, chunk: int = 8):
    """Yield frames (or resized crops in chunks) of `path`; PyAV frame threading."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.codec_context.thread_count = threads
        pend = []
        for fr in c.decode(s):
            a = fr.to_ndarray(format="rgb24")
            if preprocess is None:
                yield a
                continue
            pend.append(a)
            if len(pend) == chunk:
                yield from resize_crop(np.stack(pend), *preprocess)
                pend = []
        if pend:
            yield from resize_crop(np.stack(pend), *preprocess)


def bench_decode(path: Path, n_parallel: int, threads: int, preprocess) -> float:
    """Aggregate frames/s of `n_parallel` decoders, each decoding the whole clip."""
    counts = [0] * n_parallel

    def run(i):
        for _ in decode(path, threads, preprocess):
            counts[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n_parallel)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return sum(counts) / (time.perf_counter() - t)


def clip_windows(path: Path, c: dict, short: int, stride: int, threads: int, out: queue.Queue):
    """Decode one clip once; put each completed 64-frame window (uint8) on `out`."""
    fr, crop = c["frames_per_clip"], c["crop_size"]
    ring = torch.empty((fr, crop, crop, 3), dtype=torch.uint8)
    for i, f in enumerate(decode(path, threads, (short, crop))):
        ring[i % fr] = f
        s = i + 1 - fr
        if s >= 0 and s % stride == 0:
            k = s % fr
            out.put(torch.cat([ring[k:], ring[:k]]))


def bench_e2e(model, c, device, dtype, paths, short, stride, batch, threads, peak) -> dict:
    """Windows/s from clip files to encoder outputs, clips decoded in parallel."""
    q: queue.Queue = queue.Queue(maxsize=4 * batch)
    done = object()
    errors = []

    def worker(p):
        try:
            clip_windows(p, c, short, stride, threads, q)
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            q.put(done)

    mean = torch.tensor(MEAN, device=device) * 255
    std = torch.tensor(STD, device=device) * 255
    n_win, live = 0, len(paths)
    with torch.inference_mode():  # warm-up outside the timed part
        model.encoder(pixel_values_videos=torch.zeros(batch, c["frames_per_clip"], 3, c["crop_size"],
                                                      c["crop_size"], device=device, dtype=dtype))
    sync(device)
    t = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(p,), daemon=True) for p in paths]
    for th in ts:
        th.start()
    pending = []
    while live or pending:
        item = q.get() if live else None
        if item is done:
            live -= 1
        elif item is not None:
            pending.append(item)
        if pending and (len(pending) == batch or not live):
            x = torch.stack(pending)
            if device.type == "cuda":
                x = x.pin_memory().to(device, non_blocking=True)
            x = ((x.float() - mean) / std).permute(0, 1, 4, 2, 3).to(dtype)
            with torch.inference_mode():
                tok = model.encoder(pixel_values_videos=x).last_hidden_state
                tok.float().mean(1).cpu()  # the outputs come back to the host, as in embed_video
            n_win += len(pending)
            pending = []
    sync(device)
    dt = time.perf_counter() - t
    if errors:
        raise errors[0]
    wps = n_win / dt
    return {"windows": n_win, "win_s": wps, "mfu": wps * encoder_flops(c) / peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak of the GPU (H200: ~790)")
    ap.add_argument("--batches", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the generated clips")
    ap.add_argument("--parallel", default="1,2,4,8", help="numbers of clips decoded in parallel")
    ap.add_argument("--e2e-batch", type=int, default=0, help="batch for end to end (0: best model-only)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch CPU threads for the resize (0: torch's default); parallel decoders share them")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model on CPU: checks the script's logic only")
    args = ap.parse_args()

    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        print("gpu_vitl.py: no CUDA device (torch.cuda.is_available() is False; torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda}). Run it on a CUDA machine, "
              "or with --cpu-smoke to check the script's logic on a CPU.", file=sys.stderr)
        return 2
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = torch.device("cpu" if smoke else "cuda")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    if smoke:
        dtype = torch.float32
    c = TINY if smoke else VITL
    peak = args.peak_tflops * 1e12
    batches = [int(b) for b in args.batches.split(",")] if not smoke else [1, 2]
    parallel = [int(p) for p in args.parallel.split(",")] if not smoke else [1, 2]
    seconds = 4.0 if smoke else args.seconds
    res: dict = {
        "device": torch.cuda.get_device_name() if not smoke else "cpu (smoke)",
        "torch": torch.__version__, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "dtype": str(dtype),
        "flop_per_window_tflop": encoder_flops(c) / 1e12, "spec_tflop_per_window": SPEC_TFLOP_PER_WINDOW,
        "peak_tflops": args.peak_tflops,
    }
    print(json.dumps(res), flush=True)

    t = time.perf_counter()
    model = build_model(c, device, dtype)
    res["build_s"] = time.perf_counter() - t
    print("1. model only", flush=True)
    res["model"] = mb = bench_model(model, c, device, dtype, batches, 2 if smoke else args.iters, peak)
    ok = [r for r in mb if "win_s" in r]
    best = max(ok, key=lambda r: r["win_s"])
    res["model_best"] = best

    fps, stride, crop = 30, 30, c["crop_size"]
    short = int(crop * 256 / 224)  # 292 for 256, the hub processor's shortest_edge
    need = best["win_s"] * stride  # frames/s one stream of windows consumes
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        w, h = (1920, 1080) if not smoke else (320, 180)
        hd = make_clip(Path(tmp) / "hd.mp4", seconds, w, h, fps)
        # The square rendition egoclean.embed.preprocess.rendition_uint8 makes: identity resize,
        # then the 256 crop equals the hub processor's crop of the full frame.
        rw = short
        rend = make_clip(Path(tmp) / "rend.mp4", seconds, rw, short, fps)
        res["clip_gen_s"] = time.perf_counter() - t
        print(f"2. decoding ({w}x{h} and {rw}x{short} H.265, {int(seconds * fps)} frames); model needs "
              f"{need:.0f} frames/s at {best['win_s']:.1f} windows/s", flush=True)
        dec = []
        for name, path in ((f"{h}p", hd), (f"{short}x{short} rendition", rend)):
            for pre in (None, (short, crop)):
                for n in parallel:
                    thr = 0 if n == 1 else max(1, (os.cpu_count() or 2) // n)
                    f = bench_decode(path, n, thr, pre)
                    row = {"clip": name, "preprocess": pre is not None, "parallel": n, "fps": f,
                           "keeps_up": f >= need}
                    dec.append(row)
                    print(f"  {name:16s} {'decode+resize/crop' if pre else 'decode only':18s} x{n}: "
                          f"{f:7.0f} frames/s  {'keeps up' if f >= need else 'too slow'}", flush=True)
        res["decode"] = dec

        b = args.e2e_batch or best["batch"]
        print(f"3. end to end (batch {b})", flush=True)
        e2e = []
        for name, path in ((f"{h}p", hd), (f"{short}x{short} rendition", rend)):
            for n in parallel:
                thr = 0 if n == 1 else max(1, (os.cpu_count() or 2) // n)
                r = bench_e2e(model, c, device, dtype, [path] * n, short, stride, b, thr, peak)
                r |= {"clip": name, "parallel_clips": n, "batch": b}
                e2e.append(r)
                print(f"  {name:16s} {n} clip(s) in parallel: {r['win_s']:7.2f} windows/s  "
                      f"MFU {100 * r['mfu']:5.1f} %", flush=True)
        res["e2e"] = e2e

    hd_one = next(r for r in dec if r["clip"] == f"{h}p" and r["preprocess"] and r["parallel"] == 1)
    best_e2e = max(e2e, key=lambda r: r["win_s"])
    res["verdict"] = {
        "frames_per_s_needed": need,
        "one_1080p_decoder_keeps_up": hd_one["keeps_up"],
        "one_rendition_decoder_keeps_up": next(
            r for r in dec if r["clip"].endswith("rendition") and r["preprocess"] and r["parallel"] == 1)["keeps_up"],
        "decoders_needed_1080p": next((r["parallel"] for r in dec if r["clip"] == f"{h}p" and r["preprocess"]
                                       and r["keeps_up"]), None),
        "best_e2e": best_e2e,
        "e2e_mfu_target_met": best_e2e["mfu"] >= 0.40,
    }
    print("verdict:", json.dumps(res["verdict"]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
