"""Network faults inside the Dagster graph: raw_tar materialized through Dagster against the
stand-in hub (tests/support/hubstub.py) serving a synthetic dataset of real H.265 clips.

Each fault ends in success (with the exact bytes) or in a step failure whose message says
what went wrong and what to do, within a bounded time; after a failure nothing sits under
the final names, so no later step can take a partial clip. The library-level versions
of these cases (and a server that stops answering, which needs a short timeout) are in
tests/ingest/test_source.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from egoclean.core.ids import ClipId
from egoclean_assets.assets import ALL_ASSETS
from egoclean_assets.partitions import add_clip_partitions
from tests.support.hubstub import HubStub

from .conftest import MARKED_TOKEN, graph_resources, part_files


@pytest.fixture
def env(synth_dataset, tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    with HubStub(synth_dataset["source"]) as stub:
        instance = DagsterInstance.ephemeral()
        add_clip_partitions(instance, synth_dataset["keys"] + ["factory001_worker009_00000",
                                                               "factory001_worker001_00077"])
        yield {"hub": stub, "instance": instance, "root": tmp_path / "data", "ds": synth_dataset,
               "tmp": tmp_path}


def fetch_raw(env, key: str, token: str | None = None, **source_kw):
    res = graph_resources(env["hub"].url, env["root"], env["tmp"] / "db.duckdb", model="unused",
                          endpoint=env["hub"].endpoint, cache_dir=str(env["tmp"] / "index-cache"), token=token,
                          **source_kw)
    return materialize(ALL_ASSETS, instance=env["instance"], resources=res, partition_key=key,
                       selection=AssetSelection.assets("raw_tar"), raise_on_error=False)


def failure_text(result) -> str:
    (ev,) = [e for e in result.all_events if e.is_step_failure]
    return ev.event_specific_data.error.to_string()


def raw_files(env, key: str) -> list[str]:
    clip = ClipId.parse(key)
    d = env["root"] / clip.factory_dir / clip.worker_dir / key
    return sorted(p.name for p in d.rglob("*") if p.is_file() and "_manifests" not in p.parts) if d.exists() else []


def served_bytes(env, key: str) -> bytes:
    import tarfile

    for tar in sorted(Path(env["ds"]["source"]).rglob("*.tar")):
        with tarfile.open(tar) as tf:
            try:
                return tf.extractfile(f"{key}.mp4").read()
            except KeyError:
                continue
    raise AssertionError(key)


def assert_clean_failure(env, key: str, result, *needles: str) -> str:
    assert not result.success
    text = failure_text(result)
    for n in needles:
        assert n in text, f"{n!r} not in: {text[-2000:]}"
    assert raw_files(env, key) == [], "a failed fetch left files under their final names"
    assert part_files(env["root"]) == []
    assert not result.asset_materializations_for_node("raw_tar")
    return text


def assert_fetched(env, key: str, result) -> None:
    assert result.success
    mp4 = env["root"] / "factory_001" / "worker_001" / key / "raw" / f"{key}.mp4"
    assert mp4.read_bytes() == served_bytes(env, key)
    assert part_files(env["root"]) == []


def test_5xx_then_success_through_the_graph(env):
    key = env["ds"]["keys"][0]
    fault = env["hub"].fail(503, times=2)
    assert_fetched(env, key, fetch_raw(env, key))
    assert fault.hits == 2


def test_5xx_forever_fails_bounded_then_retry_succeeds(env):
    key = env["ds"]["keys"][0]
    env["hub"].fail(500, times=None)
    # the default 5 attempts, with a shorter backoff than the default 0.5 s to keep CI fast
    text = assert_clean_failure(env, key, fetch_raw(env, key, backoff=0.05), "HTTP 500", "gave up after 5 attempts",
                                "factory001_worker001_part00.tar", "rerun later")
    assert "Traceback" not in text.splitlines()[0]
    env["hub"].clear()
    assert_fetched(env, key, fetch_raw(env, key))


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_broken_body_once_resumes(env, kind):
    key = env["ds"]["keys"][1]
    getattr(env["hub"], kind)(times=1, keep=8192, match=r"\.tar$")
    assert_fetched(env, key, fetch_raw(env, key))


@pytest.mark.parametrize("kind", ["reset", "short"])
def test_broken_body_forever_fails_cleanly(env, kind):
    key = env["ds"]["keys"][1]
    fetch_raw(env, env["ds"]["keys"][0])  # index the shard first: the fault then hits the clip body
    getattr(env["hub"], kind)(times=None, keep=8192, match=r"\.tar$")
    assert_clean_failure(env, key, fetch_raw(env, key, backoff=0.05), "factory001_worker001_part00.tar",
                         "gave up after 5 attempts", "rerun later")


def test_gated_without_token_says_how_to_get_access(env):
    key = env["ds"]["keys"][0]
    env["hub"].token = MARKED_TOKEN
    assert_clean_failure(env, key, fetch_raw(env, key), "HTTP 401", "no token was sent", "accept its conditions",
                         "HF_TOKEN")


def test_gated_with_wrong_token_says_it_was_refused(env):
    key = env["ds"]["keys"][0]
    env["hub"].token = MARKED_TOKEN
    wrong = "hf_EGOCLEANWRONGTOKEN0123456789abcdef"
    text = assert_clean_failure(env, key, fetch_raw(env, key, token=wrong), "HTTP 403", "the token was refused",
                                "HF_TOKEN")
    assert wrong not in text and MARKED_TOKEN not in text
    assert_fetched(env, key, fetch_raw(env, key, token=MARKED_TOKEN))


@pytest.mark.parametrize("key, needle", [
    ("factory001_worker009_00000", "worker_009 not found"),
    ("factory001_worker001_00077", "clip factory001_worker001_00077 not found"),
])
def test_missing_worker_or_clip(env, key, needle):
    assert_clean_failure(env, key, fetch_raw(env, key), needle)


def test_server_that_stops_answering_fails_within_the_timeout(env):
    """A hub that accepts the request and says nothing: each try ends at the resource's
    timeout, and the step fails naming the file and the cause (no partial clip)."""
    key = env["ds"]["keys"][0]
    fetch_raw(env, env["ds"]["keys"][1])  # listings and the shard index are cached first
    env["hub"].stall(seconds=60, times=None, match=r"\.tar$")
    res = graph_resources(env["hub"].url, env["root"], env["tmp"] / "db.duckdb", model="unused",
                          endpoint=env["hub"].endpoint, cache_dir=str(env["tmp"] / "index-cache"),
                          retries=1, timeout=0.5, backoff=0.1)
    result = materialize(ALL_ASSETS, instance=env["instance"], resources=res, partition_key=key,
                         selection=AssetSelection.assets("raw_tar"), raise_on_error=False)
    assert_clean_failure(env, key, result, "factory001_worker001_part00.tar", "gave up after 2 attempts",
                         "ReadTimeout", "rerun later")
