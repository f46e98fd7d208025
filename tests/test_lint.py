"""The code passes ruff with the project's configuration ([tool.ruff] in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    # The venv's ruff sits next to its python; fall back to PATH.
    exe = Path(sys.executable).with_name("ruff")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: pip install -e '.[dev]'")
    return [found]


def test_ruff_check_passes():
    res = subprocess.run([*_ruff(), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_config_line_length_is_120():
    # ruff reports the resolved setting; a config that ruff did not pick up would show 88
    res = subprocess.run([*_ruff(), "check", "--show-settings", "egoclean/__init__.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert "line_length = 120" in res.stdout
