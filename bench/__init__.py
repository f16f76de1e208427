"""Benchmarks: ``python bench/run.py`` (``make bench``); see docs/PERFORMANCE.md."""
