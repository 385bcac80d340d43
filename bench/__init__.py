"""Benchmarks, each run as `python -m bench.<name>` and measured against a same-run baseline."""
