"""Tests of egoclean.temporal."""
