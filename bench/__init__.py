"""Benchmarks: `python -m bench.<name>`, each reporting ratios against a baseline measured
in the same run."""
