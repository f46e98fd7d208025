"""ClipIOManager: layout by factory/worker/clip, remote roots, and intermediate deletion.

Uses three small stand-in assets named like the real phase-1 ones (so the IO manager's
intermediate table applies) that write tiny files: the deletion logic is tested without
video work. The full graph is exercised in test_assets_graph.py.
"""

import fsspec
import pytest
from dagster import AssetKey, ConfigurableResource, DagsterInstance, asset, materialize

from egoclean.core.errors import InvalidInputError
from egoclean.core.ids import ClipId
from egoclean_assets.io_manager import ClipArtifact, ClipIOManager, ClipStorage
from egoclean_assets.partitions import add_clip_partitions, clip_of, clip_partitions
from tests.support.dagster_helpers import error_text

CLIP = "factory001_worker002_00003"


class Failure(ConfigurableResource):
    """Makes the stand-in rectified_clip fail while `fail` is set; `interleave` makes it
    act out a concurrent run of the same clip that refetches raw_tar and re-runs
    intrinsics while this rectified_clip is still working on the older raw clip."""

    fail: bool = False
    interleave: bool = False


@asset(partitions_def=clip_partitions)
def raw_tar(context, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    d = storage.output_dir(clip, "raw_tar")
    (d / f"{clip.key}.mp4").write_bytes(b"raw video")
    (d / f"{clip.key}.json").write_text('{"width": 4}')
    return ClipArtifact(clip.key, "raw_tar",
                        {"mp4": str(d / f"{clip.key}.mp4"), "sidecar": str(d / f"{clip.key}.json")},
                        info={"video": {"n_frames": 7}})


@asset(partitions_def=clip_partitions)
def intrinsics(context, raw_tar: ClipArtifact, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    p = storage.output_dir(clip, "intrinsics") / f"{clip.key}_intrinsics.json"
    p.write_text(raw_tar.path("sidecar").read_text())
    return ClipArtifact(clip.key, "intrinsics", {"json": str(p)})


@asset(partitions_def=clip_partitions)
def rectified_clip(context, raw_tar: ClipArtifact, intrinsics: ClipArtifact, storage: ClipStorage,
                   failure: Failure) -> ClipArtifact:
    if failure.fail:
        raise RuntimeError("planted failure in rectified_clip")
    clip = clip_of(context)
    if failure.interleave:
        for asset_name, update in (("raw_tar", {"generation": "other-run"}),
                                   ("intrinsics", {"consumed": {"raw_tar": "other-run"}})):
            storage.write_manifest(clip, asset_name, storage.read_manifest(clip, asset_name) | update)
    p = storage.output_dir(clip, "rectified_clip") / f"{clip.key}_rectified.mp4"
    p.write_bytes(raw_tar.path("mp4").read_bytes().upper())
    return ClipArtifact(clip.key, "rectified_clip", {"mp4": str(p)},
                        info={"raw_frames": raw_tar.info["video"]["n_frames"]})


ASSETS = [raw_tar, intrinsics, rectified_clip]


def _resources(root, work=None, fail=False, interleave=False):
    storage = ClipStorage(data_root=str(root), work_dir=str(work) if work else None)
    return {"storage": storage, "io_manager": ClipIOManager(storage=storage),
            "failure": Failure(fail=fail, interleave=interleave)}


def _metadata(result, name):
    (mat,) = [m for m in result.asset_materializations_for_node(name)]
    return mat.metadata


@pytest.fixture
def instance():
    inst = DagsterInstance.ephemeral()
    add_clip_partitions(inst, [CLIP])
    return inst


def test_layout_and_intermediate_deleted_after_last_consumer(tmp_path, instance):
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP)
    assert res.success
    clip_dir = tmp_path / "factory_001" / "worker_002" / CLIP
    assert (clip_dir / f"{CLIP}_intrinsics.json").read_text() == '{"width": 4}'
    assert (clip_dir / f"{CLIP}_rectified.mp4").read_bytes() == b"RAW VIDEO"
    # the raw clip and sidecar are gone, and their folder with them
    assert not (clip_dir / "raw").exists()
    deleted = _metadata(res, "rectified_clip")["deleted_intermediates"].value
    assert sorted(deleted) == sorted([str(clip_dir / "raw" / f"{CLIP}.mp4"), str(clip_dir / "raw" / f"{CLIP}.json")])
    # intrinsics ran first; the raw clip was still needed then, so it deleted nothing
    assert "deleted_intermediates" not in _metadata(res, "intrinsics")
    # the manifest remembers what was deleted and what the raw clip held
    storage = ClipStorage(data_root=str(tmp_path))
    m = storage.read_manifest(ClipId.parse(CLIP), "raw_tar")
    assert m["files"] == {} and set(m["deleted"]["files"]) == {"mp4", "sidecar"}
    assert m["info"]["video"]["n_frames"] == 7


def test_failed_consumer_keeps_intermediate_and_retry_deletes_it(tmp_path, instance):
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path, fail=True), partition_key=CLIP,
                      raise_on_error=False)
    assert not res.success
    raw = tmp_path / "factory_001" / "worker_002" / CLIP / "raw" / f"{CLIP}.mp4"
    assert raw.read_bytes() == b"raw video"  # intrinsics succeeded, rectified_clip failed: kept
    # retry only the failed asset: it still finds its input, then the raw clip goes
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP,
                      selection=[rectified_clip])
    assert res.success
    assert not raw.exists()
    assert str(raw) in _metadata(res, "rectified_clip")["deleted_intermediates"].value


def test_consumer_vouches_only_for_the_version_it_loaded(tmp_path, instance):
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path, interleave=True), partition_key=CLIP)
    assert res.success
    # the other run's rectified_clip has not consumed the newer raw clip yet: it stays
    assert (tmp_path / "factory_001" / "worker_002" / CLIP / "raw" / f"{CLIP}.mp4").is_file()
    assert "deleted_intermediates" not in _metadata(res, "rectified_clip")
    storage = ClipStorage(data_root=str(tmp_path))
    consumed = storage.read_manifest(ClipId.parse(CLIP), "rectified_clip")["consumed"]["raw_tar"]
    assert consumed != "other-run"


def test_loading_a_deleted_intermediate_says_so_and_rematerializing_refetches(tmp_path, instance):
    assert materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP).success
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP,
                      selection=[intrinsics], raise_on_error=False)
    assert not res.success
    msg = error_text(res, "intrinsics")
    assert "raw_tar of clip " + CLIP in msg and "deleted" in msg
    # materializing the whole graph again refetches the raw clip and deletes it again
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP)
    assert res.success and len(_metadata(res, "rectified_clip")["deleted_intermediates"].value) == 2


def test_unmaterialized_input_is_a_clear_error(tmp_path, instance):
    res = materialize(ASSETS, instance=instance, resources=_resources(tmp_path), partition_key=CLIP,
                      selection=[intrinsics], raise_on_error=False)
    assert f"raw_tar of clip {CLIP} has not been materialized" in error_text(res, "intrinsics")
    # on top, not after Dagster's "Error occurred while loading input" (issue 18)
    failure = res.failure_data_for_node("intrinsics")
    assert failure.user_failure_data.description.startswith(f"InvalidInputError: raw_tar of clip {CLIP} has not")
    assert failure.error.message.startswith("dagster._core.definitions.events.Failure: InvalidInputError: ")


def test_remote_root_puts_outputs_and_leaves_no_local_copies(tmp_path, instance):
    root = "memory://egoclean-test-root"
    work = tmp_path / "work"
    res = materialize(ASSETS, instance=instance, resources=_resources(root, work), partition_key=CLIP)
    assert res.success
    fs = fsspec.filesystem("memory")
    base = f"/egoclean-test-root/factory_001/worker_002/{CLIP}"
    assert fs.cat_file(f"{base}/{CLIP}_rectified.mp4") == b"RAW VIDEO"
    assert fs.exists(f"{base}/{CLIP}_intrinsics.json")
    assert not fs.exists(f"{base}/raw/{CLIP}.mp4")
    assert _metadata(res, "rectified_clip")["location"].value == f"{root}/factory_001/worker_002/{CLIP}"
    # nothing is left in the work folder: outputs were put, inputs' downloads removed
    leftovers = [p for p in work.rglob("*") if p.is_file()]
    assert leftovers == []
    fs.rm("/egoclean-test-root", recursive=True)


def test_output_outside_the_clip_folder_is_refused(tmp_path):
    storage = ClipStorage(data_root=str(tmp_path / "root"))
    stray = tmp_path / "elsewhere.bin"
    stray.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="outside its folder"):
        storage.publish(ClipId.parse(CLIP), {"x": str(stray)})


def test_asset_key_names_match_the_real_graph():
    # the intermediate table is keyed by asset name: the stand-ins must use the real names
    from egoclean_assets.assets import ALL_ASSETS
    from egoclean_assets.io_manager import INTERMEDIATES

    names = {k.path[-1] for a in ALL_ASSETS for k in a.keys}
    for inter, consumers in INTERMEDIATES.items():
        assert inter in names and set(consumers) <= names
    assert {AssetKey(a.key.path) for a in ASSETS} <= {k for a in ALL_ASSETS for k in a.keys}


@asset(partitions_def=clip_partitions)
def two_files(context, storage: ClipStorage, failure: Failure) -> ClipArtifact:
    """Writes its first file, then (while `failure.fail`) dies before the second: a half-done update."""
    clip = clip_of(context)
    d = storage.output_dir(clip, "two_files")
    (d / f"{clip.key}_first.txt").write_text(context.run_id)
    if failure.fail:
        raise RuntimeError("planted failure between the two files")
    (d / f"{clip.key}_second.txt").write_text(context.run_id)
    return ClipArtifact(clip.key, "two_files", {"first": str(d / f"{clip.key}_first.txt"),
                                                "second": str(d / f"{clip.key}_second.txt")})


@asset(partitions_def=clip_partitions)
def reads_two(context, two_files: ClipArtifact, storage: ClipStorage) -> ClipArtifact:
    clip = clip_of(context)
    assert two_files.path("first").read_text() == two_files.path("second").read_text(), "a mix was read"
    p = storage.output_dir(clip, "reads_two") / f"{clip.key}_two_ok.txt"
    p.write_text("ok")
    return ClipArtifact(clip.key, "reads_two", {"txt": str(p)})


def test_a_half_updated_local_output_is_refused_not_read_as_whole(tmp_path, instance):
    root = tmp_path / "data"
    assert materialize([two_files], instance=instance, resources=_resources(root), partition_key=CLIP).success
    assert not materialize([two_files], instance=instance, resources=_resources(root, fail=True),
                           partition_key=CLIP, raise_on_error=False).success
    res = materialize([two_files, reads_two], instance=instance, resources=_resources(root), partition_key=CLIP,
                      selection=[reads_two], raise_on_error=False)
    assert not res.success
    msg = error_text(res, "reads_two")
    assert f"two_files of clip {CLIP}: " in msg and f"{CLIP}_first.txt is not the file its manifest records" in msg
    assert materialize([two_files, reads_two], instance=instance, resources=_resources(root),
                       partition_key=CLIP).success


def test_a_damaged_local_manifest_is_one_clear_error(tmp_path, instance):
    root = tmp_path / "data"
    assert materialize(ASSETS[:1], instance=instance, resources=_resources(root), partition_key=CLIP).success
    manifest = root / "factory_001" / "worker_002" / CLIP / "_manifests" / "raw_tar.json"
    manifest.write_text('{"asset": ')
    res = materialize(ASSETS, instance=instance, resources=_resources(root), partition_key=CLIP,
                      selection=[intrinsics], raise_on_error=False)
    assert f"manifest {manifest} (raw_tar of clip {CLIP}): not valid JSON" in error_text(res, "intrinsics")
