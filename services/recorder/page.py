"""The operator console served at `/`: plain HTML, CSS and JavaScript in `static/`, no
build step. It reads the JSON API, listens to `/api/v1/stream` (server-sent events) and
sends operator commands as JSON with the bearer token the operator typed once (kept in
the browser session's storage, never in a cookie, so the page is not open to CSRF).
Text from events is always inserted as text, never as HTML.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

__all__ = ["make_page_router"]

_TYPES = {
    "console.js": "text/javascript",
    "console.css": "text/css",
    "charts.js": "text/javascript",
}
# What the page may do: only its own scripts, styles and API (no inline script, no eval).
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _read(name: str) -> str:
    return resources.files("services.recorder").joinpath("static", name).read_text("utf-8")


def make_page_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = _read("console.html")
    assets = {name: _read(name) for name in _TYPES}
    headers = {"Content-Security-Policy": _POLICY, "X-Content-Type-Options": "nosniff"}

    @router.get("/", response_class=HTMLResponse)
    async def console() -> HTMLResponse:
        """The operator console."""
        return HTMLResponse(page, headers=headers)

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, f"name: no asset {name!r}")
        return Response(assets[name], media_type=_TYPES[name], headers=headers)

    return router
