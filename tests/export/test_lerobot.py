"""LeRobot v3.0 statistics and paths as lerobot defines them (compute_stats.py, utils.py)."""

from __future__ import annotations

import numpy as np

from egoclean.export import lerobot


def test_paths_and_chunks_follow_the_format():
    assert lerobot.DATA_PATH.format(chunk_index=0, file_index=7) == "data/chunk-000/file-007.parquet"
    assert lerobot.VIDEO_PATH.format(video_key="k", chunk_index=1, file_index=2) == "videos/k/chunk-001/file-002.mp4"
    assert lerobot.chunk_file(1001) == (1, 1) and lerobot.part_of(1, 1) == 1001


def test_episode_stats_aggregate_to_the_stats_of_all_frames():
    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, size=n) for i, n in enumerate((50, 130, 7))]
    agg = lerobot.aggregate([lerobot.feature_stats(p) for p in parts])
    whole = np.concatenate(parts)
    np.testing.assert_allclose(agg["mean"], [whole.mean()])
    np.testing.assert_allclose(agg["std"], [whole.std()])
    assert agg["min"] == [whole.min()] and agg["max"] == [whole.max()] and agg["count"].tolist() == [len(whole)]
    assert set(agg) == set(lerobot.STAT_KEYS)


def test_image_stats_are_per_channel_in_unit_range():
    img = np.zeros((4, 3, 8, 8), dtype=np.uint8)
    img[:, 0] = 255
    img[:, 2, :4] = 51
    st = lerobot.feature_stats(img, image=True)
    assert st["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(st["mean"].ravel(), [1.0, 0.0, 0.1])
    np.testing.assert_allclose(st["max"].ravel(), [1.0, 0.0, 0.2])
    assert st["count"].tolist() == [4]


def test_sampling_and_downsampling_match_lerobot():
    assert lerobot.sample_indices(50) == list(range(50))
    assert len(lerobot.sample_indices(1000)) == 177  # estimate_num_samples' documented value
    assert lerobot.downsample(np.zeros((3, 1080, 1920))).shape == (3, 90, 160)
    assert lerobot.downsample(np.zeros((3, 96, 160))).shape == (3, 96, 160)


def test_validate_reports_a_missing_dataset(tmp_path):
    problems = lerobot.validate(tmp_path)
    assert len(problems) == 1 and "meta/info.json" in problems[0]
