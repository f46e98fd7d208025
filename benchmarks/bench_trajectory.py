"""Visual odometry: speed per core on 1080p input, accuracy on rendered head-motion clips, and
COLMAP's incremental mapping (pycolmap, known intrinsics) on the same clip as the anchor.

Clips: tests/support/room.py renders a textured room with depth (floor, walls, bench,
bins) seen by a 90-degree pinhole camera (a rectified head camera) at 640x360 along known
head paths: `walk` (toward the bench, head bob), `work` (small head motions at the bench),
`fast` (walking at 4x the speed, motion blur), `turn` (pure rotation). For the speed
figure every frame is upscaled to 1920x1080 first (untimed): the tracker's own resize to
the working resolution (long side 640) is part of what is timed.

Figures (CPU seconds of this process, one thread: OpenCV and BLAS limited to one core):
- frames/s per core of `Odometry.step` on 1080p frames;
- per clip: tracked fraction, segments, metric or not, path length over the true one
  (`length_ratio`), ATE (RMSE after Sim(3), m and % of the path length), RPE over 10 frames;
- COLMAP (SIFT, sequential matching, incremental mapping, PINHOLE camera fixed to the known
  intrinsics, one thread) on the first `--colmap-frames` frames of `walk`: CPU time, frames
  registered, ATE; time ratio against the odometry on the same frames.

Usage (from the repository root): python -m benchmarks.bench_trajectory [--frames 150] [--colmap-frames 90]
[--clips walk,work,fast,turn] [--no-colmap] [--synth-seconds S] [--path-seeds 0,3,5] [--json OUT]
A shortened run while tuning: --clips walk,work,fast --no-colmap (and --frames for shorter clips);
--path-seeds tracks the same clips along other draws of the head paths (and noise), so that a
change is judged on more than one draw.
"""

from __future__ import annotations

import os

# one core: set before numpy/OpenCV start their thread pools
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from egoclean.motion.evaluation import ate, rpe  # noqa: E402
from egoclean.motion.odometry import Odometry, VOConfig  # noqa: E402
from egoclean.motion.trajectory import PinholeCamera, Trajectory  # noqa: E402
from tests.support.room import Renderer, default_camera, head_path, poses_to_tum  # noqa: E402

W, H = 640, 360
FPS = 30.0


def render(kind: str, n: int, path_seed: int = 0) -> tuple[list[np.ndarray], Trajectory]:
    """`n` frames of the head path `kind` and its ground truth; `path_seed` draws other phases of
    the path's sways and other sensor noise (0: the clips of the published figures)."""
    K = default_camera(W, H)
    r = Renderer(K, W, H)
    R, C = head_path(n, kind, seed=path_seed)
    rng = np.random.default_rng(1 + path_seed)
    blur = 5.0 if kind == "fast" else 0.0
    frames = [r.render(a, c, noise=2.0, rng=rng, blur=blur)[:, :, 0].copy() for a, c in zip(R, C)]
    return frames, poses_to_tum(np.arange(n) / FPS, R, C)


def camera_1080() -> PinholeCamera:
    K = default_camera(W, H)
    s = 1920 / W
    return PinholeCamera(K[0, 0] * s, K[1, 1] * s, (K[0, 2] + 0.5) * s - 0.5, (K[1, 2] + 0.5) * s - 0.5, 1920, 1080,
                         source="render 1080p")


def run_vo(frames: list[np.ndarray]) -> tuple[Trajectory, float]:
    """Track the frames upscaled to 1080p; CPU seconds spent in Odometry.step."""
    vo = Odometry(camera_1080(), FPS, VOConfig())
    spent = 0.0
    for g in frames:
        big = cv2.cvtColor(cv2.resize(g, (1920, 1080), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR)
        t0 = time.process_time()
        vo.step(big)
        spent += time.process_time() - t0
    return vo.result(), spent


def run_colmap(frames: list[np.ndarray], work: Path) -> tuple[Trajectory, float, int]:
    """COLMAP incremental mapping with the known pinhole intrinsics; CPU seconds, images registered."""
    import pycolmap

    pycolmap.logging.minloglevel = 2  # warnings and errors only: COLMAP logs every image otherwise
    K = default_camera(W, H)
    img_dir = work / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, g in enumerate(frames):
        cv2.imwrite(str(img_dir / f"{i:06d}.png"), g)
    db = work / "database.db"
    t0 = time.process_time()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "PINHOLE"
    reader.camera_params = f"{K[0, 0]},{K[1, 1]},{K[0, 2]},{K[1, 2]}"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = 1
    extraction.use_gpu = False
    extraction.sift.max_num_features = 2048  # plenty at 640x360 (the default 8192 only costs time here)
    pycolmap.extract_features(db, img_dir, camera_mode=pycolmap.CameraMode.SINGLE, reader_options=reader,
                              extraction_options=extraction, device=pycolmap.Device.cpu)
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = 1
    matching.use_gpu = False
    pycolmap.match_sequential(db, matching_options=matching, device=pycolmap.Device.cpu)
    opts = pycolmap.IncrementalPipelineOptions()
    opts.num_threads = 1
    opts.ba_refine_focal_length = False
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    opts.random_seed = 0
    # head video moves forward over a few seconds: COLMAP's defaults for photo collections refuse
    # such initial pairs (forward motion > 0.95, triangulation angle < 16 degrees)
    opts.mapper.init_max_forward_motion = 1.0
    opts.mapper.init_min_tri_angle = 4.0
    opts.max_runtime_seconds = 1200  # a bound, not expected to be reached
    recs = pycolmap.incremental_mapping(db, img_dir, work / "sparse", options=opts)
    spent = time.process_time() - t0
    n = len(frames)
    pos = np.full((n, 3), np.nan)
    quat = np.full((n, 4), np.nan)
    tracked = np.zeros(n, bool)
    if recs:
        rec = max(recs.values(), key=lambda r: r.num_reg_images())
        for img in rec.images.values():
            if not img.has_pose:
                continue
            i = int(Path(img.name).stem)
            cfw = img.cam_from_world() if callable(img.cam_from_world) else img.cam_from_world
            R_cw = cfw.rotation.matrix()
            t_cw = np.asarray(cfw.translation)
            pos[i] = -R_cw.T @ t_cw
            quat[i] = Rotation.from_matrix(R_cw.T).as_quat()
            tracked[i] = True
    seg = np.where(tracked, 0, -1).astype(np.int32)
    traj = Trajectory(np.arange(n) / FPS, pos, quat, tracked, seg, np.zeros(n, np.int32))
    return traj, spent, int(tracked.sum())


def run_synth(seconds: float, kind: str) -> dict:
    """The project's synthetic fisheye clip (egoclean.synth: a 3D workshop, the true path beside it)
    rectified frame by frame as `egoclean rectify` does, then tracked; ATE against the true path.
    `kind`: "work" (the head bobbing at the bench) or "aisle" (turns round, walks 8 m down the aisle
    and back, from second 1 to the end)."""
    from egoclean.media.intrinsics import FisheyeIntrinsics, rectified_intrinsics
    from egoclean.synth import ClipRenderer, PlantedSpan, synth_intrinsics

    intr = synth_intrinsics(W, H)
    n = int(round(seconds * FPS))
    spans = [PlantedSpan(1, int(seconds), "aisle")] if kind == "aisle" else []
    renderer = ClipRenderer(intr, FPS, spans, scene_seed=0, clip_seed=0)
    rect = rectified_intrinsics(FisheyeIntrinsics.from_dict(intr), W, H)
    mx, my, _ = rect.float_maps()
    cam = PinholeCamera.from_dict(rect.to_dict(), source="synth rectified")
    vo = Odometry(cam, FPS, VOConfig())
    spent = 0.0
    t0 = time.time()
    for i in range(n):
        pinhole = cv2.remap(renderer.frame(i), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        c0 = time.process_time()
        vo.step(pinhole)
        spent += time.process_time() - c0
    traj, gt = vo.result(), renderer.trajectory(n)
    row = {"frames": n, "wall_s": round(time.time() - t0, 1), "fps_per_core": round(n / spent, 1), **traj.summary()}
    try:
        a = ate(traj, gt)
        row.update(ate_m=round(a.rmse, 4), ate_percent=round(a.percent, 3), gt_path_m=round(a.path_length, 3))
    except ValueError as e:
        row["ate"] = str(e)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150, help="frames per clip (walk, work); fast and turn use half")
    ap.add_argument("--colmap-frames", type=int, default=90)
    ap.add_argument("--clips", default="walk,work,fast,turn", help="which clips to track (COLMAP uses walk)")
    ap.add_argument("--no-colmap", action="store_true")
    ap.add_argument("--synth-seconds", type=float, default=0.0,
                    help="also track egoclean.synth's fisheye clips (work, aisle) of this length, rectified")
    ap.add_argument("--path-seeds", default="0",
                    help="comma-separated draws of the head paths and noise (0: the published clips); "
                         "with several, clip names get a suffix such as walk@3 and COLMAP uses the first")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    out: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                 "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                            f"load average {os.getloadavg()[0]:.1f} at start",
                 "opencv": cv2.__version__, "clips": {}}
    total_frames, total_cpu = 0, 0.0
    walk_frames = walk_gt = None
    sizes = {"walk": args.frames, "work": args.frames, "fast": args.frames // 2, "turn": args.frames // 2}
    kinds = [k for k in args.clips.split(",") if k]
    if not args.no_colmap and "walk" not in kinds:
        kinds.insert(0, "walk")
    seeds = [int(x) for x in args.path_seeds.split(",") if x.strip()]
    for seed, kind, n in ((p, k, sizes[k]) for p in seeds for k in kinds):
        name = kind if len(seeds) == 1 else f"{kind}@{seed}"
        t0 = time.time()
        frames, gt = render(kind, n, seed)
        render_s = time.time() - t0
        traj, cpu = run_vo(frames)
        total_frames += n
        total_cpu += cpu
        row = {"frames": n, "render_s": round(render_s, 1), "vo_cpu_s": round(cpu, 3),
               "fps_per_core": round(n / cpu, 1), **traj.summary()}
        if kind != "turn":  # a pure rotation has no path to take a percentage of
            a = ate(traj, gt)
            row.update(ate_m=round(a.rmse, 4), ate_percent=round(a.percent, 3))
            # the tracked path over the true one: the scale error where the segments claim metric
            row["length_ratio"] = round(traj.path_length() / gt.path_length(), 3)
        r = rpe(traj, gt, delta=min(10, n // 2))
        row.update(rpe10_rot_deg=round(r.rot_rmse_deg, 4), rpe10_trans_m=round(r.trans_rmse, 4))
        out["clips"][name] = row
        print(name, row, flush=True)
        if kind == "walk" and walk_frames is None:
            walk_frames, walk_gt = frames, gt
    out["fps_per_core"] = round(total_frames / total_cpu, 1)
    print("VO frames/s per core (1080p in, 640 working):", out["fps_per_core"], flush=True)
    if not args.no_colmap:
        m = min(args.colmap_frames, len(walk_frames))
        sub = walk_frames[:m]
        gt_sub = Trajectory.from_frames(walk_gt.t[:m], walk_gt.position[:m], walk_gt.quat[:m])
        vo_traj, vo_cpu = run_vo(sub)
        with tempfile.TemporaryDirectory() as d:
            col, col_cpu, reg = run_colmap(sub, Path(d))
        row = {"frames": m, "vo_cpu_s": round(vo_cpu, 3), "colmap_cpu_s": round(col_cpu, 2),
               "time_ratio": round(col_cpu / vo_cpu, 1), "colmap_registered": reg,
               "vo_tracked": int(vo_traj.tracked.sum()),
               "vo_ate_percent": round(ate(vo_traj, gt_sub).percent, 3)}
        if reg >= 3:
            row["colmap_ate_percent"] = round(ate(col, gt_sub).percent, 3)
        out["colmap_walk"] = row
        print("COLMAP vs VO on walk:", row, flush=True)
    if args.synth_seconds > 0:
        for kind in ("work", "aisle"):
            row = run_synth(args.synth_seconds, kind)
            out.setdefault("synth", {})[kind] = row
            print(f"egoclean.synth {kind}:", row, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
