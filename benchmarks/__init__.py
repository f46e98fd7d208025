"""EgoClean's benchmarks, run from the repository root as modules: `.venv/bin/python -m benchmarks.<name>`.

Run that way, `egoclean`, `egoclean_assets` and `tests.support` import with no path edits;
what every benchmark shares is in benchmarks.common. Results, with machine and date, are
in docs/PERFORMANCE.md and docs/SCALE.md; tests/test_benchmarks.py runs each one's
`--help` (and the small sizes of the cheap ones) so the documented commands keep working.
"""
