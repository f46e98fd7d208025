"""Clip partition keys are validated at registration and when an asset runs."""

import pytest
from dagster import DagsterInstance, asset, materialize

from egoclean.core.errors import ClipIdError
from egoclean_assets.partitions import CLIPS, add_clip_partitions, clip_of, clip_partitions, validate_clip_keys
from tests.support.dagster_helpers import error_text


def test_add_clip_partitions_registers_new_keys_once():
    inst = DagsterInstance.ephemeral()
    assert add_clip_partitions(inst, ["factory001_worker001_00001", "factory001_worker001_00002"]) == [
        "factory001_worker001_00001", "factory001_worker001_00002"]
    assert add_clip_partitions(inst, ["factory001_worker001_00002", "factory002_worker010_00000"]) == [
        "factory002_worker010_00000"]
    assert sorted(inst.get_dynamic_partitions(CLIPS)) == [
        "factory001_worker001_00001", "factory001_worker001_00002", "factory002_worker010_00000"]


@pytest.mark.parametrize("bad", ["factory1_worker001_00001", "factory001_worker001_0001", "../etc/passwd",
                                 "factory001_worker001_00001 ", ""])
def test_bad_key_is_refused_with_the_key_in_the_message_and_nothing_added(bad):
    inst = DagsterInstance.ephemeral()
    with pytest.raises(ClipIdError) as e:
        add_clip_partitions(inst, ["factory001_worker001_00001", bad])
    assert repr(bad) in str(e.value)
    assert inst.get_dynamic_partitions(CLIPS) == []


def test_validate_dedupes_in_order():
    assert validate_clip_keys(["factory001_worker001_00002", "factory001_worker001_00001",
                               "factory001_worker001_00002"]) == [
        "factory001_worker001_00002", "factory001_worker001_00001"]


@asset(partitions_def=clip_partitions)
def which_clip(context) -> None:
    clip = clip_of(context)
    context.add_output_metadata({"worker_path": clip.worker_path})


def test_bad_key_registered_behind_our_back_fails_at_materialization():
    inst = DagsterInstance.ephemeral()
    inst.add_dynamic_partitions(CLIPS, ["not-a-clip"])  # Dagster itself accepts anything
    res = materialize([which_clip], instance=inst, partition_key="not-a-clip", raise_on_error=False)
    assert not res.success
    msg = error_text(res, "which_clip")
    assert "'not-a-clip'" in msg and "factoryXXX_workerYYY_NNNNN" in msg
    # the reason is the step failure's own first line (what the run page shows first),
    # not the cause of a wrapped "Error occurred while executing op" stack trace
    failure = res.failure_data_for_node("which_clip")
    assert failure.error.cause is None
    assert "'not-a-clip'" in failure.error.message.splitlines()[0]
    assert failure.user_failure_data.description.startswith("partition key 'not-a-clip'")


def test_good_key_materializes():
    inst = DagsterInstance.ephemeral()
    add_clip_partitions(inst, ["factory003_worker004_00005"])
    res = materialize([which_clip], instance=inst, partition_key="factory003_worker004_00005")
    (mat,) = res.asset_materializations_for_node("which_clip")
    assert mat.metadata["worker_path"].value == "factory_003/workers/worker_004"
