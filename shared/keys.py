"""Secrets the program makes for itself, and HMAC signatures made with them.

A secret the operator did not set (the embedded Redis password, the approval key, the
envelope key) is generated once and kept in a file only its owner can read (0600, in a
0700 folder), so every process sharing the data directory uses the same one and a
restart keeps it. `Signer` signs and verifies with one key; its signatures are
HMAC-SHA256 over the parts, each part length-prefixed so that no two different lists of
parts sign the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["Signer", "load_or_create_secret"]


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret kept in `path`; a new random one (hex) when the file does not exist.

    Creation is atomic: the secret is written to a temporary file and linked into place,
    so processes starting together all read the one that won, never a half-written one.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a folder made by someone else keeps its mode
        path.parent.chmod(0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(nbytes) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won: use theirs
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it to have a new secret made")
    return value


class Signer:
    """HMAC-SHA256 signatures with one key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a signing key must not be empty")
        self._key = key.encode()
        # Keyed once; each signature starts from a copy (no key schedule per signature).
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def sign(self, *parts: str | bytes) -> str:
        mac = self._keyed.copy()
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            mac.update(len(data).to_bytes(8, "big"))
            mac.update(data)
        return mac.hexdigest()

    def verify(self, signature: str | None, *parts: str | bytes) -> bool:
        if not signature:
            return False
        return hmac.compare_digest(signature.encode(), self.sign(*parts).encode())
