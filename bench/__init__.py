"""Benchmarks for jsoftmax (``python -m bench``)."""
