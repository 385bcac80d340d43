"""Files the remediator writes (database dumps, logs, evidence bundles) are readable by the
service's user only: a dump holds the whole database, logs and process lists hold secrets.
Folders 0700, files 0600, whatever the process' umask."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["private_dir", "private_file", "write_private"]


def private_dir(path: Path) -> Path:
    """`path` made (with its parents) and closed to others."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):  # made earlier, or by someone else: tighten it
        path.chmod(0o700)
    return path


def private_file(path: Path) -> BinaryIO:
    """`path` opened for writing (truncated), created 0600 (and made 0600 if it existed)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def write_private(path: Path, data: bytes) -> Path:
    with private_file(path) as out:
        out.write(data)
    return path
