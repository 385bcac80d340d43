"""`jarvis-ir drill` as an operator runs it: it refuses unless drills are switched on, the
target is allowlisted and the drill is confirmed (the drills themselves: bench.drills)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.cluster import jarvis_ir_command

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ({}, ["--yes"], "drills.enabled is false"),
        ({"drills": {"enabled": True}}, ["--yes"], "backend is not in drills.allowed_targets"),
        (
            {"drills": {"enabled": True, "allowed_targets": ["backend"]}},
            [],
            "not a terminal: confirm the drill with --yes",
        ),
    ],
)
def test_drill_refuses_unless_enabled_allowlisted_and_confirmed(
    tmp_path: Path, config: dict[str, object], args: list[str], message: str
) -> None:
    path = tmp_path / "jarvis.json"
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [*jarvis_ir_command(), "drill", "backend-down", "--config", str(path), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr
