"""The benchmarks run as documented: `python -m benchmarks.X` from the repository root.

Speed is never asserted here (docs/PERFORMANCE.md holds the measured figures); this only
keeps the commands the docs show from breaking silently: every benchmark module answers
`--help`, every command in the docs and the benchmarks' docstrings names a benchmark
that exists and options it has, nothing edits sys.path, and the cheap benchmarks run end
to end at a tiny size (the others need minutes, a GPU or a Ray namespace; the partitions
benchmark runs its daemon-stopping mode at 64 partitions).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem not in ("__init__", "common"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_RE = re.compile(r"python3? -m benchmarks\.(\w+)([^`\n]*)")
OPTION_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _run(module: str, *args: str, timeout: float = 300, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOCLEAN_", "RAY_", "DAGSTER_"))}
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    out = {}
    for m in MODULES:
        res = _run(m, "--help")
        assert res.returncode == 0, f"python -m benchmarks.{m} --help failed:\n{res.stderr[-2000:]}"
        assert res.stdout.startswith("usage: "), res.stdout[:200]
        out[m] = res.stdout
    return out


def test_there_are_benchmarks_and_no_module_edits_sys_path():
    assert len(MODULES) >= 13, MODULES
    for p in (ROOT / "benchmarks").glob("*.py"):
        text = p.read_text()
        assert "sys.path" not in text, f"{p.name} edits sys.path: run it as python -m benchmarks.{p.stem}"


def test_every_benchmark_answers_help(helps):
    for m, text in helps.items():
        assert "-h, --help" in text, m


def _documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, module, options) of every `python -m benchmarks.X ...` in the docs and the benchmarks' docstrings."""
    sources = DOCS + sorted((ROOT / "benchmarks").glob("*.py"))
    out = []
    for src in sources:
        for i, line in enumerate(src.read_text().splitlines(), 1):
            for m in COMMAND_RE.finditer(line):
                rest = m.group(2).split("#", 1)[0]  # a comment after the command is not part of it
                out.append((f"{src.relative_to(ROOT)}:{i}", m.group(1), OPTION_RE.findall(rest)))
    return out


def test_the_documented_commands_name_benchmarks_and_options_they_have(helps):
    commands = _documented_commands()
    where = {w.split(":")[0] for w, _, _ in commands}
    # each benchmark shows its command in its docstring; the docs show most of them
    assert {f"benchmarks/{m}.py" for m in MODULES} <= where
    assert {"docs/PERFORMANCE.md", "docs/SCALE.md"} <= where
    bad = []
    for w, module, options in commands:
        if module not in helps:
            bad.append(f"{w}: no benchmark {module}")
            continue
        bad += [f"{w}: benchmarks.{module} has no option {o}" for o in options if o not in helps[module]]
    assert not bad, "\n".join(bad)


def test_no_doc_runs_a_benchmark_as_a_file():
    # `python benchmarks/<name>.py` cannot import the package's helpers: the docs show the module form
    old = re.compile(r"python3? benchmarks/\w+\.py")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in DOCS + sorted((ROOT / "benchmarks").glob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if old.search(line)]
    assert not hits, hits


# The cheap benchmarks at a tiny size: each prints its table, its ratios and the machine line.
SMOKE = {
    "bench_store": (["--clips", "3", "--repeat", "1"], ["Store.replace_clip", "1.000x"]),
    "bench_source": (["--clips", "2", "--mb", "0.2", "--repeat", "1"], ["fetch_clip, cached index", "1.00x"]),
    "bench_synth": (["--width", "64", "--height", "48", "--duration", "1"], ["write_clip", "1.00x"]),
    "bench_detect": (["--speed", "--sizes", "100"], ["explicit N x N typicality (baseline)", "detect (O(N)"]),
    "bench_export": (["--width", "160", "--height", "96", "--duration", "6", "--clips", "1", "--episode", "2"],
                     ["ratio egoclean / baseline"]),
}


@pytest.mark.parametrize("module", sorted(SMOKE))
def test_a_cheap_benchmark_runs_at_a_tiny_size(module):
    args, expected = SMOKE[module]
    res = _run(module, *args, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for text in expected:
        assert text in res.stdout, (text, res.stdout[-2000:])
    assert re.search(r"^(# \w+; )?machine: .+ CPUs.+\d{4}-\d\d-\d\d \d\d:\d\d UTC$", res.stdout, re.M), res.stdout


@pytest.mark.slow
def test_the_embedding_benchmark_checks_its_paths_agree_at_a_tiny_size():
    # bench_embed asserts the streamed and baseline embeddings agree before it reports a speed
    res = _run("bench_embed", "--seconds", "3", "--width", "160", "--height", "96", "--repeats", "1", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "embed_video, decode thread" in res.stdout and "torch threads" in res.stdout


def test_the_partitions_benchmark_stops_the_daemon_after_the_runs_asked_for(tmp_path):
    # the full-size mode at a tiny size: 64 clips in Ray mode, K = 4 (16 runs in the
    # backfill); the backfill is written back every 2 runs here (Dagster's chunk size, 25 by
    # default), so asking for 3 runs ends the daemon's iteration at a chunk boundary soon after
    out = tmp_path / "rows.json"
    res = _run("bench_partitions", "--backends", "sqlite", "--sizes", "0", "--execution", "ray",
               "--daemon-size", "64", "--submit-workers", "0", "--clips-per-run", "4", "--planned-events", "subset",
               "--daemon-runs", "3", "--cli-runs", "2", "--materialized", "4", "--storage", "egoclean,dagster",
               "--out", str(out), timeout=600, extra_env={"DAGSTER_ASSET_BACKFILL_RUN_CHUNK_SIZE": "2"})
    assert res.returncode == 0, res.stderr[-3000:]
    row, baseline = json.loads(out.read_text())["rows"]  # the project's storage, then Dagster's own
    assert (row["storage"], baseline["storage"]) == ("egoclean", "dagster")
    assert baseline["stopped"] and baseline["planned_events_per_run"] == row["planned_events_per_run"], baseline
    assert row["stopped"] and 3 <= row["runs_queued"] < 16, row
    from egoclean_assets.cluster import CLIP_ASSETS  # one planned event per clip asset and run (`subset`)

    assert row["clips_in_runs"] == 4 * row["runs_queued"] and row["planned_events_per_run"] == len(CLIP_ASSETS), row
    assert row["backfill_writes"] >= 2 and row["cli_runs"] == 2, row
    assert row["pass_runs"] == 48_226 and row["pass_projection_h"] > 0 and row["pass_ms_per_clip"] > 0, row
    assert "daemon_submit_ms_per_clip" in res.stdout and re.search(r"machine: .+ UTC$", res.stdout, re.M)
