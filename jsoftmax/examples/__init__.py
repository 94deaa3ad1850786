"""Runnable examples: ``python -m jsoftmax.examples``."""
