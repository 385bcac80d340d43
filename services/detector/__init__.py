"""Detector: probes the Jarvis stack and ingests alerts from other systems."""
