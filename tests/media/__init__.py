"""Tests of egoclean.media."""
