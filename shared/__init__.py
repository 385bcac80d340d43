"""Shared code of Jarvis Responder: event contracts, streams, settings and the consumer layer."""
