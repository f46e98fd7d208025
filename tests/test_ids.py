import pytest

from egoclean.errors import ClipIdError
from egoclean.ids import ClipId, is_clip_id


def test_roundtrip_and_paths():
    c = ClipId.parse("factory001_worker002_00003")
    assert (c.factory, c.worker, c.index) == (1, 2, 3)
    assert c.key == "factory001_worker002_00003"
    assert c.worker_path == "factory_001/workers/worker_002"
    assert c.worker_key == "factory001_worker002"


@pytest.mark.parametrize(
    "bad", ["", "factory1_worker001_00001", "factory001_worker001_0001", "factory001-worker001-00001",
            "../factory001_worker001_00001", "factory001_worker001_00001.mp4", "FACTORY001_worker001_00001"],
)
def test_bad_ids_are_refused_naming_the_key(bad):
    assert not is_clip_id(bad)
    with pytest.raises(ClipIdError, match="invalid clip id"):
        ClipId.parse(bad)
