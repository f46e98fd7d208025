"""Benchmark of clip fetching (egoclean.ingest.source) against downloading the whole shard.

Not a test. Serves a shard of `--clips` fake clips of `--mb` MB each from the stand-in
hub (tests/support/hubstub.py, loopback HTTP, real huggingface_hub client) and times, for the
last clip of the shard:
  - baseline: GET the whole shard to a file (what a plain `hf_hub_download` of the tar
    does), then extract the clip's two members with `tarfile`;
  - egoclean, cold: `Source.fetch_clip` with an empty index cache (header scan by
    ranged reads, then one ranged GET per member);
  - egoclean, warm: `Source.fetch_clip` with the shard index already cached.
Medians of `--repeat` runs; ratios against the baseline of the same run, plus bytes
and requests on the wire. Loopback has no latency and ~GB/s bandwidth, so on a real
network the gap follows the byte counts more closely than these times do.

    .venv/bin/python -m benchmarks.bench_source [--clips 8] [--mb 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine_line, median, ratio
from egoclean.ingest.source import open_source
from tests.support.hubstub import HubStub, make_worker


def baseline(hub: HubStub, shard_rel: str, key: str, out: Path) -> None:
    from huggingface_hub.utils import build_hf_headers, get_session

    url = f"{hub.endpoint}/datasets/{hub.repo_id}/resolve/main/{shard_rel}"
    tar_path = out / "shard.tar"
    with get_session().stream("GET", url, headers=build_hf_headers(token=False)) as r, open(tar_path, "wb") as f:
        r.raise_for_status()
        for chunk in r.iter_bytes(1 << 20):
            f.write(chunk)
    with tarfile.open(tar_path) as tf:
        for name in (f"{key}.mp4", f"{key}.json"):
            with tf.extractfile(name) as src, open(out / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    tar_path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--mb", type=float, default=16.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        root = tmp / "hub"
        shards = make_worker(root, 1, 1, shards=(args.clips,), video_size=int(args.mb * 1e6))
        shard_name, keys = next(iter(shards.items()))
        key = keys[-1]
        shard_rel = f"factory_001/workers/worker_001/{shard_name}"
        shard_size = (root / shard_rel).stat().st_size
        times: dict[str, list[float]] = {"baseline": [], "cold": [], "warm": []}
        wire: dict[str, tuple[int, int]] = {}
        with HubStub(root) as hub:
            for i in range(args.repeat):
                for name in ("baseline", "cold", "warm"):
                    out = tmp / f"out_{name}_{i}"
                    out.mkdir()
                    cache = tmp / f"cache_{i}"
                    hub.clear()
                    t0 = time.perf_counter()
                    if name == "baseline":
                        baseline(hub, shard_rel, key, out)
                    else:
                        src = open_source(hub.url, endpoint=hub.endpoint, token=False, cache_dir=cache)
                        src.fetch_clip(key, out, progress=False)
                    times[name].append(time.perf_counter() - t0)
                    wire[name] = (hub.bytes_sent(), len(hub.resolve_requests()))
                    shutil.rmtree(out)

    med = {k: median(v) for k, v in times.items()}
    print(f"# bench_source; {machine_line('loopback stand-in hub')}")
    print(f"shard: {args.clips} clips x {args.mb:g} MB = {shard_size / 1e6:.1f} MB; fetching the last clip; "
          f"median of {args.repeat}")
    print("| method | median s | vs baseline | bytes on the wire | file GETs |")
    print("|---|---|---|---|---|")
    labels = {
        "baseline": "whole shard GET + tarfile extract",
        "cold": "fetch_clip, empty index cache",
        "warm": "fetch_clip, cached index",
    }
    for k in ("baseline", "cold", "warm"):
        b, n = wire[k]
        print(f"| {labels[k]} | {med[k]:.3f} | {ratio(med[k], med['baseline'])} | {b / 1e6:.2f} MB | {n} |")


if __name__ == "__main__":
    main()
