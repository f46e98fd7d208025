"""Dagster wiring for EgoClean: partitions, resources, IO manager, assets, checks, sensors.

Every computation lives in the `egoclean` library; the modules here only connect it to
Dagster. `egoclean_assets.definitions.defs` is what `dagster dev` loads (workspace.yaml).
"""
