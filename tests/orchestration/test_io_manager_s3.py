"""ClipIOManager with an `s3://` data root on a real S3 API server (moto, server mode) and s3fs.

Faults come from a proxy between s3fs and the server (tests/support/servers.py FaultProxy): an
upload cut off half-way, an endpoint that went away, 500s on reads, slow answers."""

import os

import boto3
import pytest
import s3fs
from dagster import AssetKey, DagsterInstance, asset, materialize

from tests.support.dagster_helpers import error_text
from egoclean_assets.io_manager import ClipArtifact, ClipIOManager, ClipStorage
from egoclean_assets.partitions import add_clip_partitions, clip_of, clip_partitions
from tests.support.servers import FaultProxy
from tests.orchestration.test_io_manager import ASSETS, CLIP, Failure

BIG = 6 * 1024 * 1024


@asset(partitions_def=clip_partitions)
def big_output(context, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    p = storage.output_dir(clip, "big_output") / f"{clip.key}_big.bin"
    p.write_bytes(os.urandom(BIG))
    return ClipArtifact(clip.key, "big_output", {"bin": str(p)})


@asset(partitions_def=clip_partitions)
def reads_big(context, big_output: ClipArtifact, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    p = storage.output_dir(clip, "reads_big") / f"{clip.key}_size.txt"
    p.write_text(str(big_output.path("bin").stat().st_size))
    return ClipArtifact(clip.key, "reads_big", {"txt": str(p)})


@asset(partitions_def=clip_partitions)
def pair_output(context, storage: ClipStorage) -> ClipArtifact:
    """Two files of one generation: a small one, then a big one (uploaded in that order)."""
    clip = clip_of(context)
    d = storage.output_dir(clip, "pair_output")
    token = context.run_id.encode()
    (d / f"{clip.key}_pair_a.txt").write_bytes(token)
    (d / f"{clip.key}_pair_b.bin").write_bytes(token + os.urandom(BIG))
    return ClipArtifact(clip.key, "pair_output", {"a": str(d / f"{clip.key}_pair_a.txt"),
                                                  "b": str(d / f"{clip.key}_pair_b.bin")})


@asset(partitions_def=clip_partitions)
def reads_pair(context, pair_output: ClipArtifact, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    a, b = pair_output.path("a").read_bytes(), pair_output.path("b").read_bytes()
    assert b.startswith(a), "a mix of two generations was read as one output"
    p = storage.output_dir(clip, "reads_pair") / f"{clip.key}_pair_ok.txt"
    p.write_text("ok")
    return ClipArtifact(clip.key, "reads_pair", {"txt": str(p)})


@pytest.fixture
def bucket(s3_env, request):
    name = "io-" + request.node.name.replace("_", "-")[:40].lower().strip("-")
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def instance():
    inst = DagsterInstance.ephemeral()
    add_clip_partitions(inst, [CLIP])
    return inst


def _resources(root, work, **kw):
    storage = ClipStorage(data_root=root, work_dir=str(work), **kw)
    return {"storage": storage, "io_manager": ClipIOManager(storage=storage), "failure": Failure()}


def _files(work):
    return [p for p in work.rglob("*") if p.is_file()]


def test_s3_root_holds_every_output_and_deletes_the_intermediate(bucket, tmp_path, instance):
    root = f"s3://{bucket}/data"
    work = tmp_path / "work"
    res = materialize(ASSETS, instance=instance, resources=_resources(root, work), partition_key=CLIP)
    assert res.success
    fs = s3fs.S3FileSystem()
    base = f"{bucket}/data/factory_001/worker_002/{CLIP}"
    assert fs.cat_file(f"{base}/{CLIP}_rectified.mp4") == b"RAW VIDEO"
    assert fs.exists(f"{base}/{CLIP}_intrinsics.json")
    assert not fs.exists(f"{base}/raw/{CLIP}.mp4")  # the intermediate, deleted once both consumers succeeded
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{base}/_manifests")) == [
        "intrinsics.json", "raw_tar.json", "rectified_clip.json"]
    assert _files(work) == []  # staged files and downloads are gone


def test_upload_cut_off_half_way_leaves_no_object_and_no_manifest(bucket, tmp_path, instance, s3_server, monkeypatch):
    root = f"s3://{bucket}/data"
    work = tmp_path / "work"
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.cut_uploads_after = 64 * 1024
        res = materialize([big_output], instance=instance, resources=_resources(root, work, retries=2),
                          partition_key=CLIP, raise_on_error=False)
        assert not res.success
        msg = error_text(res, "big_output")
        assert "object store" in msg and "uploading" in msg and "failed after 2 attempt(s)" in msg
        puts = [r for r in proxy.requests if r[0] in ("PUT", "POST")]
        # bounded: two attempts, each one PUT (the HTTP client reopens a dropped connection once)
        assert 2 <= len(puts) <= 4
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    fs = s3fs.S3FileSystem()
    base = f"{bucket}/data/factory_001/worker_002/{CLIP}"
    assert not fs.exists(f"{base}/{CLIP}_big.bin")
    assert not fs.exists(f"{base}/_manifests/big_output.json")
    assert _files(work) == []
    # the store is fine once the endpoint is: a rerun completes and a consumer reads it whole
    res = materialize([big_output, reads_big], instance=instance, resources=_resources(root, work),
                      partition_key=CLIP)
    assert res.success
    assert fs.size(f"{base}/{CLIP}_big.bin") == BIG
    assert fs.cat_file(f"{base}/{CLIP}_size.txt") == str(BIG).encode()


def test_endpoint_gone_is_a_clear_error_after_bounded_retries(bucket, tmp_path, instance, monkeypatch):
    with FaultProxy(1) as proxy:
        dead = proxy.endpoint  # a port that nothing listens on once the proxy is closed
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    res = materialize([big_output], instance=instance,
                      resources=_resources(f"s3://{bucket}/data", tmp_path / "w", retries=3, timeout_sec=2),
                      partition_key=CLIP, raise_on_error=False)
    assert not res.success
    msg = error_text(res, "big_output")
    assert f"object store s3://{bucket}/data: uploading" in msg and "failed after 3 attempt(s)" in msg
    assert _files(tmp_path / "w") == []


def test_500_on_read_is_retried_then_reported(bucket, tmp_path, instance, s3_server, monkeypatch):
    root = f"s3://{bucket}/data"
    assert materialize([big_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.fail_gets = 2  # two 500s, then the server answers: the retries get through
        res = materialize([big_output, reads_big], instance=instance, resources=_resources(root, tmp_path / "b"),
                          partition_key=CLIP, selection=[reads_big])
        assert res.success
        assert proxy.fail_gets == 0
        proxy.fail_gets = -1  # every read fails: a clear error after the bounded attempts
        proxy.requests.clear()
        res = materialize([big_output, reads_big], instance=instance,
                          resources=_resources(root, tmp_path / "c", retries=3), partition_key=CLIP,
                          selection=[reads_big], raise_on_error=False)
        assert not res.success
        msg = error_text(res, "reads_big")
        assert "reading" in msg and "big_output.json failed after 3 attempt(s)" in msg
        # one request per attempt (s3fs asks with HEAD first), none after the last
        assert len([r for r in proxy.requests if r[1].endswith("_manifests/big_output.json")]) == 3
    assert instance.get_latest_materialization_event(AssetKey("reads_big")) is not None  # the earlier success only


def test_slow_answers_time_out_and_are_bounded(bucket, tmp_path, instance, s3_server, monkeypatch):
    root = f"s3://{bucket}/data"
    assert materialize([big_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.delay_sec = 0.3  # slow, but inside the timeout: fine
        res = materialize([big_output, reads_big], instance=instance,
                          resources=_resources(root, tmp_path / "b", timeout_sec=5), partition_key=CLIP,
                          selection=[reads_big])
        assert res.success
        proxy.delay_sec = 4.0  # slower than the timeout: each attempt gives up, then the step
        res = materialize([big_output, reads_big], instance=instance,
                          resources=_resources(root, tmp_path / "c", timeout_sec=1, retries=2), partition_key=CLIP,
                          selection=[reads_big], raise_on_error=False)
        assert not res.success
        msg = error_text(res, "reads_big")
        assert "failed after 2 attempt(s)" in msg and "timeout" in msg.lower()
        assert _files(tmp_path / "c") == []


def test_a_half_published_output_is_refused_not_read_as_whole(bucket, tmp_path, instance, s3_server, monkeypatch):
    """A re-materialization whose second upload fails leaves its new first file beside the old second
    one under the old manifest: the reader refuses the mix (the manifest records each file's SHA-256)."""
    root = f"s3://{bucket}/data"
    assert materialize([pair_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.cut_uploads_after = 64 * 1024  # the small file goes up, the big one is cut off
        res = materialize([pair_output], instance=instance, resources=_resources(root, tmp_path / "b", retries=1),
                          partition_key=CLIP, raise_on_error=False)
        assert not res.success and "failed after 1 attempt(s)" in error_text(res, "pair_output")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    res = materialize([pair_output, reads_pair], instance=instance, resources=_resources(root, tmp_path / "c"),
                      partition_key=CLIP, selection=[reads_pair], raise_on_error=False)
    assert not res.success
    msg = error_text(res, "reads_pair")
    assert (f"pair_output of clip {CLIP}: s3://{bucket}/data/factory_001/worker_002/{CLIP}/{CLIP}_pair_a.txt "
            "is not the file its manifest records") in msg and f"re-materialize pair_output for {CLIP}" in msg
    assert _files(tmp_path / "c") == []
    # re-materializing makes it whole again
    assert materialize([pair_output, reads_pair], instance=instance, resources=_resources(root, tmp_path / "d"),
                       partition_key=CLIP).success


def test_a_missing_bucket_is_named_and_not_retried(s3_env, tmp_path, instance, s3_server, monkeypatch):
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        res = materialize([big_output], instance=instance,
                          resources=_resources("s3://no-such-bucket/data", tmp_path / "w", retries=4),
                          partition_key=CLIP, raise_on_error=False)
        puts = [r for r in proxy.requests if r[0] in ("PUT", "POST")]
    msg = error_text(res, "big_output")
    assert (f"object store s3://no-such-bucket/data: uploading s3://no-such-bucket/data/factory_001/worker_002/"
            f"{CLIP}/{CLIP}_big.bin: the bucket does not exist") in msg, msg
    assert len(puts) <= 2  # one attempt (the HTTP client may resend once), not four
    assert _files(tmp_path / "w") == []


def test_access_denied_is_said_once_not_retried(bucket, tmp_path, instance, s3_server, monkeypatch):
    root = f"s3://{bucket}/data"
    assert materialize([big_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    with FaultProxy(s3_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.fail_gets, proxy.fail_status = -1, 403
        res = materialize([big_output, reads_big], instance=instance,
                          resources=_resources(root, tmp_path / "b", retries=4), partition_key=CLIP,
                          selection=[reads_big], raise_on_error=False)
        asked = [r for r in proxy.requests if r[1].endswith("_manifests/big_output.json")]
    msg = error_text(res, "reads_big")
    assert f"object store {root}: reading {root}/factory_001/worker_002/{CLIP}/_manifests/big_output.json: " \
           "access denied" in msg and "check the credentials" in msg, msg
    assert len(asked) <= 2  # one attempt (s3fs may ask with HEAD first), not four


def test_a_missing_object_is_named_by_its_url(bucket, tmp_path, instance):
    root = f"s3://{bucket}/data"
    assert materialize([big_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    url = f"{root}/factory_001/worker_002/{CLIP}/{CLIP}_big.bin"
    s3fs.S3FileSystem().rm_file(url)
    res = materialize([big_output, reads_big], instance=instance, resources=_resources(root, tmp_path / "b"),
                      partition_key=CLIP, selection=[reads_big], raise_on_error=False)
    msg = error_text(res, "reads_big")
    assert f"clip {CLIP}: stored output file(s) missing: {url}" in msg, msg
    assert str(tmp_path) not in msg


def test_a_damaged_manifest_is_one_clear_error(bucket, tmp_path, instance):
    root = f"s3://{bucket}/data"
    assert materialize([big_output], instance=instance, resources=_resources(root, tmp_path / "a"),
                       partition_key=CLIP).success
    loc = f"{root}/factory_001/worker_002/{CLIP}/_manifests/big_output.json"
    for damaged, problem in ((b'{"asset": "big_out', "not valid JSON"), (b"[1, 2]", "not an EgoClean manifest")):
        s3fs.S3FileSystem().pipe_file(loc, damaged)
        res = materialize([big_output, reads_big], instance=instance, resources=_resources(root, tmp_path / "b"),
                          partition_key=CLIP, selection=[reads_big], raise_on_error=False)
        msg = error_text(res, "reads_big")
        assert f"manifest {loc} (big_output of clip {CLIP}): " in msg and problem in msg, msg
