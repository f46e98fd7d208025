"""EgoClean tests; tests.support holds what the tests, benchmarks and scripts share."""
