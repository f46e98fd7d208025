"""Clip ids (`factoryXXX_workerYYY_NNNNN`) and the dataset paths they map to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from egoclean.core.errors import ClipIdError

# Exactly ASCII: `[0-9]` (a str pattern's `\d` also takes fullwidth and other Unicode
# digits, which int() reads as the same numbers) and matched with fullmatch (`$` also
# matches before a trailing newline). Either would let two strings name one clip.
CLIP_ID_RE = re.compile(r"factory([0-9]{3})_worker([0-9]{3})_([0-9]{5})")


@dataclass(frozen=True, order=True)
class ClipId:
    """One Egocentric-10K clip: factory number, worker number, video index."""

    factory: int
    worker: int
    index: int

    @classmethod
    def parse(cls, text: str) -> "ClipId":
        """Parse `factory001_worker001_00001`; anything else raises ClipIdError."""
        m = CLIP_ID_RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            raise ClipIdError(
                f"invalid clip id {text!r}: expected factoryXXX_workerYYY_NNNNN "
                "(3-digit factory, 3-digit worker, 5-digit index), e.g. factory001_worker001_00001"
            )
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @property
    def key(self) -> str:
        return f"factory{self.factory:03d}_worker{self.worker:03d}_{self.index:05d}"

    @property
    def worker_key(self) -> str:
        """`factory001_worker001`: the prefix of the worker's shard and member names."""
        return f"factory{self.factory:03d}_worker{self.worker:03d}"

    @property
    def factory_dir(self) -> str:
        return f"factory_{self.factory:03d}"

    @property
    def worker_dir(self) -> str:
        return f"worker_{self.worker:03d}"

    @property
    def worker_path(self) -> str:
        """Dataset-relative folder of the worker: `factory_001/workers/worker_001`."""
        return f"{self.factory_dir}/workers/{self.worker_dir}"

    def __str__(self) -> str:
        return self.key


def is_clip_id(text: str) -> bool:
    """True when `text` is a well-formed clip id."""
    return isinstance(text, str) and CLIP_ID_RE.fullmatch(text) is not None
