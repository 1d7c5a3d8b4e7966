"""Benchmark dataset readers and runners."""
