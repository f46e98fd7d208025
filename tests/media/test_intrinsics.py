"""Tests for egoclean.media.intrinsics: parsing/validation, scaling, the rectified camera."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from egoclean.core.errors import IntrinsicsError
from egoclean.media.intrinsics import FisheyeIntrinsics, RectifiedIntrinsics, rectified_intrinsics

CARD = {"model": "fisheye", "image_width": 1920, "image_height": 1080, "fx": 1030.59, "fy": 1032.82,
        "cx": 966.69, "cy": 539.69, "k1": -0.1166, "k2": -0.0236, "k3": 0.0694, "k4": -0.0463}


def write(tmp_path, obj, name="intrinsics.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_load_valid_file(tmp_path):
    p = write(tmp_path, CARD)
    fe = FisheyeIntrinsics.load(p)
    assert fe.size == (1920, 1080)
    np.testing.assert_allclose(fe.K, [[1030.59, 0, 966.69], [0, 1032.82, 539.69], [0, 0, 1]])
    np.testing.assert_allclose(fe.D, [-0.1166, -0.0236, 0.0694, -0.0463])
    assert fe.to_dict() == CARD
    assert isinstance(fe.image_width, int)


def test_card_file_matches_spec(shared_data):
    fe = FisheyeIntrinsics.load(shared_data / "egocentric10k" / "intrinsics_card_1920x1080.json")
    assert fe.to_dict() == CARD


def test_missing_file(tmp_path):
    with pytest.raises(IntrinsicsError, match=r"nope\.json.*not found"):
        FisheyeIntrinsics.load(tmp_path / "nope.json")


def test_bad_json(tmp_path):
    p = write(tmp_path, '{"model": "fisheye", "fx": ')
    with pytest.raises(IntrinsicsError, match=r"intrinsics\.json.*not valid JSON"):
        FisheyeIntrinsics.load(p)


def test_not_an_object(tmp_path):
    with pytest.raises(IntrinsicsError, match="expected a JSON object"):
        FisheyeIntrinsics.load(write(tmp_path, [1, 2, 3]))


@pytest.mark.parametrize(
    "field", ["model", "image_width", "image_height", "fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"]
)
def test_missing_field_named(tmp_path, field):
    d = {k: v for k, v in CARD.items() if k != field}
    p = write(tmp_path, d)
    with pytest.raises(IntrinsicsError, match=rf"intrinsics\.json.*'{field}' is missing"):
        FisheyeIntrinsics.load(p)


@pytest.mark.parametrize(
    "field,value,problem",
    [
        ("fx", "1030", "must be a number"),
        ("k2", None, "must be a number"),
        ("k1", [0.1], "must be a number"),
        ("fy", True, "must be a number"),
        ("image_width", False, "must be a number"),
        ("cx", float("nan"), "must be finite"),
        ("k4", float("inf"), "must be finite"),
        ("fy", float("-inf"), "must be finite"),
        ("image_width", 1920.5, "must be an integer"),
        ("image_height", 0, "must be positive"),
        ("image_width", -1920, "must be positive"),
        ("fx", 0.0, "must be positive"),
        ("fy", -5.0, "must be positive"),
        ("cx", 2500.0, "outside the image width"),
        ("cx", -1.0, "outside the image width"),
        ("cy", 1080.5, "outside the image height"),
    ],
)
def test_bad_values_refused(tmp_path, field, value, problem):
    d = dict(CARD, **{field: value})
    # json.dumps writes NaN / Infinity, which json.loads (and the dataset's readers) accept
    p = write(tmp_path, d)
    with pytest.raises(IntrinsicsError, match=problem) as exc:
        FisheyeIntrinsics.load(p)
    assert str(p) in str(exc.value) and field in str(exc.value)


@pytest.mark.parametrize("model", ["pinhole", "Fisheye", None, 1])
def test_model_must_be_fisheye(model):
    with pytest.raises(IntrinsicsError, match="field 'model'.*only 'fisheye'"):
        FisheyeIntrinsics.from_dict(dict(CARD, model=model), source="w1/intrinsics.json")


def test_integral_float_size_accepted():
    fe = FisheyeIntrinsics.from_dict(dict(CARD, image_width=1920.0))
    assert fe.image_width == 1920 and isinstance(fe.image_width, int)


def test_scaled_to_other_resolution():
    fe = FisheyeIntrinsics.from_dict(CARD)
    half = fe.scaled_to(960, 540)
    assert (half.image_width, half.image_height) == (960, 540)
    assert half.fx == pytest.approx(CARD["fx"] / 2) and half.cx == pytest.approx(CARD["cx"] / 2)
    assert half.fy == pytest.approx(CARD["fy"] / 2) and half.cy == pytest.approx(CARD["cy"] / 2)
    np.testing.assert_array_equal(half.D, fe.D)
    # a resize that rounded a side to whole (even) pixels: x by the width ratio, y by the height's
    small = fe.scaled_to(456, 256)  # 1920x1080 x 0.2370 = 455.1 x 256.0
    assert small.fx == pytest.approx(CARD["fx"] * 456 / 1920) and small.fy == pytest.approx(CARD["fy"] * 256 / 1080)
    assert fe.scaled_to(1920, 1080) is fe
    # scaling commutes with projecting: a 3D point lands at the scaled pixel
    pt = np.array([[[0.3, -0.2, 1.0]]])
    full, _ = cv2.fisheye.projectPoints(pt, np.zeros(3), np.zeros(3), fe.K, fe.D)
    small, _ = cv2.fisheye.projectPoints(pt, np.zeros(3), np.zeros(3), half.K, half.D)
    np.testing.assert_allclose(small, full / 2, atol=1e-9)


@pytest.mark.parametrize("size", [(1280, 1080), (1440, 1080), (1080, 1080), (1920, 1078), (458, 256)])
def test_scaling_to_another_aspect_ratio_is_refused(size):
    """Only a uniform scale (up to a pixel of rounding per side) is the same camera: another
    aspect ratio is a crop or a stretch, and scaling fx and fy apart would bend the image."""
    fe = FisheyeIntrinsics.from_dict(CARD, source="w1/intrinsics.json")
    with pytest.raises(IntrinsicsError, match=rf"calibrated at 1920x1080, cannot describe a {size[0]}x{size[1]} clip"
                       r".*aspect ratio"):
        fe.scaled_to(*size)


def test_theta_max_of_card_is_the_distortion_peak():
    fe = FisheyeIntrinsics.from_dict(CARD)
    t = fe.theta_max()
    assert t < math.pi / 2
    # the peak of r_d in pixels is ~979 px (dataset card), and it is a maximum
    assert fe.distort_radius(t) * fe.fx == pytest.approx(979, abs=2)
    assert fe.distort_radius(t * 0.99) < fe.distort_radius(t) > fe.distort_radius(t * 1.01)
    # corners are farther than the peak: they cannot be inverted
    assert math.hypot(960, 540) > fe.distort_radius(t) * fe.fx
    # a curve without a peak before pi/2
    mono = FisheyeIntrinsics.from_dict(dict(CARD, k1=0.0, k2=0.0, k3=0.0, k4=0.0))
    assert mono.theta_max() == pytest.approx(math.pi / 2)


@pytest.mark.parametrize("balance", [0.0, 0.5, 1.0])
def test_rectified_intrinsics_card(balance):
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 1920, 1080, balance=balance)
    assert isinstance(rect, RectifiedIntrinsics)
    assert rect.K_new.shape == (3, 3) and np.all(np.isfinite(rect.K_new))
    assert 300 < rect.K_new[0, 0] < 1100 and 0 < rect.K_new[0, 2] < 1920
    assert (rect.out_width, rect.out_height) == (1920, 1080)
    # balance 0 crops to (almost) only valid pixels; balance 1 keeps the full view, so
    # part of the frame (beyond the distortion peak) is invalid
    if balance == 0.0:
        assert rect.valid_fraction > 0.99
    if balance == 1.0:
        assert 0.5 < rect.valid_fraction < 0.95


def test_rectified_intrinsics_scales_to_clip_size():
    fe = FisheyeIntrinsics.from_dict(CARD)
    full = rectified_intrinsics(fe, 1920, 1080)
    small = rectified_intrinsics(fe, 480, 270)
    assert small.fisheye.fx == pytest.approx(CARD["fx"] / 4)
    assert small.original is fe
    np.testing.assert_allclose(small.K_new[:2], full.K_new[:2] / 4, rtol=2e-3)


@pytest.mark.parametrize(
    "overrides,problem",
    [
        # tiny focal length: frame edges far beyond pi/2 -> OpenCV returns f = 0
        ({"fx": 100.0, "fy": 100.0, "k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0}, "focal length"),
        # strong barrel: the edges lie past the invertible range -> NaN camera matrix
        ({"fx": 300.0, "fy": 300.0, "k1": -0.3, "k2": 0.0, "k3": 0.0, "k4": 0.0}, "not finite"),
        # the card's distortion with a wide-angle focal length (a real calibration
        # mistaken for another lens) -> NaN as well
        ({"fx": 400.0, "fy": 400.0}, "not finite"),
    ],
)
def test_degenerate_rectification_refused(overrides, problem):
    fe = FisheyeIntrinsics.from_dict(dict(CARD, **overrides), source="f1/w1/intrinsics.json")
    with pytest.raises(IntrinsicsError, match=problem) as exc:
        rectified_intrinsics(fe, 1920, 1080)
    assert "f1/w1/intrinsics.json" in str(exc.value) and "degenerate" in str(exc.value)


def test_nearly_empty_valid_region_refused():
    # a rectified camera whose view lies almost entirely beyond the distortion peak
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 1920, 1080, balance=1.0)
    k = rect.K_new.copy()
    k[0, 0] = k[1, 1] = 60.0  # 1/8 of balance 1's focal: the view is mostly past the peak
    bad = RectifiedIntrinsics(rect.fisheye, k, 1920, 1080)
    _, _, valid = bad.float_maps()
    assert valid.mean() < 0.05
    from egoclean.media import intrinsics as mod

    with pytest.raises(IntrinsicsError, match="valid source"):
        mod._check_valid_fraction(bad, "f1/w1/intrinsics.json")


def test_bad_balance_refused():
    fe = FisheyeIntrinsics.from_dict(CARD)
    for b in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(IntrinsicsError, match="balance"):
            rectified_intrinsics(fe, 1920, 1080, balance=b)


def test_float_maps_balance1_outside_source_invalid():
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 1920, 1080, balance=1.0)
    mx, my, valid = rect.float_maps()
    assert mx.shape == my.shape == valid.shape == (1080, 1920)
    ox, oy = cv2.fisheye.initUndistortRectifyMap(fe.K, fe.D, np.eye(3), rect.K_new, (1920, 1080), cv2.CV_32FC1)
    inside = (ox >= 0) & (ox <= 1919) & (oy >= 0) & (oy <= 1079)
    # at balance 1 every invalid pixel is one whose source lies outside the fisheye frame
    np.testing.assert_array_equal(valid, inside)
    assert 0.15 < (~valid).mean() < 0.35
    assert np.all(mx[~valid] < -1) and np.all(my[~valid] < -1)
    np.testing.assert_array_equal(mx[valid], ox[valid])


def test_float_maps_mark_beyond_peak_invalid():
    fe = FisheyeIntrinsics.from_dict(CARD)
    # a view 1.25x wider than balance 1 reaches rays beyond the distortion peak
    rect = rectified_intrinsics(fe, 1920, 1080, balance=1.0, fov_scale=1.25)
    assert rect.fov_scale == 1.25 and rect.to_dict()["fov_scale"] == 1.25
    mx, my, valid = rect.float_maps()
    kn = rect.K_new
    x = (np.arange(1920) - kn[0, 2]) / kn[0, 0]
    y = (np.arange(1080) - kn[1, 2]) / kn[1, 1]
    theta = np.arctan(np.hypot(x[None, :], y[:, None]))
    beyond = theta > fe.theta_max()
    ox, oy = cv2.fisheye.initUndistortRectifyMap(fe.K, fe.D, np.eye(3), kn, (1920, 1080), cv2.CV_32FC1)
    folded = beyond & (ox >= 0) & (ox <= 1919) & (oy >= 0) & (oy <= 1079)
    # OpenCV's own map folds these rays back inside the image: garbage sources ...
    assert folded.mean() > 0.03
    # ... ours marks every ray beyond the peak invalid and sends it outside the source
    assert not valid[beyond].any()
    assert np.all(mx[beyond] < -1) and np.all(my[beyond] < -1)
    assert theta[valid].max() <= fe.theta_max()
    assert mx[valid].min() >= 0 and mx[valid].max() <= 1919 and my[valid].min() >= 0 and my[valid].max() <= 1079
    assert valid[540, 960] and mx[540, 960] == ox[540, 960]


def test_to_dict_and_save(tmp_path):
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 960, 540, balance=0.25)
    out = rect.save(tmp_path / "sub" / "clip_intrinsics.json")
    d = json.loads(out.read_text())
    assert d["model"] == "pinhole" and (d["image_width"], d["image_height"]) == (960, 540)
    assert d["balance"] == 0.25
    np.testing.assert_allclose(d["K"], rect.K_new)
    assert (d["fx"], d["cx"]) == (rect.K_new[0, 0], rect.K_new[0, 2])
    assert d["fisheye_source"] == CARD
    assert d["fisheye_scaled"]["fx"] == pytest.approx(CARD["fx"] / 2)
    assert [p.name for p in out.parent.iterdir()] == ["clip_intrinsics.json"]  # no temp left


def test_rectified_load_gives_back_what_was_saved(tmp_path):
    # The rectified_clip asset reads the camera the intrinsics asset saved instead of
    # recomputing it, so nothing may be lost on the way, fov_scale included.
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 960, 540, balance=0.25, fov_scale=1.4)
    back = RectifiedIntrinsics.load(rect.save(tmp_path / "clip_intrinsics.json"))
    assert back.fov_scale == 1.4 and back.balance == 0.25
    assert (back.width, back.height) == (960, 540) and back.original == fe and back.fisheye == rect.fisheye
    np.testing.assert_array_equal(back.K_new, rect.K_new)
    assert back.valid_fraction == pytest.approx(rect.valid_fraction, abs=1e-6)
    assert back.to_dict() == rect.to_dict()
    for a, b in zip(back.float_maps(), rect.float_maps()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("broken, match", [
    ("{", "not valid JSON"),
    ("[]", "expected a JSON object"),
    (json.dumps({"K": [[1, 0, 0]], "input_width": 960, "input_height": 540, "fisheye_source": CARD}), "3x3"),
    (json.dumps({"input_width": 960, "input_height": 540, "fisheye_source": CARD}), "K missing"),
])
def test_rectified_load_refuses_damaged_files(tmp_path, broken, match):
    p = write(tmp_path, broken, "clip_intrinsics.json")
    with pytest.raises(IntrinsicsError, match=rf"clip_intrinsics\.json.*{match}"):
        RectifiedIntrinsics.load(p)


def test_odd_size_output_is_trimmed_even():
    fe = FisheyeIntrinsics.from_dict(CARD)
    rect = rectified_intrinsics(fe, 481, 271)
    assert (rect.width, rect.height) == (481, 271)
    assert (rect.out_width, rect.out_height) == (480, 270)
    assert rect.to_dict()["image_width"] == 480
    assert rect.float_maps()[0].shape == (270, 480)
