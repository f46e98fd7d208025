"""egoclean.core.layout: one named path per artifact of a clip, under any data root."""

import ast
from pathlib import Path

import pytest

from egoclean.core.ids import ClipId
from egoclean.core.layout import ClipLayout, clip_folder, intrinsics_beside, is_local, join, local_path

ROOT = Path(__file__).resolve().parents[2]
CLIP = ClipId.parse("factory001_worker002_00003")
ARTIFACTS = ("intrinsics", "rectified", "embeddings", "analysis", "segments", "diagnostics_plot", "detection_plot")


def test_every_artifact_has_a_named_path_in_the_clip_folder():
    lay = ClipLayout.under("data", CLIP)
    assert lay.dir == "data/factory_001/worker_002/factory001_worker002_00003"
    assert lay.intrinsics == f"{lay.dir}/factory001_worker002_00003_intrinsics.json"
    assert lay.rectified == f"{lay.dir}/factory001_worker002_00003_rectified.mp4"
    assert lay.embeddings == lay.analysis == f"{lay.dir}/factory001_worker002_00003"
    assert lay.segments == f"{lay.dir}/factory001_worker002_00003_segments.json"
    assert lay.diagnostics_plot.endswith("_diagnostics.png") and lay.detection_plot.endswith("_detection.png")
    assert lay.raw_dir == f"{lay.dir}/raw"
    assert lay.manifest("rectified_clip") == f"{lay.dir}/_manifests/rectified_clip.json"
    # embeddings and analysis are prefixes their types extend with distinct suffixes
    files = [getattr(lay, a) for a in ARTIFACTS if a not in ("embeddings", "analysis")]
    assert len(set(files)) == len(files), "two artifacts share a file"


@pytest.mark.parametrize("root", ["data", "/abs/data", "s3://bucket/egoclean", "s3://bucket/egoclean/",
                                  "file:///tmp/x", "memory://root"])
def test_one_change_of_root_moves_every_artifact(root):
    here, there = ClipLayout.under("data", CLIP), ClipLayout.under(root, CLIP)
    for a in ARTIFACTS:
        assert getattr(there, a) == join(root, clip_folder(CLIP), here.relative(getattr(here, a)))
        assert "//" not in getattr(there, a).split("://")[-1], getattr(there, a)
    assert there.relative(there.segments) == "factory001_worker002_00003_segments.json"


def test_relative_refuses_paths_outside_the_folder():
    with pytest.raises(ValueError, match="not inside"):
        ClipLayout.under("data", CLIP).relative("data/factory_001/other.json")


def test_roots_and_cli_naming():
    assert is_local("data") and is_local("/x") and is_local("file:///x") and not is_local("s3://b/p")
    assert local_path("file:///tmp/x") == Path("/tmp/x")
    assert intrinsics_beside("out/clip.mp4") == Path("out/clip_intrinsics.json")


# The file names of a clip's artifacts, which only egoclean/core/layout.py may spell.
NAMES = ("_intrinsics.json", "_rectified.mp4", "_segments.json", "_diagnostics.png", "_detection.png", "_manifests",
         "_episodes.json")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_no_path_of_an_artifact_is_built_by_hand_elsewhere():
    sources = sorted((ROOT / "egoclean").rglob("*.py")) + sorted((ROOT / "egoclean_assets").rglob("*.py"))
    bad = []
    for p in sources:
        if p.name == "layout.py":
            continue
        # docstrings may describe the layout; code may not spell it
        doc_lines = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc and node.body and isinstance(node.body[0], ast.Expr):
                    doc_lines.add(node.body[0].lineno)
        for line, s in _string_constants(p):
            if line not in doc_lines and any(n in s for n in NAMES):
                bad.append(f"{p.relative_to(ROOT)}:{line}: {s!r}")
    assert not bad, "artifact file names spelled outside egoclean/core/layout.py:\n" + "\n".join(bad)
