"""Pure pieces of the operator console's API: content negotiation of the postmortem, the
phase bar, and the runbook command shown for an action waiting for approval."""

from __future__ import annotations

import pytest

from services.recorder.approvals import command_for
from services.recorder.postmortem_html import as_html, wants_html

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Chromium
        ("*/*", False),  # curl
        (None, False),
        ("text/markdown", False),
        ("text/markdown, text/html;q=0.5", False),
        ("text/html;q=0.9, text/markdown;q=0.9", True),
        ("text/html;q=0", False),
        ("text/html;q=abc", False),
    ],
)
def test_a_browser_gets_html_and_everything_else_markdown(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


def test_html_rendering_keeps_event_text_as_text() -> None:
    page = as_html(
        "# Review <x>\n\n| a | b |\n|---|---|\n| <script>x</script> | [l](javascript:y) |\n",
        "<title>",
    )
    assert "<title>&lt;title&gt;</title>" in page
    assert "<h1>Review &lt;x&gt;</h1>" in page
    assert "<table>" in page
    assert "<script>" not in page
    assert "href" not in page


def test_the_command_shown_is_what_the_runbook_writes() -> None:
    assert command_for("docker.system_prune", "", {}) == "docker system prune -f"
    assert (
        command_for("docker.volume_prune", "", {"label": "tmp=1"})
        == "docker volume prune -f --filter label=tmp=1"
    )
    assert command_for("redis.flushdb", "", {}) == "docker exec sutazai-redis redis-cli FLUSHDB"
    assert command_for("docker.restart", "backend", {}) == "docker restart backend"
    assert command_for("verify.all", "", {"checks": ["redis"]}) == "verify.all checks=['redis']"
