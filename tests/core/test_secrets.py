"""The HF token: where it is read from, and that redact keeps it out of text."""

from __future__ import annotations

import pytest

from egoclean.core.secrets import hf_token, redact


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_environment_wins_over_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("HF_TOKEN=from_dotenv_123\n")
    assert hf_token() == "from_dotenv_123"
    monkeypatch.setenv("HF_TOKEN", "from_env_456")
    assert hf_token() == "from_env_456"


@pytest.mark.parametrize(
    "line", ["HF_TOKEN=abc123", "export HF_TOKEN='abc123'", 'HF_TOKEN="abc123"', "HUGGING_FACE_HUB_TOKEN=abc123"]
)
def test_dotenv_forms(tmp_path, line):
    (tmp_path / ".env").write_text(f"# comment\nOTHER=1\n{line}\n")
    assert hf_token() == "abc123"


def test_no_token_anywhere(tmp_path):
    assert hf_token() is None
    (tmp_path / ".env").write_text("HF_TOKEN=\n")
    assert hf_token() is None
    assert hf_token(dotenv=None) is None


def test_redact_known_and_token_shaped_values(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "s3cr3t-value")
    assert redact("a s3cr3t-value b") == "a *** b"
    assert redact("explicit tok9", token="tok9") == "explicit ***"
    pasted = "hf_" + "A1b2C3d4" * 4 + "zz"
    assert pasted not in redact(f"error near {pasted}!")
    assert redact("Authorization: Bearer abc.DEF-123_456") == "Authorization: Bearer ***"
    assert redact("nothing secret here") == "nothing secret here"
