"""egoclean.core.defaults: each default and rule defined once, torch-free, and documented."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from egoclean.core import defaults

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "egoclean").rglob("*.py")) + sorted((ROOT / "egoclean_assets").rglob("*.py"))


def test_importing_defaults_imports_nothing_heavy():
    code = ("import json, sys\nimport egoclean.core.defaults\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'cv2', 'av', 'duckdb', 'matplotlib', 'numpy', 'dagster'})))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_each_default_value_is_spelled_once():
    # The values that used to be defined three times each: only defaults.py spells them.
    values = {defaults.DATASET_URL, defaults.MODEL_ID, defaults.DB_PATH, defaults.SCOPE}
    found = []
    for p in SOURCES:
        if p.name == "defaults.py":
            continue
        tree = ast.parse(p.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(n)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in values and id(node) not in docs:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def test_the_two_duration_rules_have_names_that_say_which():
    assert defaults.LABELLED_DURATION_TOLERANCE_SEC == 1.5  # judging: is this the labelled clip?
    assert defaults.SPAN_END_TOLERANCE_SEC == 5.0  # parsing: a span may end this far past the duration
    ambiguous = re.compile(r"(?<![A-Z_])DURATION_TOLERANCE_SEC\s*=")
    names = [f"{p.relative_to(ROOT)}" for p in SOURCES if ambiguous.search(p.read_text())]
    assert names == [], f"an ambiguous DURATION_TOLERANCE_SEC is defined in {names}"


def test_every_variable_the_code_reads_is_listed():
    # A new EGOCLEAN_* variable belongs in defaults.ENVIRONMENT (and so in the README).
    known = {v.name for v in defaults.ENVIRONMENT}
    found = set()
    for p in SOURCES:
        found |= set(re.findall(r"\b(EGOCLEAN_[A-Z0-9_]+|HF_[A-Z_]+)\b", p.read_text()))
    # HF_HOME, HF_HUB_* are huggingface_hub's own settings, mentioned in messages
    families = tuple(n[:-1] for n in known if n.endswith("*"))  # EGOCLEAN_RAY_*: one per field
    unlisted = sorted(n for n in found - known
                      if not n.startswith(("HF_HUB", "HF_HOME", "HF_KEY", *families)))
    assert not unlisted, f"variables used in the code but missing from defaults.ENVIRONMENT: {unlisted}"


def test_readme_configuration_table_lists_every_variable_with_its_default():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([A-Z_*]+)` \|([^|]*)\|", section, re.M)}
    missing = [v.name for v in defaults.ENVIRONMENT if v.name not in rows]
    assert not missing, f"README's configuration table lacks {missing}"
    for v in defaults.ENVIRONMENT:
        if v.default is not None:
            assert f"`{v.default}`" in rows[v.name], f"README gives {v.name} the default {rows[v.name]!r}"
