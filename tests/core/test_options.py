"""egoclean.core.options and the CLI's numeric options: in range, or one line and exit 2."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egoclean.cli import build_parser

# (command line before the option, option, low, high, whole number?)
OPTIONS = [
    (["synth", "out"], "--fps", 1, 240, False),
    (["synth", "out"], "--duration", 0, 86400, False),
    (["synth", "out"], "--clips", 1, 99999, True),
    (["synth", "out"], "--width", 16, 7680, True),
    (["rectify", "in.mp4", "--intrinsics", "i.json", "-o", "o.mp4"], "--balance", 0, 1, False),
    (["rectify", "in.mp4", "--intrinsics", "i.json", "-o", "o.mp4"], "--crf", 0, 51, False),
    (["embed", "in.mp4", "-o", "p"], "--batch", 1, 1024, True),
    (["detect", "p"], "--min-separation", 0, 1e6, False),
    (["sql", "SELECT 1"], "--timeout", 0, 86400, False),
    (["sql", "SELECT 1"], "--max-rows", 0, 10**9, True),
]
IDS = [o[1] for o in OPTIONS]


def parse(argv, capsys):
    """(namespace, None) or (None, stderr) for an argument list."""
    try:
        return build_parser().parse_args(argv), None
    except SystemExit as e:
        assert e.code == 2
        return None, capsys.readouterr().err


@pytest.mark.parametrize("head, opt, lo, hi, whole", OPTIONS, ids=IDS)
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "-5", "1e999", "9" * 5000, "", "ten", "1_000", "５"])
def test_nonsense_numbers_are_refused_in_one_line(head, opt, lo, hi, whole, bad, capsys):
    ns, err = parse([*head, opt, bad], capsys)
    if ns is not None:  # a few of these are valid somewhere, e.g. "-5" never, "1_000"/"５" never
        pytest.fail(f"{opt} {bad[:20]!r} accepted as {getattr(ns, opt[2:].replace('-', '_'))!r}")
    assert len(err.strip().splitlines()) == 1 and opt in err and "Traceback" not in err, err
    assert len(err) < 300  # a 5000-digit value is not echoed in full


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_text_gives_a_value_in_range_or_a_one_line_refusal(data):
    head, opt, lo, hi, whole = data.draw(st.sampled_from(OPTIONS))
    text = data.draw(st.one_of(
        st.text(max_size=30),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(min_value=-10**30, max_value=10**30).map(str),
    ))
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = build_parser().parse_args([*head, f"{opt}={text}"])
    except SystemExit as e:
        assert e.code == 2
        msg = err.getvalue()
        assert len(msg.strip().splitlines()) == 1 and "error" in msg, msg
        return
    v = getattr(ns, opt[2:].replace("-", "_"))
    assert isinstance(v, int if whole else float) and math.isfinite(v) and lo <= v <= hi


@pytest.mark.parametrize("bad", ["lots", "0", "-1", "4.5", "nan", "9" * 5000, "1e3", "４"])
def test_bad_numeric_environment_values_are_one_line_errors(bad):
    from egoclean.core.errors import InvalidInputError
    from egoclean_assets.resources import build_resources

    with pytest.raises(InvalidInputError) as e:
        build_resources({"EGOCLEAN_BATCH": bad})
    msg = str(e.value)
    assert "EGOCLEAN_BATCH" in msg and "\n" not in msg and len(msg) < 300, msg
    assert build_resources({"EGOCLEAN_BATCH": " 8 "})["encoder"].batch_size == 8
    assert build_resources({"EGOCLEAN_BATCH": ""})["encoder"].batch_size == 4
