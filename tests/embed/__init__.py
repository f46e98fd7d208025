"""Tests of egoclean.embed."""
