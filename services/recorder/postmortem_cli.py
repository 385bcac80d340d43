"""`jarvis-ir postmortem ID`: print an incident's postmortem (Markdown) on standard output.

With `--url` it asks a running recorder over HTTP; without, it reads the recorder's
database named by the configuration (DATABASE_URL, else SQLite under the data directory).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
from sqlalchemy.exc import SQLAlchemyError

from services.recorder.queries import Reader
from services.recorder.report import postmortem_markdown
from services.recorder.store import TimelineStore
from shared.settings import ConfigError, load_settings

__all__ = ["run"]


def _from_http(url: str, incident_id: str) -> tuple[int, str]:
    target = f"{url.rstrip('/')}/api/v1/incidents/{incident_id}/postmortem"
    try:
        response = httpx.get(target, timeout=30.0)
    except httpx.HTTPError as exc:
        return 2, f"jarvis-ir: --url: cannot reach {target}: {exc}"
    if response.status_code == 404:
        return 1, f"jarvis-ir: no incident {incident_id!r}"
    if response.status_code != 200:
        return 2, f"jarvis-ir: {target} answered {response.status_code}: {response.text[:500]}"
    return 0, response.text


async def _from_database(url: str, incident_id: str) -> tuple[int, str]:
    store = TimelineStore(url)
    try:
        text = await postmortem_markdown(Reader(store.sessions), incident_id)
    except SQLAlchemyError as exc:
        first = str(exc).splitlines()[0]
        return 2, f"jarvis-ir: cannot read the recorder database ({first})"
    finally:
        await store.close()
    if text is None:
        return 1, f"jarvis-ir: no incident {incident_id!r}"
    return 0, text


def run(incident_id: str, *, config: str | None, url: str | None) -> int:
    """Print the postmortem; 0 printed, 1 no such incident, 2 cannot read."""
    if url:
        code, text = _from_http(url, incident_id)
    else:
        try:
            settings = load_settings(config)
        except ConfigError as exc:
            print(f"jarvis-ir: {exc}", file=sys.stderr)
            return 2
        db = settings.sqlalchemy_url
        if db.startswith("sqlite") and not Path(db.split("///", 1)[-1]).exists():
            print(f"jarvis-ir: no recorder database at {db}", file=sys.stderr)
            return 2
        code, text = asyncio.run(_from_database(db, incident_id))
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code
