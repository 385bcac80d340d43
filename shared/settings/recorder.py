"""The recorder's section."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)

__all__ = ["RecorderSettings"]


class RecorderSettings(BaseModel):
    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size.")
    batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Events read and stored per transaction (XREADGROUP COUNT of the recorder).",
    )
    max_body_bytes: int = Field(
        default=65_536, ge=1024, description="Largest body of an operator command."
    )
    dedup_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        ge=3600,
        description="How long ids of counted (storm) alerts are kept to ignore redeliveries.",
    )
    prune_interval_s: float = Field(
        default=600.0, gt=0, description="How often expired dedup ids are deleted."
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="SQLite only: how often the write-ahead log is copied into the database.",
    )
    stream_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="Live stream: how often the database is polled."
    )
