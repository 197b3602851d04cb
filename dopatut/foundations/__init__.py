"""Foundations: data, models, checkpoints, the cache, the shipped bundle, and the one table type."""
