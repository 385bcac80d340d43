"""Escalator: durable escalation timers and notifications."""
