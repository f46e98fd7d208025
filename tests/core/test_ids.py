import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egoclean.core.errors import ClipIdError
from egoclean.core.ids import ClipId, is_clip_id


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


@pytest.mark.parametrize(
    "bad",
    [
        "factory001_worker001_00001\n",  # `$` also matches before a trailing newline
        "factory００1_worker001_00001",  # fullwidth digits are `\d` in a str pattern
        "factory001_worker001_٠٠٠٠١",  # Arabic-Indic digits
        "factory001_worker001_0000১",  # Bengali digit one
        " factory001_worker001_00001",
        "factory001_worker001_00001 ",
    ],
)
def test_ids_are_exactly_ascii_and_nothing_else(bad):
    assert not is_clip_id(bad)
    with pytest.raises(ClipIdError, match="invalid clip id"):
        ClipId.parse(bad)


def test_partition_keys_that_alias_a_clip_are_refused():
    from egoclean_assets.partitions import validate_clip_keys

    with pytest.raises(ClipIdError, match="refusing partition key"):
        validate_clip_keys(["factory001_worker001_00001", "factory001_worker001_00001\n"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
       | st.from_regex(r"factory\d{3}_worker\d{3}_\d{5}\s?", fullmatch=True))
def test_an_accepted_id_is_its_own_canonical_key(text):
    # Property: whatever the text, parse either refuses it or returns the id whose key
    # is exactly that text (so two different strings never name one clip).
    try:
        clip = ClipId.parse(text)
    except ClipIdError as e:
        assert not is_clip_id(text) and repr(text) in str(e)
        return
    assert clip.key == text and is_clip_id(text) and text.isascii()
