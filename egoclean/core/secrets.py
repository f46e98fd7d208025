"""The Hugging Face token: read from HF_TOKEN or a `.env` file, and kept out of text.

`redact` is applied to every message EgoClean prints or records, as a second line of
defence behind never formatting the token in the first place.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Hugging Face user access tokens ("hf_" + 34 letters/digits) and bearer credentials:
# masked even when their value is not the configured one (a token pasted elsewhere).
_TOKEN_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
)


def _from_dotenv(path: Path) -> str | None:
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[7:].strip()
        for name in ("HF_TOKEN", "HF_KEY", "HUGGING_FACE_HUB_TOKEN"):
            if line.startswith(name + "="):
                return line.split("=", 1)[1].strip().strip("'\"") or None
    return None


def hf_token(dotenv: str | os.PathLike | None = ".env") -> str | None:
    """The token from the environment (HF_TOKEN), else from `.env`; None when unset."""
    tok = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if tok:
        return tok
    return _from_dotenv(Path(dotenv)) if dotenv else None


def redact(text: str, token: str | None = None) -> str:
    """Replace the known token values, and anything shaped like an HF token, with `***`."""
    text = str(text)
    for tok in {token, hf_token()}:
        if isinstance(tok, str) and len(tok) >= 4:
            text = text.replace(tok, "***")
    text = _TOKEN_PATTERNS[0].sub("***", text)
    return _TOKEN_PATTERNS[1].sub(lambda m: m.group(1) + "***", text)
