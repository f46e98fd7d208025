"""Tests of egoclean.ingest."""
