"""Test support shared by the tests, the benchmarks and the scripts: stand-in servers and scenarios."""
