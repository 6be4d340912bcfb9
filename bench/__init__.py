"""Benchmark scripts and experiments run from a checkout (not installed)."""
