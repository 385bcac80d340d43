"""The runbook's ordered recovery as one action (Phase 3, "Database Issues"):
stop backend → restart PostgreSQL → wait until ready → start backend.

Once the backend is stopped it is started again whatever happens to PostgreSQL, as the
runbook's script does (leaving it stopped would turn a degraded system into a down one);
the outcome then says which step failed.
"""

from __future__ import annotations

from services.remediator.ports import ActionFailed, ContainerEngine, PostgresPort

__all__ = ["ordered_restart"]


async def ordered_restart(
    engine: ContainerEngine,
    postgres: PostgresPort,
    *,
    backend: str,
    database: str,
    ready_timeout_s: float,
    stop_timeout_s: int,
) -> str:
    """Run the four steps; the returned detail lists them. Raises ActionFailed listing
    the steps when one of them failed."""
    steps: list[str] = []
    failed = False
    try:
        steps.append(await engine.stop(backend, stop_timeout_s))
    except ActionFailed as exc:
        raise ActionFailed(f"stop {backend} failed: {exc}; nothing else done") from exc
    try:
        steps.append(await engine.restart(database, stop_timeout_s))
        waited = await postgres.wait_ready(database, ready_timeout_s)
        steps.append(f"{database} ready after {waited:.1f} s")
    except ActionFailed as exc:
        steps.append(f"failed: {exc}")
        failed = True
    try:
        steps.append(await engine.start(backend))
    except ActionFailed as exc:
        steps.append(f"start {backend} failed: {exc}")
        failed = True
    detail = "; ".join(steps)
    if failed:
        raise ActionFailed(detail)
    return detail
