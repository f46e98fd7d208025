"""Getting clips from the dataset: sources (hub, local, fsspec) and tar shard indexes."""
