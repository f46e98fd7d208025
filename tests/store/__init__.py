"""Tests of egoclean.store."""
