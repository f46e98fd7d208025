"""egoclean.store.backends: the two backends behind one interface, which the domain code never tells apart."""

from __future__ import annotations

import ast
from pathlib import Path

import egoclean.store.tables as tables
from egoclean.store import Store
from egoclean.store.backends import _Backend, _EmbeddedBackend, _LakeBackend


def test_domain_code_never_asks_which_backend_it_holds():
    """tables.py (the Store and its tables) names no backend and no mode test: only open_backend."""
    tree = ast.parse(Path(tables.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    asked = names & {"is_shared", "is_lake_url", "_EmbeddedBackend", "_LakeBackend", "ducklake"}
    assert asked == set()
    assert "open_backend" in names


def test_both_backends_implement_the_whole_interface():
    interface = {k for k, v in vars(_Backend).items() if callable(v) and not k.startswith("__")}
    assert {"init", "write", "read", "exists", "redact"} <= interface
    for cls in (_EmbeddedBackend, _LakeBackend):
        for name in ("init", "write", "read"):
            assert getattr(cls, name) is not getattr(_Backend, name), f"{cls.__name__}.{name}"


def test_path_stays_as_given_and_location_hides_a_password(tmp_path):
    db = tmp_path / "e.duckdb"
    assert Store(db).path == db and Store(db).location == str(db)
    assert Store(str(db)).path == str(db)
    url = "ducklake:postgres:dbname=lake host=127.0.0.1 password=s3cr3t"
    st = Store(url)  # nothing is opened before the first call
    assert st.path == url
    assert "s3cr3t" not in st.location and "dbname=lake" in st.location
    assert st._backend.redact(f"cannot attach {url}") == f"cannot attach {st.location}"
    assert Store(db)._backend.redact("x password=y") == "x password=y"
