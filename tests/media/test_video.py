"""egoclean.media.video's hardware choice: NVDEC/NVENC when they open, the CPU codecs otherwise."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from egoclean.media import video
from egoclean.cli import main
from egoclean.core.errors import InvalidInputError
from egoclean.media.video import HardwareCodecError

W, H, N, FPS = 64, 48, 8, 25


def _write(path, codec: str):
    rng = np.random.default_rng(0)
    with video.VideoWriter(path, FPS, W, H, codec=codec, crf=20, preset="ultrafast", hw="cpu") as vw:
        for i in range(N):
            frame = np.full((H, W, 3), 20 * i, np.uint8)
            frame[8:24, 8 + 4 * i:24 + 4 * i] = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            vw.write(frame)
    return path


@pytest.fixture(scope="module", params=["libx265", "libx264"])
def clip(request, tmp_path_factory):
    return _write(tmp_path_factory.mktemp("hw") / f"{request.param}.mp4", request.param)


def test_auto_gives_the_same_frames_as_cpu(clip, monkeypatch):
    monkeypatch.delenv(video.HWACCEL_ENV, raising=False)
    codec = video.probe(clip).codec
    cuvid = video.NVDEC[codec]
    auto = video.decoder_for(codec)
    # Where NVDEC opens, auto uses it; elsewhere (this CPU machine) it falls back.
    assert auto == (cuvid if video.hw_available(cuvid) else codec)
    assert video.decoder_for(codec, "cpu") == codec
    for fmt in ("yuv420p", "bgr24"):
        cpu = list(video.iter_frames(clip, fmt=fmt, hw="cpu"))
        got = list(video.iter_frames(clip, fmt=fmt))  # the default: auto
        assert len(cpu) == len(got) == N
        # H.264/H.265 decoding is bit-exact by the standards, on NVDEC too.
        assert all(np.array_equal(a, b) for a, b in zip(cpu, got))


def test_the_probe_runs_once_per_codec(monkeypatch):
    monkeypatch.setattr(video, "_HW_PROBED", {})
    calls = []
    real = av.CodecContext.create

    def counting(name, mode=None):
        calls.append(name)
        return real(name, mode)

    monkeypatch.setattr(av.CodecContext, "create", counting)
    first = [video.decoder_for("hevc", "auto"), video.encoder_for("libx264", "auto")]
    again = [video.decoder_for("hevc", "auto"), video.encoder_for("libx264", "auto")]
    assert first == again and calls == ["hevc_cuvid", "h264_nvenc"]


def test_auto_writer_falls_back_to_libx264(tmp_path, monkeypatch):
    monkeypatch.setenv(video.HWACCEL_ENV, "auto")
    out = tmp_path / "w.mp4"
    with video.VideoWriter(out, FPS, W, H, crf=23, preset="ultrafast",
                           options={"x264-params": "keyint=4"}) as vw:
        for i in range(N):
            vw.write(np.full((H, W, 3), 10 * i, np.uint8))
    assert vw.codec == ("h264_nvenc" if video.hw_available("h264_nvenc", "w") else "libx264")
    info = video.probe(out)
    assert info.codec == "h264" and info.n_frames == N


def test_nvidia_without_the_codec_is_a_clear_error(clip, tmp_path, monkeypatch):
    codec = video.probe(clip).codec
    cuvid = video.NVDEC[codec]
    if video.hw_available(cuvid) and video.hw_available("h264_nvenc", "w"):
        pytest.skip("this node has NVDEC/NVENC")
    monkeypatch.setenv(video.HWACCEL_ENV, "nvidia")
    with pytest.raises(HardwareCodecError) as e:
        next(video.iter_frames(clip))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and cuvid in msg and "EGOCLEAN_HWACCEL=nvidia" in msg
    with pytest.raises(HardwareCodecError, match="h264_nvenc"):
        video.VideoWriter(tmp_path / "n.mp4", FPS, W, H)
    assert not (tmp_path / "n.mp4").exists()
    with pytest.raises(HardwareCodecError, match="mpeg4"):
        video.decoder_for("mpeg4")


def test_bad_hwaccel_value_is_one_line_naming_the_variable(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(video.HWACCEL_ENV, "cuda-please")
    with pytest.raises(InvalidInputError) as e:
        next(video.iter_frames(clip))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "EGOCLEAN_HWACCEL" in msg and "cuda-please" in msg
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"model": "fisheye", "image_width": W, "image_height": H, "fx": 40.0, "fy": 40.0,
                                "cx": W / 2, "cy": H / 2, "k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0}))
    rc = main(["rectify", str(clip), "--intrinsics", str(card), "-o", str(tmp_path / "r.mp4")])
    err = capsys.readouterr().err
    assert rc == 2 and "EGOCLEAN_HWACCEL" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r.mp4").exists()


def test_rectify_records_its_codecs(clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(video.HWACCEL_ENV, "cpu")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"model": "fisheye", "image_width": W, "image_height": H, "fx": 40.0, "fy": 40.0,
                                "cx": W / 2, "cy": H / 2, "k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0}))
    rc = main(["rectify", str(clip), "--intrinsics", str(card), "-o", str(tmp_path / "r.mp4"),
               "--preset", "ultrafast"])
    printed = json.loads(capsys.readouterr().out)
    assert rc == 0 and printed["decoder"] == video.probe(clip).codec and printed["encoder"] == "libx264"
