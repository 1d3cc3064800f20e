"""Benchmark harness for Betula (not part of the betula package)."""
