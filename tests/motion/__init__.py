"""Tests of egoclean.motion."""
