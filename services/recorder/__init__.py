"""Recorder: the timeline store and its API."""
