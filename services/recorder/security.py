"""The limit on the recorder's request bodies. Tokens, hosts and cross-site writes are
checked for every service by `shared.access`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from starlette.types import Message

__all__ = ["limited_body_route"]


def limited_body_route(max_bytes: int) -> type[APIRoute]:
    """A route class refusing bodies over `max_bytes` with 413, before they are buffered."""

    class LimitedBodyRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise _too_large(max_bytes)
                received = 0
                upstream = request.receive

                async def receive() -> Message:
                    nonlocal received
                    message = await upstream()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if received > max_bytes:
                            raise _too_large(max_bytes)
                    return message

                return await handler(Request(request.scope, receive))

            return limited

    return LimitedBodyRoute


def _too_large(max_bytes: int) -> HTTPException:
    return HTTPException(413, f"body: larger than {max_bytes} bytes")
