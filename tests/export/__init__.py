"""Tests of egoclean.export."""
