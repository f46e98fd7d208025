"""Tests of egoclean.cluster."""
