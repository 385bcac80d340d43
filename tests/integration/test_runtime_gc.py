"""A server process keeps what it built while starting out of the collector's full passes."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from shared.runtime import build_app, create_runtime
from shared.settings import Settings

pytestmark = pytest.mark.integration


class _Built:
    """Stands for what a service builds at start-up and keeps (caches, compiled plans)."""

    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector's passes would ever look at it


@pytest.mark.parametrize("freeze", [True, False])
async def test_objects_built_at_start_up_are_frozen_only_for_a_server(
    freeze: bool, each_redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(redis_url=each_redis_url)
    runtime = create_runtime(settings, each_redis_url)
    app = build_app(runtime, [], freeze_after_start=freeze)
    kept: list[_Built] = []
    garbage = _Built()  # unreachable before start-up ends: collected, not frozen
    del garbage
    gc.unfreeze()
    try:
        kept.append(_Built())
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            tracked = gc.get_objects()
            assert (any(o is kept[0] for o in tracked)) is not freeze
            assert (frozen > 0) is freeze
            if freeze:  # the garbage of start-up was collected first, not frozen with it
                assert not any(type(o) is _Built and o is not kept[0] for o in tracked)
    finally:
        gc.unfreeze()
