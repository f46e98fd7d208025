"""Tests of egoclean.core."""
