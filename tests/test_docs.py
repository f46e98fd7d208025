"""Every repository file the docs and the code name by path exists (and every test they cite by node id).

README.md, docs/*.md, and the comments, docstrings and strings of the code, the deploy
files and pyproject.toml name files such as `deploy/ray.env` or
`tests/faults/test_network.py::test_5xx_then_success_through_the_graph`; a file renamed or
moved without updating them (the README once sent readers to a `deploy/cluster.env` that
did not exist) fails here.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Paths are recognised by their first folder (one of the repository's own) and a file suffix,
# so names of generated files elsewhere (data/..., a temp folder) are not taken for them.
FOLDERS = ("egoclean", "egoclean_assets", "tests", "benchmarks", "deploy", "docs", "scripts")
SUFFIXES = ("py", "md", "yaml", "yml", "env", "csv", "sh", "toml", "json", "txt")
PATH_RE = re.compile(r"(?<![\w./-])((?:%s)/[A-Za-z0-9_./-]*\.(?:%s))(?![\w-])(::[A-Za-z0-9_]+)?"
                     % ("|".join(FOLDERS), "|".join(SUFFIXES)))


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "pyproject.toml"]
    code = [p for folder in FOLDERS if folder != "docs" for p in sorted((ROOT / folder).rglob("*"))
            if p.is_file() and p.suffix.lstrip(".") in SUFFIXES and "__pycache__" not in p.parts
            and p != Path(__file__).resolve()]  # this file's examples name missing files on purpose
    return docs + code


def _named(text: str) -> list[tuple[int, str, str]]:
    """(line, path, test name or "") of each repository path in `text`; placeholders (`*`, `<x>`, `{x}`) left out."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        for m in PATH_RE.finditer(line):
            path = m.group(1)
            if not any(c in path for c in "*<{"):
                out.append((i, path, (m.group(2) or "")[2:]))
    return out


def test_the_pattern_finds_paths_and_node_ids_but_not_other_names():
    text = ("see `deploy/ray.env` and tests/faults/test_network.py::test_x, egoclean/core/retry.py.\n"
            "not: data/egoclean.duckdb, egoclean.core.retry, egoclean/clip_id, tests/<group>/test_*.py, "
            "my_tests/x.py")
    assert _named(text) == [(1, "deploy/ray.env", ""), (1, "tests/faults/test_network.py", "test_x"),
                            (1, "egoclean/core/retry.py", "")]


def test_every_named_file_exists():
    docs = _documents()
    assert len(docs) > 100 and ROOT / "README.md" in docs
    missing, checked = [], 0
    for doc in docs:
        for line, path, test in _named(doc.read_text(encoding="utf-8", errors="replace")):
            checked += 1
            where = f"{doc.relative_to(ROOT)}:{line}"
            target = ROOT / path
            if not target.exists():
                missing.append(f"{where}: {path} does not exist")
            elif test and not re.search(rf"^\s*(async\s+)?(def|class)\s+{test}\b", target.read_text(), re.M):
                missing.append(f"{where}: {path} has no {test}")
    assert checked > 200, f"only {checked} paths found: is the pattern still right?"
    assert not missing, "\n".join(missing)
