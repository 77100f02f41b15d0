"""Benchmarks (not tests): each scenario measures the system and its physical baseline."""
