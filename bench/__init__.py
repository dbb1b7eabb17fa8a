"""Benchmarks for Asya (``make bench``); see docs/benchmarks.md."""
