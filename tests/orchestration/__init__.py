"""Tests of egoclean_assets."""
