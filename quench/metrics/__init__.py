"""Metric computations shared by stages (pure functions over tensors and arrays)."""
