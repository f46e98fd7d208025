"""Export clean work spans from the store as a LeRobot v3.0 dataset (the public names of the package).

- `selection`: which clips, and `ClipInput` (what the export needs about one clip, local or remote).
- `episodes`: the episode plan of one clip (pure planning).
- `directory`: the dataset directory's files; open, recover and swap in a new version.
- `writer`: `export_dataset` / `export_from_store` (append, replace per clip, staged, validated, swapped in).
- `card`: the dataset card and how to load the dataset. `verify`: sampled frames against their source clips.
- `lerobot`: the LeRobot v3.0 format and its validator.
"""

from egoclean.export.card import SOURCE_DATASET, SOURCE_LICENCE, dataset_card, loading_code
from egoclean.export.directory import (
    CARD_PATH,
    FORMAT_VERSION,
    META_PATH,
    PREVIOUS_SUFFIX,
    SCORE_KEY,
    VIDEO_KEY,
    Existing,
    open_existing,
)
from egoclean.export.episodes import plan_table
from egoclean.export.selection import ClipInput, clip_input_from_files, select_clips
from egoclean.export.verify import verify_frames
from egoclean.export.writer import (
    DEFAULT_REENCODE_CRF,
    DEFAULT_REENCODE_PRESET,
    ExportOptions,
    ExportReport,
    export_dataset,
    export_from_store,
    task_for,
)

__all__ = [
    "CARD_PATH", "DEFAULT_REENCODE_CRF", "DEFAULT_REENCODE_PRESET", "FORMAT_VERSION", "META_PATH", "PREVIOUS_SUFFIX",
    "SCORE_KEY", "SOURCE_DATASET", "SOURCE_LICENCE", "VIDEO_KEY", "ClipInput", "Existing", "ExportOptions",
    "ExportReport", "clip_input_from_files", "dataset_card", "export_dataset", "export_from_store", "loading_code",
    "open_existing", "plan_table", "select_clips", "task_for", "verify_frames",
]
