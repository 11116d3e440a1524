"""Benchmarks: datasets, training, measurement, reports and gates."""
