"""Dataset access against the stand-in hub (real huggingface_hub client) and local folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tests.support.hubstub import HubStub, fake_video, make_tar, make_worker, sidecar

from egoclean import cli
from egoclean.core.errors import AuthError, InvalidInputError, IntrinsicsError, NotFoundError, SourceError, TarError
from egoclean.core.ids import ClipId
from egoclean.ingest.source import open_source

TOKEN = "hf_stubSecretToken123456"
WORKER = "factory_001/workers/worker_001"


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch, tmp_path):
    """No HF token from the environment or a .env in the working directory."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def data(hub: HubStub) -> dict:
    """Worker 1: part00 (clips 0-2) and part01 (clips 3-4); worker 2: one shard."""
    shards = make_worker(hub.root, 1, 1, shards=(3, 2))
    make_worker(hub.root, 1, 2, shards=(1,))
    return shards


def src_for(hub: HubStub, tmp_path: Path, **kw):
    kw = {"token": False, "cache_dir": tmp_path / "cache", "backoff": 0.01, "timeout": 5.0} | kw
    return open_source(hub.url, endpoint=hub.endpoint, **kw)


def member_bytes(hub: HubStub, key: str) -> tuple[bytes, bytes]:
    """The original video and sidecar bytes of a clip, read from its shard with tarfile."""
    for tar in sorted((hub.root / WORKER).glob("*.tar")):
        with tarfile.open(tar) as tf:
            names = tf.getnames()
            if f"{key}.mp4" in names:
                return tf.extractfile(f"{key}.mp4").read(), tf.extractfile(f"{key}.json").read()
    raise KeyError(key)


def assert_empty(out_dir: Path) -> None:
    """Nothing, not even a temporary file, was left in out_dir."""
    assert not out_dir.exists() or sorted(p.name for p in out_dir.iterdir()) == []


# ---------------------------------------------------------------------------- listing


def test_listing_over_paginated_tree(hub, data, tmp_path):
    hub.page_size = 1  # every folder listing takes several pages
    src = src_for(hub, tmp_path)
    assert src.list_factories() == ["factory_001"]
    assert src.list_workers("factory_001") == ["worker_001", "worker_002"]
    shards = src.list_shards("factory_001", "worker_001")
    assert [s.name for s in shards] == list(data)
    assert [s.size for s in shards] == [(hub.root / s.path).stat().st_size for s in shards]
    assert all(s.etag for s in shards)
    clips = src.list_clips(1, 1)
    assert [c.key for c in clips] == [k for keys in data.values() for k in keys]
    assert src.read_intrinsics("factory001", "worker_001")["model"] == "fisheye"
    assert any("cursor" in r.query for r in hub.requests), "pagination was not exercised"


def test_list_clips_indexes_shards_in_parallel(hub, tmp_path):
    keys = [k for ks in make_worker(hub.root, 3, 4, shards=(1, 2, 1, 3)).values() for k in ks]
    serial = src_for(hub, tmp_path, parallel=1, cache_dir=tmp_path / "c1").list_clips(3, 4)
    assert [c.key for c in serial] == keys
    assert src_for(hub, tmp_path, parallel=4, cache_dir=tmp_path / "c4").list_clips(3, 4) == serial
    (hub.root / "factory_003/workers/worker_004/factory003_worker004_part02.tar").write_bytes(b"x" * 2048)
    with pytest.raises(TarError, match="part02.tar: not a tar file"):
        src_for(hub, tmp_path, parallel=4, cache_dir=tmp_path / "c5").list_clips(3, 4)


def test_bad_names_and_urls():
    with pytest.raises(InvalidInputError, match="invalid source URL"):
        open_source("hf://models/x")
    with pytest.raises(InvalidInputError, match="pins revision 'a'"):
        open_source("hf://datasets/o/n@a", revision="b")
    with pytest.raises(InvalidInputError, match="retries"):
        open_source("hf://datasets/o/n", retries=-1)


# ---------------------------------------------------------------------------- fetching


def test_fetch_reads_only_ranges_and_checks_sizes(hub, data, tmp_path):
    hub.token = TOKEN
    src = src_for(hub, tmp_path, token=TOKEN)
    key = "factory001_worker001_00004"  # in part01: numbering continues across shards
    shard = hub.root / WORKER / "factory001_worker001_part01.tar"
    out = tmp_path / "out"
    fetched = src.fetch_clip(ClipId.parse(key), out, progress=False)

    video, side = member_bytes(hub, key)
    assert fetched.mp4_path == out / f"{key}.mp4" and fetched.mp4_path.read_bytes() == video
    assert fetched.sidecar_path.read_bytes() == side
    assert fetched.sidecar == json.loads(side) and fetched.size_bytes == len(video)
    assert fetched.shard == shard.name
    assert sorted(p.name for p in out.iterdir()) == [f"{key}.json", f"{key}.mp4"]
    d = fetched.as_dict()
    assert d["clip_id"] == key and d["size_bytes"] == len(video) and json.dumps(d)

    reads = hub.resolve_requests()
    assert reads and all(r.range and r.range.startswith("bytes=") for r in reads)
    assert all(r.status == 206 for r in reads)
    # Both shards were indexed from headers; only one clip's bytes came down.
    total = hub.bytes_sent()
    shard_bytes = sum(p.stat().st_size for p in (hub.root / WORKER).glob("*.tar"))
    assert total - len(video) - len(side) <= 7 * 4096  # 7 header read-aheads for 5 clips
    assert total < shard_bytes / 3
    # The token travels only in the Authorization header.
    for r in hub.requests:
        assert r.headers.get("authorization") == f"Bearer {TOKEN}"
        rest = {k: v for k, v in r.headers.items() if k != "authorization"}
        assert TOKEN not in json.dumps([r.path, r.query, rest])
    assert TOKEN not in repr(src) and TOKEN not in json.dumps(d)
    assert not any(TOKEN in p.read_text(errors="ignore") for p in (tmp_path / "cache").iterdir())


def test_fetch_leaves_no_huggingface_cache(hub, data, tmp_path):
    from huggingface_hub import constants

    repo_cache = Path(constants.HF_HUB_CACHE) / "datasets--builddotai--Egocentric-10K"
    existed = repo_cache.exists()
    src_for(hub, tmp_path).fetch_clip("factory001_worker001_00000", tmp_path / "out", progress=False)
    assert repo_cache.exists() == existed


def test_fetch_follows_hub_redirects(hub, data, tmp_path):
    hub.redirect = True
    fetched = src_for(hub, tmp_path).fetch_clip("factory001_worker001_00001", tmp_path / "out", progress=False)
    assert fetched.mp4_path.read_bytes() == member_bytes(hub, "factory001_worker001_00001")[0]
    assert any(r.path.startswith("/cdn/") and r.range for r in hub.requests)


def test_token_is_not_sent_to_a_redirect_target(hub, data, tmp_path):
    hub.token, hub.gate_api, hub.redirect = TOKEN, False, "localhost"  # another origin: the "CDN"
    fetched = src_for(hub, tmp_path, token=TOKEN).fetch_clip(
        "factory001_worker001_00001", tmp_path / "out", progress=False
    )
    assert fetched.mp4_path.read_bytes() == member_bytes(hub, "factory001_worker001_00001")[0]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    hubside = [r for r in hub.requests if "/resolve/" in r.path]
    assert cdn and all("authorization" not in r.headers and r.range for r in cdn)
    assert hubside and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hubside)


def test_index_cache_is_reused(hub, data, tmp_path):
    src = src_for(hub, tmp_path)
    shard = src.list_shards(1, 1)[0]
    first = src.index_shard(shard)
    assert first.reads > 0 and not first.from_cache
    assert [c.key for c in first.clip_ids()] == data[shard.name]

    hub.clear()
    again = src_for(hub, tmp_path)
    second = again.index_shard(again.list_shards(1, 1)[0])
    assert second.from_cache and second.members == first.members
    assert hub.resolve_requests() == []  # no header reads

    # A changed shard (new size and etag) is indexed afresh.
    make_worker(hub.root, 1, 1, shards=(4, 2))
    fresh = src_for(hub, tmp_path)
    third = fresh.index_shard(fresh.list_shards(1, 1)[0])
    assert not third.from_cache and len(third.clip_ids()) == 4


def test_local_directory_source(tmp_path):
    root = tmp_path / "ds"
    shards = make_worker(root, 2, 3, shards=(2, 2))
    src = open_source(str(root), cache_dir=tmp_path / "cache")
    assert src.list_factories() == ["factory_002"] and src.list_workers(2) == ["worker_003"]
    assert [s.name for s in src.list_shards(2, 3)] == list(shards)
    fetched = src.fetch_clip("factory002_worker003_00003", tmp_path / "out", progress=False)
    with tarfile.open(root / "factory_002/workers/worker_003/factory002_worker003_part01.tar") as tf:
        assert fetched.mp4_path.read_bytes() == tf.extractfile("factory002_worker003_00003.mp4").read()
    out = src.fetch_intrinsics("factory002_worker003_00003", tmp_path / "intr" / "intrinsics.json")
    assert json.loads(out.read_text()) == src.read_intrinsics("factory_002", "worker_003")
    assert open_source(f"file://{root}").list_factories() == ["factory_002"]
    with pytest.raises(NotFoundError, match="does not exist"):
        open_source(str(tmp_path / "missing"))


def test_pinned_revision(hub, data, tmp_path):
    assert src_for(hub, tmp_path, revision=hub.sha).list_factories() == ["factory_001"]
    fetched = open_source(f"{hub.url}@{hub.sha}", endpoint=hub.endpoint, token=False, cache_dir=tmp_path / "c")
    assert fetched.fetch_clip("factory001_worker001_00000", tmp_path / "o", progress=False).size_bytes > 0
    assert all(f"/resolve/{hub.sha}/" in r.path for r in hub.resolve_requests())
    with pytest.raises(NotFoundError, match="revision 'nope' not found"):
        src_for(hub, tmp_path, revision="nope").list_factories()


# ---------------------------------------------------------------------------- auth


AUTH_HINTS = ("accept its conditions", "https://huggingface.co/datasets/builddotai/Egocentric-10K", "HF_TOKEN")


@pytest.mark.parametrize("gate_api", [True, False])
def test_gated_dataset_without_token(hub, data, tmp_path, gate_api):
    hub.token, hub.gate_api = TOKEN, gate_api
    src = src_for(hub, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(AuthError) as e:
        src.fetch_clip("factory001_worker001_00000", out, progress=False)
    msg = str(e.value)
    assert all(h in msg for h in AUTH_HINTS) and "401" in msg and "no token was sent" in msg
    assert_empty(out)


def test_gated_dataset_with_bad_token(hub, data, tmp_path, monkeypatch):
    hub.token, hub.gate_api = TOKEN, False
    bad = "hf_wrongTokenValue987654"
    monkeypatch.setenv("HF_TOKEN", bad)  # picked up by open_source, never shown
    src = src_for(hub, tmp_path, token=None)
    out = tmp_path / "out"
    with pytest.raises(AuthError) as e:
        src.fetch_clip("factory001_worker001_00000", out, progress=False)
    msg = str(e.value)
    assert all(h in msg for h in AUTH_HINTS) and "403" in msg
    assert bad not in msg and bad not in repr(src)
    assert any(r.headers.get("authorization") == f"Bearer {bad}" for r in hub.requests)
    assert_empty(out)


# ---------------------------------------------------------------------------- network faults


def test_5xx_then_success(hub, data, tmp_path):
    src = src_for(hub, tmp_path, retries=3)
    fault = hub.fail(503, times=2)
    fetched = src.fetch_clip("factory001_worker001_00002", tmp_path / "out", progress=False)
    assert fault.hits == 2
    assert fetched.mp4_path.read_bytes() == member_bytes(hub, "factory001_worker001_00002")[0]


def test_5xx_forever_is_bounded(hub, data, tmp_path):
    src = src_for(hub, tmp_path, retries=2)
    src.list_shards(1, 1)  # listings are fine; every file read fails
    fault = hub.fail(500, times=None)
    out = tmp_path / "out"
    with pytest.raises(SourceError) as e:
        src.fetch_clip("factory001_worker001_00002", out, progress=False)
    msg = str(e.value)
    assert (f"{hub.endpoint}/datasets/builddotai/Egocentric-10K/resolve/main/{WORKER}/"
            "factory001_worker001_part00.tar") in msg
    assert "HTTP 500" in msg and "gave up after 3 attempts" in msg
    assert fault.hits == 3
    assert_empty(out)


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_broken_body_resumes_from_where_it_stopped(hub, data, tmp_path, kind):
    src = src_for(hub, tmp_path)
    key = "factory001_worker001_00001"
    src.locate_clip(key)  # index first, so the fault hits the video body
    getattr(hub, kind)(times=1, keep=20_000)
    fetched = src.fetch_clip(key, tmp_path / "out", progress=False)
    assert fetched.mp4_path.read_bytes() == member_bytes(hub, key)[0]
    video_reads = [r for r in hub.resolve_requests() if r.sent > 10_000]
    assert video_reads[0].sent == 20_000
    start = int(video_reads[1].range.split("=")[1].split("-")[0])
    first = int(video_reads[0].range.split("=")[1].split("-")[0])
    assert start == first + 20_000  # the retry asked only for the missing bytes


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_broken_body_without_retries_fails_cleanly(hub, data, tmp_path, kind):
    src = src_for(hub, tmp_path, retries=0)
    key = "factory001_worker001_00001"
    src.locate_clip(key)
    getattr(hub, kind)(times=None)
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="factory001_worker001_part00.tar"):
        src.fetch_clip(key, out, progress=False)
    assert_empty(out)


def test_server_that_stops_answering(hub, data, tmp_path):
    src = src_for(hub, tmp_path, retries=0, timeout=0.5)
    src.list_shards(1, 1)
    hub.stall(seconds=30, times=None)
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="part00.tar.*gave up after 1 attempts"):
        src.fetch_clip("factory001_worker001_00000", out, progress=False)
    assert_empty(out)


def test_listing_survives_a_5xx(hub, data, tmp_path):
    fault = hub.fail(503, times=1, match="/tree/")  # huggingface_hub retries listings itself
    assert src_for(hub, tmp_path).list_workers(1) == ["worker_001", "worker_002"]
    assert fault.hits == 1


def test_listing_server_that_stops_answering(hub, data, tmp_path):
    hub.stall(seconds=30, times=None, match="api")
    with pytest.raises(SourceError, match=r"listing hf://datasets/builddotai/Egocentric-10K.*no complete answer"):
        src_for(hub, tmp_path, retries=0, timeout=0.5).list_factories()


def test_listing_that_pages_forever_is_bounded_and_stops(hub, data, tmp_path):
    """A server that always links another (empty) page: the listing gives up with a message
    that says so, and no request is made after the caller has its error."""
    hub.endless_pages = True
    src = src_for(hub, tmp_path, retries=0, timeout=2.0)
    with pytest.raises(SourceError, match=r"listing hf://datasets/builddotai/Egocentric-10K.*pages") as e:
        src.list_factories()
    assert "not answering" not in str(e.value)
    def tree_requests():
        return sum("/tree/" in r.path for r in hub.requests)

    after = tree_requests()
    time.sleep(1.0)
    assert tree_requests() == after, "the listing went on fetching after the caller gave up"
    assert after <= 1100


def test_redirect_loop_is_one_clear_error(hub, data, tmp_path):
    src = src_for(hub, tmp_path, retries=3, backoff=0.5)
    clip = src.list_clips(1, 1)[0]
    hub.redirect_loop = True
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"redirect") as e:
        src.fetch_clip(clip, tmp_path / "out", progress=False)
    assert time.monotonic() - t0 < 1.0  # a loop is not retried: it will not mend itself
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out" / f"{clip.key}.mp4").exists()


def test_fetch_real_h265_clip_through_the_hub(hub, tmp_path):
    from egoclean.synth import SynthConfig, write_dataset
    from egoclean.media.video import probe

    cfg = SynthConfig(clips=2, duration_sec=3.0, width=64, height=48, shards=2, anomalies=False)
    write_dataset(hub.root, cfg)
    src = src_for(hub, tmp_path)
    clip = src.list_clips(1, 1)[-1]
    fetched = src.fetch_clip(clip, tmp_path / "out", progress=False)
    info = probe(fetched.mp4_path)
    assert info.codec == "hevc" and (info.width, info.height) == (64, 48)
    assert info.n_frames == 90 and fetched.sidecar["video_index"] == clip.index


# ---------------------------------------------------------------------------- bad data


def test_unknown_factory_worker_clip(hub, data, tmp_path):
    src = src_for(hub, tmp_path)
    with pytest.raises(NotFoundError, match=r"factory factory_009 not found .*\(factories: factory_001\)"):
        src.list_workers("factory_009")
    with pytest.raises(NotFoundError, match=r"worker worker_007 not found in factory_001 .*worker_001, worker_002"):
        src.list_shards(1, 7)
    with pytest.raises(NotFoundError, match="factory factory_004 not found"):
        src.fetch_clip("factory004_worker001_00000", tmp_path / "out", progress=False)
    with pytest.raises(
        NotFoundError,
        match=r"clip factory001_worker001_00009 not found in shards "
        r"factory001_worker001_part00\.tar, factory001_worker001_part01\.tar",
    ):
        src.fetch_clip("factory001_worker001_00009", tmp_path / "out", progress=False)
    with pytest.raises(InvalidInputError, match="invalid factory 'fab_1'"):
        src.list_workers("fab_1")
    assert_empty(tmp_path / "out")


def write_shard(hub: HubStub, members: list[tuple[str, bytes]], name: str = "factory001_worker001_part00.tar") -> Path:
    """Replace worker 1's shards with one shard of the given members."""
    for old in (hub.root / WORKER).glob("*.tar"):
        old.unlink()
    return make_tar(hub.root / WORKER / name, members)


def clip_members(key: str, size: int = 5000, side: dict | None = None) -> list[tuple[str, bytes]]:
    return [(f"{key}.mp4", fake_video(key, size)), (f"{key}.json", json.dumps(side or sidecar(key, size)).encode())]


def test_truncated_tar(hub, data, tmp_path):
    key = "factory001_worker001_00000"
    path = write_shard(hub, clip_members(key) + clip_members("factory001_worker001_00001", 30_000))
    path.write_bytes(path.read_bytes()[:20_000])  # cut inside the second video
    out = tmp_path / "out"
    with pytest.raises(TarError, match="part00.tar: truncated tar"):
        src_for(hub, tmp_path).fetch_clip(key, out, progress=False)
    assert_empty(out)


def test_not_a_tar(hub, data, tmp_path):
    write_shard(hub, [])
    (hub.root / WORKER / "factory001_worker001_part00.tar").write_bytes(b"<html>not a tar</html>" * 100)
    out = tmp_path / "out"
    with pytest.raises(TarError, match="part00.tar: not a tar file"):
        src_for(hub, tmp_path).fetch_clip("factory001_worker001_00000", out, progress=False)
    assert_empty(out)


@pytest.mark.parametrize("bad", ["../x.mp4", "/abs.mp4", "a/b.mp4"])
def test_unsafe_member_names(hub, data, tmp_path, bad):
    write_shard(hub, clip_members("factory001_worker001_00000") + [(bad, b"evil")])
    out = tmp_path / "out"
    with pytest.raises(TarError, match=f"unsafe member name '{bad}'"):
        src_for(hub, tmp_path).fetch_clip("factory001_worker001_00000", out, progress=False)
    assert_empty(out)
    assert not (tmp_path / "x.mp4").exists() and not Path("/abs.mp4").exists()


def test_size_mismatch_with_sidecar_keeps_existing_file(hub, data, tmp_path):
    key = "factory001_worker001_00000"
    write_shard(hub, clip_members(key, 5000, sidecar(key, 4999)))
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{key}.mp4").write_bytes(b"previous good copy")
    with pytest.raises(TarError, match=r"sidecar size_bytes=4999 but the tar header of .*\.mp4 says 5000 bytes"):
        src_for(hub, tmp_path).fetch_clip(key, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [f"{key}.mp4"]
    assert (out / f"{key}.mp4").read_bytes() == b"previous good copy"


def test_sidecar_for_another_clip(hub, data, tmp_path):
    key = "factory001_worker001_00000"
    write_shard(hub, clip_members(key, 5000, sidecar("factory001_worker001_00003", 5000)))
    with pytest.raises(TarError, match="video_index=3, which does not match"):
        src_for(hub, tmp_path).fetch_clip(key, tmp_path / "out", progress=False)
    assert_empty(tmp_path / "out")


def test_missing_sidecar_or_video(hub, data, tmp_path):
    a, b = "factory001_worker001_00000", "factory001_worker001_00001"
    write_shard(hub, clip_members(a)[:1] + clip_members(b)[1:])
    src = src_for(hub, tmp_path)
    assert [c.key for c in src.list_clips(1, 1)] == [a, b]
    out = tmp_path / "out"
    with pytest.raises(TarError, match=f"{a} has a video but no {a}.json sidecar"):
        src.fetch_clip(a, out, progress=False)
    with pytest.raises(TarError, match=f"{b} has a sidecar but no {b}.mp4 video"):
        src.fetch_clip(b, out, progress=False)
    assert_empty(out)


def test_intrinsics_missing_or_malformed(hub, data, tmp_path):
    src = src_for(hub, tmp_path)
    (hub.root / WORKER / "intrinsics.json").write_text("{not json")
    with pytest.raises(IntrinsicsError, match="intrinsics.json: not valid JSON"):
        src.fetch_intrinsics("factory001_worker001_00000", tmp_path / "i.json")
    assert not (tmp_path / "i.json").exists()
    (hub.root / WORKER / "intrinsics.json").unlink()
    with pytest.raises(NotFoundError, match="intrinsics.json not found"):
        src_for(hub, tmp_path).read_intrinsics(1, 1)


# ---------------------------------------------------------------------------- CLI


def test_cli_ls_and_fetch_on_local_folder(tmp_path, capsys):
    root = tmp_path / "ds"
    make_worker(root, 1, 1, shards=(2,))
    assert cli.main(["ls", "--source", str(root)]) == 0
    assert capsys.readouterr().out.split() == ["factory_001"]
    assert cli.main(["ls", "factory_001/worker_001", "--clips", "--source", str(root)]) == 0
    listed = capsys.readouterr().out
    assert "factory001_worker001_part00.tar" in listed and "factory001_worker001_00001" in listed
    assert cli.main(["fetch", "factory001_worker001_00001", "-o", str(tmp_path / "o"), "--source", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["clip_id"] == "factory001_worker001_00001"
    assert cli.main(["fetch", "factory001_worker001_00007", "-o", str(tmp_path / "o"), "--source", str(root)]) == 2
    assert "clip factory001_worker001_00007 not found in shards" in capsys.readouterr().err


def run_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")} | env
    return subprocess.run(
        [sys.executable, "-m", "egoclean.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_against_the_hub_via_hf_endpoint(hub, data, tmp_path):
    """HF_ENDPOINT (read by huggingface_hub at import) points a fresh process at the stub."""
    env = {"HF_ENDPOINT": hub.endpoint, "EGOCLEAN_CACHE": str(tmp_path / "cache")}
    done = run_cli(["ls", "factory_001/worker_001", "--clips"], env)
    assert done.returncode == 0, done.stderr
    assert "factory001_worker001_part01.tar" in done.stdout and "factory001_worker001_00004" in done.stdout
    assert list((tmp_path / "cache" / "index").glob("*.json"))

    hub.token = TOKEN
    bad = "hf_badTokenForTheCliTest0123456789"
    done = run_cli(["fetch", "factory001_worker001_00000", "-o", str(tmp_path / "o")], env | {"HF_TOKEN": bad})
    assert done.returncode == 2
    assert "accept its conditions" in done.stderr and "HF_TOKEN" in done.stderr
    assert bad not in done.stderr + done.stdout
    assert_empty(tmp_path / "o")


# ---------------------------------------------------------------------------- damaged or odd shards


def test_part0_beside_part00_lists_and_fetches(tmp_path, capsys):
    """Two shards with the same part number (`_part0.tar`, `_part00.tar`): listed in name order, no traceback."""
    root = tmp_path / "ds"
    make_worker(root, 1, 1, shards=(2,))
    wdir = root / WORKER
    key = "factory001_worker001_00002"
    make_tar(wdir / "factory001_worker001_part0.tar", clip_members(key))
    src = open_source(str(root), cache_dir=tmp_path / "cache")
    assert [s.name for s in src.list_shards(1, 1)] == ["factory001_worker001_part0.tar",
                                                      "factory001_worker001_part00.tar"]
    assert cli.main(["ls", "factory_001/worker_001", "--clips", "--source", str(root)]) == 0
    assert key in capsys.readouterr().out
    assert cli.main(["fetch", key, "-o", str(tmp_path / "o"), "--source", str(root)]) == 0
    assert (tmp_path / "o" / f"{key}.mp4").read_bytes() == fake_video(key, 5000)


def test_one_damaged_shard_blocks_only_the_clips_that_could_be_in_it(hub, tmp_path):
    """part00 (0-1), part01 (2-3) damaged, part02 (4-5): clips 0, 1, 4, 5 fetch; 2 and 3 name the damaged shard."""
    make_worker(hub.root, 1, 1, shards=(2, 2, 2))
    damaged = hub.root / WORKER / "factory001_worker001_part01.tar"
    damaged.write_bytes(damaged.read_bytes()[:3000])  # cut inside its first video
    src = src_for(hub, tmp_path)
    out = tmp_path / "out"
    for i in (0, 1, 4, 5):
        key = f"factory001_worker001_{i:05d}"
        assert src.fetch_clip(key, out, progress=False).mp4_path.read_bytes() == fake_video(key, 50_000 + 7 * i)
    for i in (2, 3):
        with pytest.raises(TarError, match=f"_{i:05d} could be in the damaged shard factory001_worker001_part01.tar "
                                           r"\(between clips 1 and 4\): .*part01.tar: truncated tar"):
            src.fetch_clip(f"factory001_worker001_{i:05d}", out, progress=False)
    with pytest.raises(NotFoundError, match="_00009 not found in shards"):
        src.fetch_clip("factory001_worker001_00009", out, progress=False)
    # A damaged last shard could hold any later clip.
    last = hub.root / WORKER / "factory001_worker001_part02.tar"
    last.write_bytes(b"\x17" * 2048)
    fresh = src_for(hub, tmp_path, cache_dir=tmp_path / "c2")
    with pytest.raises(TarError, match=r"_00009 could be in the damaged shard \S+01.tar \(between clips 1 and the end"):
        fresh.fetch_clip("factory001_worker001_00009", out, progress=False)
    # Listing is strict unless the caller collects the damaged shards.
    with pytest.raises(TarError, match="part01.tar"):
        src.list_clips(1, 1)
    bad: list = []
    assert [c.index for c in src_for(hub, tmp_path, cache_dir=tmp_path / "c3").list_clips(1, 1, damaged=bad)] == [0, 1]
    assert [s.name for s, _ in bad] == ["factory001_worker001_part01.tar", "factory001_worker001_part02.tar"]


def test_member_of_another_worker_is_not_listed_as_a_clip(hub, tmp_path):
    """A shard member named for worker 2 inside worker 1's shard would be a partition that can never run."""
    write_shard(hub, clip_members("factory001_worker001_00000") + clip_members("factory001_worker002_00001"))
    assert [c.key for c in src_for(hub, tmp_path).list_clips(1, 1)] == ["factory001_worker001_00000"]
