"""egoclean.settings: the one reader of the EGOCLEAN_* variables, and its one-line errors naming them."""

import pytest

from egoclean.core import defaults
from egoclean.core.errors import InvalidInputError
from egoclean.settings import Settings


def test_unset_and_empty_variables_take_the_defaults():
    for env in ({}, {v.name: "" for v in defaults.ENVIRONMENT if "*" not in v.name}):
        s = Settings.from_env(env)
        assert (s.execution, s.clips_per_run, s.max_pixels, s.hwaccel, s.cache, s.ray) == (
            defaults.EXECUTION, defaults.CLIPS_PER_RUN, defaults.MAX_PIXELS, defaults.HWACCEL, defaults.CACHE_DIR, ())


def test_every_variable_of_the_table_is_read():
    # A value for each variable (other than its default) shows up in the settings: no variable
    # of defaults.ENVIRONMENT is read anywhere else.
    given = {"HF_TOKEN": "hf_x", "HF_ENDPOINT": "http://127.0.0.1:1", "EGOCLEAN_SOURCE": "/src",
             "EGOCLEAN_REVISION": "v1", "EGOCLEAN_DATA_ROOT": "/out", "EGOCLEAN_WORK_DIR": "/work",
             "EGOCLEAN_MODEL": "/m", "EGOCLEAN_DEVICE": "cpu", "EGOCLEAN_DTYPE": "fp32", "EGOCLEAN_BATCH": "2",
             "EGOCLEAN_DB": "/x.duckdb", "EGOCLEAN_DB_DATA_PATH": "/lake", "EGOCLEAN_GROUND_TRUTH": "/a.csv",
             "EGOCLEAN_GROUND_TRUTH_SEED": "0", "EGOCLEAN_SCOPE": "factory_002/*", "EGOCLEAN_EXPORT": "/e",
             "EGOCLEAN_EXECUTION": "Ray", "EGOCLEAN_CLIPS_PER_RUN": "100", "EGOCLEAN_RAY_NUM_ACTORS": "8",
             "EGOCLEAN_CACHE": "/c", "EGOCLEAN_MAX_PIXELS": "3072", "EGOCLEAN_HWACCEL": "CPU",
             "EGOCLEAN_SQL_MEMORY": " 512MiB "}
    assert {v.name.replace("*", "NUM_ACTORS") for v in defaults.ENVIRONMENT} == set(given)
    s = Settings.from_env(given)
    d = Settings()
    changed = {f for f in Settings.__dataclass_fields__ if getattr(s, f) != getattr(d, f)}
    assert changed == set(Settings.__dataclass_fields__)
    assert (s.execution, s.clips_per_run, s.max_pixels, s.hwaccel, s.index_cache) == ("ray", 100, 3072, "cpu",
                                                                                      "/c/index")
    assert s.sql_memory == "512MiB" and Settings.from_env({}).sql_memory == defaults.SQL_MEMORY == "2GiB"


@pytest.mark.parametrize("name, value", [
    ("EGOCLEAN_EXECUTION", "spark"), ("EGOCLEAN_CLIPS_PER_RUN", "0"), ("EGOCLEAN_CLIPS_PER_RUN", "-3"),
    ("EGOCLEAN_CLIPS_PER_RUN", "ten"), ("EGOCLEAN_MAX_PIXELS", "0"), ("EGOCLEAN_MAX_PIXELS", "1e9"),
    ("EGOCLEAN_HWACCEL", "cuda-please"), ("EGOCLEAN_BATCH", "0"), ("EGOCLEAN_GROUND_TRUTH_SEED", "maybe"),
    ("EGOCLEAN_SQL_MEMORY", "lots"), ("EGOCLEAN_SQL_MEMORY", "1MiB"), ("EGOCLEAN_SQL_MEMORY", "2 parsecs"),
])
def test_a_bad_value_is_one_line_naming_the_variable(name, value):
    with pytest.raises(InvalidInputError) as e:
        Settings.from_env({name: value})
    msg = str(e.value)
    assert msg.startswith(f"environment variable {name}: ") and value in msg and "\n" not in msg


def test_ray_config_from_the_ray_variables():
    from egoclean.cluster.ray_pipeline import RayConfig

    assert Settings.from_env({}).ray_config() == RayConfig()
    cfg = Settings.from_env({"EGOCLEAN_RAY_NUM_ACTORS": "8", "EGOCLEAN_RAY_ACTOR_NUM_GPUS": "1",
                             "EGOCLEAN_RAY_ACTOR_RESOURCES": '{"GPU_STANDIN": 1}', "EGOCLEAN_RAY_ADDRESS": "auto",
                             "EGOCLEAN_RAY_BATCH_WAIT_S": "0.5", "EGOCLEAN_RAY_TASK_RETRIES": "-1"}).ray_config()
    got = (cfg.num_actors, cfg.actor_num_gpus, cfg.actor_resources, cfg.address, cfg.batch_wait_s, cfg.task_retries)
    assert got == (8, 1.0, {"GPU_STANDIN": 1}, "auto", 0.5, -1)


@pytest.mark.parametrize("name, value", [
    ("EGOCLEAN_RAY_NUM_ACTORS", "0"), ("EGOCLEAN_RAY_BATCH_SIZE", "x"), ("EGOCLEAN_RAY_BATCH_SIZE", "2.5"),
    ("EGOCLEAN_RAY_ACTOR_RESOURCES", "[1]"), ("EGOCLEAN_RAY_EMBED_CPUS", "-1"), ("EGOCLEAN_RAY_EMBED_CPUS", "nan"),
    ("EGOCLEAN_RAY_NUM_ACTOR", "8"),  # a typo of NUM_ACTORS: named, not ignored
])
def test_a_bad_ray_variable_is_one_line_naming_it(name, value):
    s = Settings.from_env({name: value})  # read at load in Ray mode only (the module is Ray mode's)
    with pytest.raises(InvalidInputError) as e:
        s.ray_config()
    msg = str(e.value)
    assert msg.startswith(f"environment variable {name}: ") and "\n" not in msg


def test_the_library_reads_its_variables_through_settings(monkeypatch, tmp_path):
    from egoclean.ingest import source
    from egoclean.media import video

    monkeypatch.setenv("EGOCLEAN_MAX_PIXELS", "3072")
    monkeypatch.setenv("EGOCLEAN_HWACCEL", "cpu")
    monkeypatch.setenv("EGOCLEAN_CACHE", str(tmp_path))
    assert (video.max_pixels(), video.hwaccel(), source.default_cache_dir()) == (3072, "cpu", tmp_path / "index")
    monkeypatch.setenv("EGOCLEAN_HWACCEL", "gpu")
    with pytest.raises(InvalidInputError, match="^environment variable EGOCLEAN_HWACCEL: "):
        video.hwaccel()
    assert video.hwaccel("nvidia") == "nvidia"  # an explicit choice wins over the variable


def test_no_module_but_settings_reads_an_egoclean_variable_from_the_environment():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    read = re.compile(r"""os\.environ(\.get\(|\[)\s*["']EGOCLEAN_|getenv\(\s*["']EGOCLEAN_""")
    files = [p for d in ("egoclean", "egoclean_assets") for p in sorted((root / d).rglob("*.py"))]
    assert len(files) > 50
    bad = [f"{p.relative_to(root)}:{i}" for p in files if p.name != "settings.py"
           for i, line in enumerate(p.read_text().splitlines(), 1) if read.search(line)]
    assert not bad, f"read EGOCLEAN_* through egoclean.settings.Settings: {bad}"
