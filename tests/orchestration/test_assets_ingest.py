"""Phase-1 assets against the stand-in Hugging Face hub: ranged reads, gated access, no token leaks."""

import pytest
from dagster import DagsterInstance, EnvVar, materialize

from egoclean_assets.assets.ingest import intrinsics, raw_tar, rectified_clip
from egoclean_assets.io_manager import ClipIOManager, ClipStorage
from egoclean_assets.partitions import add_clip_partitions
from egoclean_assets.resources import RectifyResource, SourceResource

TOKEN = "hf_StandInToken_5f3a9c1e77"
KEY = "factory001_worker001_00000"


@pytest.fixture
def gated_hub(hub):
    from egoclean.synth import SynthConfig, write_dataset

    write_dataset(hub.root, SynthConfig(clips=1, duration_sec=3.0, width=64, height=48, anomalies=False))
    hub.token = TOKEN
    return hub


def _run(hub, tmp_path, instance):
    storage = ClipStorage(data_root=str(tmp_path / "data"))
    resources = {
        "source": SourceResource(url=hub.url, endpoint=hub.endpoint, token=EnvVar("HF_TOKEN"),
                                 cache_dir=str(tmp_path / "index-cache")),
        "rectify": RectifyResource(),
        "storage": storage,
        "io_manager": ClipIOManager(storage=storage),
    }
    return materialize([raw_tar, intrinsics, rectified_clip], instance=instance, resources=resources,
                       partition_key=KEY, raise_on_error=False)


def _everything_written(tmp_path, instance, result) -> str:
    """Event log, metadata and every text file under tmp_path, as one string."""
    parts = [repr(e) for e in instance.all_logs(result.run_id)]
    for p in tmp_path.rglob("*"):
        if p.is_file() and p.suffix in (".json", ".log", ".txt", ".csv", ""):
            parts.append(p.read_text(errors="replace"))
    return "\n".join(parts)


def test_phase1_from_gated_hub_by_ranged_reads_without_leaking_the_token(gated_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    instance = DagsterInstance.ephemeral()
    add_clip_partitions(instance, [KEY])
    result = _run(gated_hub, tmp_path, instance)
    assert result.success
    clip_dir = tmp_path / "data" / "factory_001" / "worker_001" / KEY
    assert (clip_dir / f"{KEY}_rectified.mp4").is_file() and (clip_dir / f"{KEY}_intrinsics.json").is_file()
    assert not (clip_dir / "raw").exists()
    # the clip came out of its shard by HTTP range requests, not a whole-shard download
    ranged = [r for r in gated_hub.resolve_requests() if r.range]
    assert ranged and all(".tar" in r.path or "intrinsics" in r.path for r in gated_hub.resolve_requests())
    shard_size = sum(p.stat().st_size for p in gated_hub.root.rglob("*.tar"))
    assert gated_hub.bytes_sent(".tar") <= shard_size
    assert TOKEN not in _everything_written(tmp_path, instance, result)


def test_wrong_token_fails_clearly_without_the_token(gated_hub, tmp_path, monkeypatch):
    wrong = "hf_WrongToken_0000000000"
    monkeypatch.setenv("HF_TOKEN", wrong)
    instance = DagsterInstance.ephemeral()
    add_clip_partitions(instance, [KEY])
    result = _run(gated_hub, tmp_path, instance)
    assert not result.success
    err = result.failure_data_for_node("raw_tar").error
    text = err.to_string()
    assert "AuthError" in text and "the token was refused" in text and "HF_TOKEN" in text
    assert wrong not in _everything_written(tmp_path, instance, result) and wrong not in text
