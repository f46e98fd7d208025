"""The two rules that keep the layers clean.

1. `egoclean` (the library) never imports dagster or the Dagster wiring: it must work,
   and be tested, without either.
2. Loading the Dagster definitions imports none of the heavy modules (torch, cv2, av,
   duckdb, matplotlib): `dagster dev`, `dg list defs` and every run worker load the
   definitions, and the heavy modules are imported only inside the asset bodies that
   use them (function-local imports, each with a comment saying why).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "egoclean").rglob("*.py"))
WIRING = sorted((ROOT / "egoclean_assets").rglob("*.py"))
HEAVY = ("torch", "cv2", "av", "duckdb", "matplotlib")
FORBIDDEN_IN_LIBRARY = ("dagster", "dagster_postgres", "dagster_webserver", "dagster_ray", "egoclean_assets")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in the file, at any depth (function-local too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


# The library had 38 modules when it was sorted into sub-packages; the run-time check
# must never cover fewer (a selection that silently drops modules would pass vacuously).
MIN_LIBRARY_MODULES = 38


def _module_name(path: Path) -> str:
    """egoclean/media/video.py -> egoclean.media.video; a package's __init__.py -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _root(module: str) -> str:
    return module.split(".")[0]


def test_library_never_imports_dagster_statically():
    bad = [f"{p.relative_to(ROOT)}:{line}: import {m}" for p in LIBRARY for line, m in _imported_modules(p)
           if _root(m) in FORBIDDEN_IN_LIBRARY]
    assert not bad, "egoclean must not import Dagster or its wiring:\n" + "\n".join(bad)


def test_library_never_imports_dagster_at_run_time():
    # Every library module imported (the heavy ones too), in every sub-package: none pulls
    # dagster in indirectly. The names come from the whole tree, so a module moved into a
    # sub-package cannot drop out of the check.
    modules = sorted(_module_name(p) for p in LIBRARY)
    assert len(modules) == len(LIBRARY) >= MIN_LIBRARY_MODULES, f"checked {len(modules)} modules"
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{list(FORBIDDEN_IN_LIBRARY)!r})))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == []


def test_loading_definitions_imports_no_heavy_module():
    code = ("import json, sys\nimport egoclean_assets.definitions as d\nassert d.defs is not None\n"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == [], "loading the definitions imported heavy modules"


def test_wiring_imports_heavy_modules_only_inside_functions():
    # A module-level heavy import in the wiring would break rule 2 at once; this names the line.
    bad = []
    for p in WIRING:
        tree = ast.parse(p.read_text(), filename=str(p))
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad += [f"{p.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if _root(n) in HEAVY]
    assert not bad, "\n".join(bad)


# The stage map of docs/ARCHITECTURE.md ("The tree"): which stages each stage may import.
STAGES = {
    "core": set(),
    "media": {"core", "settings"},
    "ingest": {"core", "media", "settings"},
    "embed": {"core", "media"},
    "temporal": {"core", "embed"},
    "motion": {"core", "media", "temporal"},
    "synth": {"core", "media", "motion"},
    "store": {"core", "temporal"},
    "export": {"core", "embed", "media", "motion", "temporal"},
    "cluster": {"core", "embed", "ingest", "media", "motion", "temporal"},
    "settings": {"core", "cluster", "ingest"},
}


def _stage(path: Path) -> str:
    parts = path.relative_to(ROOT / "egoclean").with_suffix("").parts
    return parts[0]


def test_each_stage_imports_only_the_stages_below_it():
    bad, seen = [], set()
    for p in LIBRARY:
        stage = _stage(p)
        if stage in ("cli", "__init__"):
            continue
        seen.add(stage)
        allowed = STAGES[stage] | {stage}
        for line, m in _imported_modules(p):
            parts = m.split(".")
            if parts[0] == "egoclean" and len(parts) > 1 and parts[1] not in allowed:
                bad.append(f"{p.relative_to(ROOT)}:{line}: import {m} ({stage} may import {sorted(STAGES[stage])})")
    assert seen == set(STAGES), f"stages in the tree {sorted(seen)} differ from the map {sorted(STAGES)}"
    assert not bad, "imports across the stage map (docs/ARCHITECTURE.md, The tree):\n" + "\n".join(bad)


@pytest.mark.parametrize("path", WIRING, ids=lambda p: str(p.relative_to(ROOT)))
def test_function_local_imports_say_why(path):
    # Each function with local imports of the library says (in a comment on or just above
    # its first local import) why they are local: readers should not "tidy" them upward.
    lines = path.read_text().splitlines()
    missing = []
    for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        local = [n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if not local:
            continue
        first = local[0].lineno - 1
        window = lines[max(0, first - 2): first + 1]
        if not any("#" in ln for ln in window):
            missing.append(f"{path.relative_to(ROOT)}:{first + 1} in {node.name}()")
    assert not missing, "function-local imports without a comment saying why:\n" + "\n".join(missing)
