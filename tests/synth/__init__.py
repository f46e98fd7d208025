"""Tests of egoclean.synth."""
