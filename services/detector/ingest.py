"""Turning request bodies into AlertRaised events, with errors that name the field."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.envelope import own_claim
from shared.events import AlertRaised, AlertSource

__all__ = ["IngestError", "parse_alerts"]


class IngestError(ValueError):
    """The body is not acceptable; `errors` name each bad field (FastAPI's 422 shape)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def parse_alerts(body: bytes, *, integration: str, now: datetime) -> list[AlertRaised]:
    """One alert or a list of them; all valid or IngestError (a batch is accepted whole).
    Each is a claim of `integration`: the envelope is the server's (`shared.envelope`)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IngestError(
            [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json"}]
        ) from exc
    except RecursionError as exc:  # a deeply nested body: refused, not a server error
        raise IngestError(
            [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json"}]
        ) from exc
    items = data if isinstance(data, list) else [data]
    if not items:
        raise IngestError([{"loc": ["body"], "msg": "empty list", "type": "value_error"}])
    alerts: list[AlertRaised] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        prefix: list[Any] = ["body", index] if isinstance(data, list) else ["body"]
        if not isinstance(item, dict):
            errors.append({"loc": prefix, "msg": "expected a JSON object", "type": "type_error"})
            continue
        try:
            alerts.append(own_claim(item, integration=integration, source=AlertSource.API, now=now))
        except RecursionError:
            errors.append({"loc": prefix, "msg": "nested too deeply", "type": "value_error"})
        except ValidationError as exc:
            errors.extend(
                {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors()
            )
    if errors:
        raise IngestError(errors)
    return alerts
