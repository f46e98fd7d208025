"""The `egoclean` command line: synth, ls, fetch, rectify, trajectory, tiny-model, embed, detect, sql, export.

Each subcommand is a thin shell over a library function; errors EgoClean raises on
purpose are printed as one line (no traceback) with exit status 2. Option defaults come
from the same environment variables as the Dagster resources (egoclean.settings; e.g.
`egoclean sql` queries EGOCLEAN_DB); an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from egoclean.core import defaults, jsonin
from egoclean.core.errors import EgoCleanError
from egoclean.core.options import Parser, number, whole
from egoclean.settings import Settings


def cmd_synth(args: argparse.Namespace) -> int:
    from egoclean.synth import SynthConfig, write_dataset

    cfg = SynthConfig(
        factories=args.factories,
        workers=args.workers,
        clips=args.clips,
        duration_sec=args.duration,
        width=args.width,
        height=args.height,
        fps=args.fps,
        shards=args.shards,
        seed=args.seed,
        anomalies=not args.no_anomalies,
        clean_clips=args.clean_clips,
    )
    summary = write_dataset(args.out_dir, cfg)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
        return 0
    clips = summary["clips"]
    planted = sum(len(c["planted"]) for c in clips)
    print(f"{len(clips)} clip(s) of {cfg.duration_sec:g} s ({cfg.width}x{cfg.height} at {cfg.fps:g} fps) "
          f"from {cfg.factories} factory(ies) x {cfg.workers} worker(s) in {len(summary['shards'])} shard(s) "
          f"under {summary['out_dir']}")
    print(f"ground truth: {summary['ground_truth']} ({planted} planted off-task span(s)); camera paths "
          f"(TUM): <clip_id>.tum.txt beside the shards")
    # synthetic clip ids reuse the seed's real ones: their truth is the planted spans alone
    print(f"use it: EGOCLEAN_SOURCE={summary['out_dir']} EGOCLEAN_GROUND_TRUTH={summary['ground_truth']} "
          "EGOCLEAN_GROUND_TRUTH_SEED=0 (--json prints the whole summary)")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    src = args.settings.but(source=args.source, revision=args.revision).open_source()
    parts = [p for p in (args.path or "").strip("/").split("/") if p]
    if not parts:
        for f in src.list_factories():
            print(f)
    elif len(parts) == 1:
        for w in src.list_workers(parts[0]):
            print(w)
    else:
        for shard in src.list_shards(parts[0], parts[1]):
            print(shard)
        if args.clips:
            for clip in src.list_clips(parts[0], parts[1]):
                print(clip)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from egoclean.core.ids import ClipId

    src = args.settings.but(source=args.source, revision=args.revision).open_source()
    fetched = src.fetch_clip(ClipId.parse(args.clip_id), Path(args.out_dir))
    print(jsonin.dumps(fetched.as_dict(), indent=2, default=str))  # standard JSON: no NaN/Infinity
    return 0


def cmd_rectify(args: argparse.Namespace) -> int:
    from egoclean.media.rectify import rectify_file

    result = rectify_file(
        args.input, args.intrinsics, args.output, balance=args.balance, crf=args.crf, preset=args.preset
    )
    print(jsonin.dumps(result, indent=2, default=str))
    return 0


def cmd_trajectory(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from egoclean.core.errors import InvalidInputError
    from egoclean.media.video import probe
    from egoclean.motion.odometry import VOConfig, check_input, track_video
    from egoclean.motion.trajectory import PinholeCamera

    out = Path(args.output)
    if out.suffix not in (".txt", ".parquet"):
        raise InvalidInputError(f"-o {out}: must end in .txt (TUM: timestamp tx ty tz qx qy qz qw) or .parquet")
    info = probe(args.input)
    if args.intrinsics:
        camera = PinholeCamera.load(args.intrinsics)
    else:
        camera = PinholeCamera.parse(args.camera, info.width, info.height)
    check_input(args.input, camera)  # bad input fails before the progress bar starts
    config = VOConfig(camera_height_m=args.camera_height)
    with tqdm(total=info.n_frames, unit="frame", desc="trajectory", disable=args.quiet) as bar:
        traj = track_video(args.input, camera, config, progress=lambda i, n: bar.update(1))
    if out.suffix == ".txt":
        traj.save_tum(out)
    else:
        traj.save_parquet(out)
    s = traj.summary()
    scale = "metric (floor)" if s["metric"] else "clip units (no floor found)" if traj.segments else "none"
    print(f"{out}: {s['tracked_frames']}/{s['frames']} frame(s) tracked in {s['segments']} segment(s), "
          f"path {s['path_length']:.3f}, scale {scale}")
    return 0


def cmd_tiny_model(args: argparse.Namespace) -> int:
    from egoclean.embed.tiny_model import save_tiny_model

    path = save_tiny_model(args.out_dir, seed=args.seed)
    print(f"tiny random-weight V-JEPA 2 saved to {path}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from egoclean.embed.encoder import EncoderConfig, embed_video, load_encoder
    from egoclean.media.video import probe

    probe(args.input)  # a bad input fails here, before a model load that can take minutes
    enc = load_encoder(
        EncoderConfig(model=args.model, revision=args.revision, device=args.device, dtype=args.dtype)
    )
    emb = embed_video(args.input, enc, batch_size=args.batch)
    files = emb.save(args.output_prefix)
    print(json.dumps({k: str(v) for k, v in files.items()} | {"windows": len(emb)}, indent=2))
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from egoclean.temporal.detection import DetectionParams
    from egoclean.temporal.ground_truth import GroundTruth
    from egoclean.temporal.segments import detect_clip

    # the ground truth the Dagster check uses (seed + EGOCLEAN_GROUND_TRUTH), or --ground-truth instead
    s = args.settings
    paths = [args.ground_truth] if args.ground_truth else list(s.ground_truth)
    report = detect_clip(
        args.prefix,
        out_json=args.output,
        plots_dir=args.plots,
        ground_truth=GroundTruth.load(s.ground_truth_seed, paths),
        params=DetectionParams(min_separation=args.min_separation),
    )
    print(report)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from egoclean.store import Store

    store = Store(args.db, timeout_sec=args.timeout, sql_memory=args.settings.sql_memory)
    print(store.format_query(args.query, max_rows=args.max_rows, sandbox=True, allow_files=args.allow_files))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from egoclean.export.episodes import EpisodeParams
    from egoclean.export import ExportOptions, export_from_store
    from egoclean.store import Store

    d = EpisodeParams()
    params = EpisodeParams(
        min_episode_sec=d.min_episode_sec if args.min_sec is None else args.min_sec,
        max_episode_sec=d.max_episode_sec if args.max_sec is None else args.max_sec,
        margin_sec=d.margin_sec if args.margin is None else args.margin,
        split_cycles=not args.no_cycles,
        cycles_per_episode=d.cycles_per_episode if args.cycles is None else args.cycles,
    )
    store = Store(args.db, timeout_sec=args.timeout, sql_memory=args.settings.sql_memory)
    report = export_from_store(
        store, args.out, sql=args.sql, clips=args.clip or None,
        options=ExportOptions(params=params, resolution=args.resolution, only_changed=not args.force),
        progress=not args.quiet,
    )
    print(report.summary())
    for clip, why in sorted(report.skipped.items()):
        print(f"  skipped {clip}: {why}")
    for clip, why in sorted(report.no_cycle_cuts.items()):
        print(f"  no cycle cuts for {clip}: {why}")
    return 0


def build_parser(settings: Settings | None = None) -> argparse.ArgumentParser:
    """The parser, with option defaults from `settings` (default: this process's environment)."""
    env = Settings.from_env() if settings is None else settings
    p = Parser(prog="egoclean", description=__doc__.splitlines()[0])
    p.set_defaults(settings=env)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="write a synthetic Egocentric-10K-layout dataset (offline tests/demo)")
    s.add_argument("out_dir")
    s.add_argument("--factories", type=whole(1, 999), default=1)
    s.add_argument("--workers", type=whole(1, 999), default=1, help="workers per factory")
    s.add_argument("--clips", type=whole(1, 99999), default=2, help="clips per worker")
    s.add_argument("--duration", type=number(0, 86400, lo_open=True), default=60.0, help="seconds per clip")
    s.add_argument("--width", type=whole(16, 7680), default=480)
    s.add_argument("--height", type=whole(16, 4320), default=270)
    s.add_argument("--fps", type=number(1, 240), default=30.0)
    s.add_argument("--shards", type=whole(1, 1000), default=1, help="tar shards per worker")
    s.add_argument("--seed", type=whole(0, 2**32 - 1), default=0)
    s.add_argument("--clean-clips", type=whole(0, 99999), default=0,
                   help="last N clips of each worker have no planted off-task span")
    s.add_argument("--no-anomalies", action="store_true", help="plant no off-task spans at all")
    s.add_argument("--json", action="store_true", help="print the whole summary (every clip and span) as JSON")
    s.set_defaults(func=cmd_synth)

    for name, fn, hlp in (
        ("ls", cmd_ls, "list factories, a factory's workers, or a worker's shards"),
        ("fetch", cmd_fetch, "fetch one clip's MP4 and sidecar from its worker's shard (ranged read)"),
    ):
        s = sub.add_parser(name, help=hlp)
        if name == "ls":
            s.add_argument("path", nargs="?", help="factory_001 or factory_001/worker_001")
            s.add_argument("--clips", action="store_true", help="also list the worker's clips")
        else:
            s.add_argument("clip_id", help="factoryXXX_workerYYY_NNNNN")
            s.add_argument("-o", "--out-dir", default=".")
        s.add_argument("--source", default=env.source, help="hf:// URL, local dir or fsspec URL (EGOCLEAN_SOURCE)")
        s.add_argument("--revision", default=env.revision,
                       help="pin a dataset revision, hf:// only (EGOCLEAN_REVISION)")
        s.set_defaults(func=fn)

    s = sub.add_parser("rectify", help="rectify a fisheye clip to a pinhole one")
    s.add_argument("input")
    s.add_argument("--intrinsics", required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--balance", type=number(0, 1), default=0.0)
    s.add_argument("--crf", type=number(0, 51), default=None, help="libx264 CRF (default: see docs/PERFORMANCE.md)")
    s.add_argument("--preset", default=None, help="libx264 preset")
    s.set_defaults(func=cmd_rectify)

    s = sub.add_parser("trajectory", help="the camera's 6DoF path through a rectified clip (monocular visual odometry)")
    s.add_argument("input", help="a rectified (pinhole) video")
    cam = s.add_mutually_exclusive_group(required=True)
    cam.add_argument("--intrinsics", help="pinhole JSON: what `egoclean rectify` writes, or "
                     '{"model": "pinhole", "image_width", "image_height", "fx", "fy", "cx", "cy"}')
    cam.add_argument("--camera", metavar="FX,FY,CX,CY", help="the camera matrix in pixels of the video")
    s.add_argument("-o", "--output", required=True, help="OUT.txt (TUM, tracked frames) or OUT.parquet (every frame)")
    s.add_argument("--camera-height", type=number(0.1, 10), default=defaults.CAMERA_HEIGHT_M,
                   help="camera height above the floor in metres: sets the scale where the floor is seen")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_trajectory)

    s = sub.add_parser("tiny-model", help="save a tiny randomly initialised V-JEPA 2 for tests/demo")
    s.add_argument("out_dir")
    s.add_argument("--seed", type=whole(0, 2**32 - 1), default=0)
    s.set_defaults(func=cmd_tiny_model)

    s = sub.add_parser("embed", help="embed a clip with V-JEPA 2 in sliding 64-frame windows")
    s.add_argument("input")
    s.add_argument("-o", "--output-prefix", required=True)
    s.add_argument("--model", default=env.model, help="hub id or local directory (EGOCLEAN_MODEL)")
    s.add_argument("--revision", default=None)
    s.add_argument("--device", default=env.device, help="auto, cuda, mps or cpu (EGOCLEAN_DEVICE)")
    s.add_argument("--dtype", default=env.dtype, help="auto, bf16, fp16 or fp32 (EGOCLEAN_DTYPE)")
    s.add_argument("--batch", type=whole(1, 1024), default=env.batch,
                   help="windows per forward pass (EGOCLEAN_BATCH)")
    s.set_defaults(func=cmd_embed)

    s = sub.add_parser("detect", help="analyse embeddings and detect anomalous spans")
    s.add_argument("prefix", help="embedding prefix (PREFIX_emb.npy ...)")
    s.add_argument("-o", "--output", default=None, help="segments JSON")
    s.add_argument("--plots", default=None, help="folder for the diagnostics and detection PNGs")
    s.add_argument("--ground-truth", default=None,
                   help="CSV in the ground_truth_seed.csv format, instead of EGOCLEAN_GROUND_TRUTH (the packaged "
                   "seed counts unless EGOCLEAN_GROUND_TRUTH_SEED=0; a CSV replaces its clips' seed spans)")
    s.add_argument(
        "--min-separation", type=number(0, 1e6), default=None,
        help="guard: report no spans when the Otsu classes are closer than this many within-class SDs "
        "(off by default; 4 suits clean clips, see docs/DETECTION.md)",
    )
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("sql", help="run a read-only SQL query on the segment database")
    s.add_argument("query")
    s.add_argument("--db", default=env.db, help="the database (EGOCLEAN_DB)")
    s.add_argument("--timeout", type=number(0, 86400), default=defaults.SQL_TIMEOUT_SEC,
                   help="seconds to wait while a writer holds the db")
    s.add_argument("--max-rows", type=whole(0, 10**9), default=None,
                   help="print at most this many rows (only these are fetched)")
    s.add_argument("--allow-files", action="store_true",
                   help="let the query read and write files (read_csv, COPY TO, ATTACH...); by default it can "
                   "reach nothing outside the database, and never downloads extensions")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("export", help="export clean work spans as a LeRobot v3.0 dataset (episodes cut at work cycles)")
    s.add_argument("--out", default=env.export_dir,
                   help="dataset directory: new, empty, or an earlier export to extend (EGOCLEAN_EXPORT)")
    s.add_argument("--db", default=env.db, help="the database (EGOCLEAN_DB)")
    s.add_argument("--sql", default=None,
                   help="read-only query returning clip_id (and start_sec, end_sec to pick spans)")
    s.add_argument("--clip", action="append", help="export this clip (repeatable; default: every stored clip)")
    # Ranges: a frame height up to 4320 (8K); episodes of 0.5 s to an hour (below, millions of
    # one-frame episodes exhaust memory); margins up to 10 minutes; up to 1000 cycles per episode.
    s.add_argument("--resolution", type=whole(16, 4320), default=None,
                   help="re-encode to this frame height, 16-4320 (default: stream copy, no re-encode)")
    s.add_argument("--min-sec", type=number(0, 3600), default=None, help="shortest episode, 0-3600 seconds")
    s.add_argument("--max-sec", type=number(0.5, 3600), default=None, help="longest episode, 0.5-3600 seconds")
    s.add_argument("--margin", type=number(0, 600), default=None,
                   help="seconds kept clear of anomalous spans, 0-600")
    s.add_argument("--cycles", type=whole(1, 1000), default=None, help="whole work cycles per episode, 1-1000")
    s.add_argument("--no-cycles", action="store_true", help="fixed-length episodes, no cuts at work cycles")
    s.add_argument("--force", action="store_true",
                   help="re-export clips the dataset already holds from the same materialization")
    s.add_argument("--timeout", type=number(0, 86400, lo_open=True), default=defaults.SQL_TIMEOUT_SEC,
                   help="seconds to wait while a writer holds the db")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except EgoCleanError as e:  # a bad EGOCLEAN_* value: one line naming it
        print(f"egoclean: error: {e}", file=sys.stderr)
        return 2
    args = build_parser(settings).parse_args(argv)
    try:
        return args.func(args)
    except EgoCleanError as e:
        from egoclean.core.secrets import redact

        print(f"egoclean {args.command}: error: {redact(str(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        # The machine, not the input: a full disk, a missing permission. One line, and
        # what a rerun needs (outputs are atomic: nothing earlier was overwritten).
        import errno

        from egoclean.core.secrets import redact

        hint = "; free some space and rerun (earlier outputs are untouched)" if e.errno == errno.ENOSPC else ""
        print(f"egoclean {args.command}: error: {redact(str(e))}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
