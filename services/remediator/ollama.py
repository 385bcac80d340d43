"""Ollama's HTTP API: pull a model, then wait until `/api/tags` lists it."""

from __future__ import annotations

import asyncio
import time

import httpx

from services.remediator.ports import ActionFailed

__all__ = ["OllamaClient", "lists_model"]


def lists_model(names: list[str], model: str) -> bool:
    """Whether `model` is among `names` (`tinyllama` matches `tinyllama:latest`)."""
    wanted = model if ":" in model else f"{model}:latest"
    return any(name in (model, wanted) for name in names)


class OllamaClient:
    """`ModelServer` over httpx."""

    def __init__(self, base_url: str, poll_s: float = 1.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._poll_s = poll_s

    async def models(self) -> list[str]:
        async with httpx.AsyncClient(base_url=self._base_url, timeout=10) as client:
            response = await client.get("/api/tags")
            response.raise_for_status()
            body = response.json()
        return [str(m.get("name") or m.get("model")) for m in body.get("models") or []]

    async def pull(self, model: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        try:
            async with httpx.AsyncClient(base_url=self._base_url, timeout=timeout_s) as client:
                response = await client.post("/api/pull", json={"model": model, "stream": False})
                if response.status_code >= 400:
                    raise ActionFailed(f"pull {model}: HTTP {response.status_code} {response.text}")
                status = response.json().get("status", "")
                if status and status != "success":
                    raise ActionFailed(f"pull {model}: status {status!r}")
            while True:
                names = await self.models()
                if lists_model(names, model):
                    return f"pulled {model}; /api/tags lists {', '.join(names)}"
                if time.monotonic() > deadline:
                    raise ActionFailed(f"{model} not listed by /api/tags after the pull")
                await asyncio.sleep(self._poll_s)
        except httpx.HTTPError as exc:
            raise ActionFailed(f"ollama: {type(exc).__name__}: {exc}") from exc
