"""The recorder's section."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    Field,
)

__all__ = ["PostmortemDraftSettings", "RecorderSettings", "StatusPageSettings"]


class StatusPageSettings(BaseModel):
    """The public status page (runbook "External Communication": status.company.com)."""

    path: str = Field(
        default="/status",
        pattern=r"^/[a-z0-9/_-]*[a-z0-9]$",
        description="Path of the page; its Atom feed is <path>/feed.atom.",
    )
    port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Also serve the page (and only it) on this port; 0: only on the main port.",
    )
    host: str = Field(default="127.0.0.1", description="Address of that port.")
    title: str = Field(default="Jarvis status", max_length=200, description="Page title.")
    history_days: float = Field(
        default=7.0, gt=0, le=90, description="How long resolved incidents stay on the page."
    )
    components: dict[str, str] = Field(
        default_factory=dict,
        description="Service → public name; empty: the Jarvis stack (triage.containers).",
    )


class PostmortemDraftSettings(BaseModel):
    """Drafting the postmortem's prose with the stack's own Ollama (JARVIS_OLLAMA_URL)."""

    enabled: bool = Field(default=False, description="Ask the local model for a draft.")
    model: str = Field(default="tinyllama", min_length=1, description="Ollama model.")
    timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait for the draft; then the template."
    )
    health_timeout_s: float = Field(
        default=1.0, gt=0, le=30, description="Longest wait for Ollama's model list."
    )
    max_events: int = Field(
        default=150, ge=10, le=2000, description="Timeline entries given to the model."
    )


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
    wal_truncate_bytes: int = Field(
        default=64 * 1_048_576,
        ge=0,
        description="SQLite only: a write-ahead log larger than this after a checkpoint is "
        "truncated (it keeps the size it grew to otherwise).",
    )
    stream_max_clients: int = Field(
        default=32,
        ge=1,
        description="Live event streams (/api/v1/stream) open at once; more get 503.",
    )
    stream_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="Live stream: how often the database is polled."
    )
    status_page: StatusPageSettings = Field(default_factory=StatusPageSettings)
    postmortem_draft: PostmortemDraftSettings = Field(default_factory=PostmortemDraftSettings)
