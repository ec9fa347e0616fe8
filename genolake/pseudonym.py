"""Keyed pseudonyms for sample IDs.

Each lake has a 256-bit secret key kept *outside* the lake directory (by default
``~/.config/genolake/keys/<lake id>.key``, mode 0600; override with ``GENOLAKE_KEY_FILE``). A sample's
pseudonym is HMAC-SHA256(key, institution + U+001F + sample ID), first 32 hex digits. Anyone with the lake
but not the key cannot link a pseudonym back to a sample ID, and the same ID always maps to the same
pseudonym, so phenotype tables loaded later join to the calls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from genolake.errors import KeyFileError

_SEP = "\x1f"


def default_key_path(lake_id: str) -> Path:
    env = os.environ.get("GENOLAKE_KEY_FILE")
    if env:
        return Path(env)
    base = Path(os.environ.get("GENOLAKE_KEY_DIR", Path.home() / ".config" / "genolake" / "keys"))
    return base / f"{lake_id}.key"


def fingerprint(key: bytes) -> str:
    """A public fingerprint of the key, stored in the lake to catch a wrong key file."""
    return hmac.new(key, b"genolake-key-fingerprint", hashlib.sha256).hexdigest()[:16]


def create_key(path: Path) -> bytes:
    """Create a new random key at ``path`` (0600) and return it; refuses to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


def check_permissions(path: Path) -> None:
    """Refuse a key file that group or others may read or write (as ssh refuses such a private key): whoever
    holds the key and the lake can turn every pseudonym back into its sample ID."""
    if os.name != "posix":  # Windows ACLs are not mode bits; nothing reliable to check here
        return
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o077:
        raise KeyFileError(
            f"the key file {path} is accessible by group or others (mode {mode:04o}); it must be private: "
            f"run `chmod 600 {path}` and check who may have copied it"
        )


def read_key(path: Path) -> bytes:
    """The key in ``path`` (64 hex digits), after :func:`check_permissions`."""
    check_permissions(path)
    return bytes.fromhex(path.read_text().strip())


def load_key(path: Path, expected_fingerprint: str) -> bytes:
    """Read the key and check it belongs to the lake."""
    try:
        key = read_key(path)
    except FileNotFoundError:
        raise KeyFileError(
            f"the lake's pseudonymisation key is not at {path}; restore it from your backup or point "
            "GENOLAKE_KEY_FILE at it (without it new samples cannot be linked to existing pseudonyms)"
        ) from None
    except ValueError:
        raise KeyFileError(f"{path} is not a genolake key file (expected 64 hex digits)") from None
    if fingerprint(key) != expected_fingerprint:
        raise KeyFileError(f"the key at {path} belongs to another lake (fingerprint mismatch)")
    return key


class Pseudonymiser:
    """Maps (institution, sample ID) to a stable keyed pseudonym."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, institution: str, sample_id: str) -> str:
        msg = (institution + _SEP + sample_id).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def many(self, institution: str, sample_ids: list[str]) -> list[str]:
        return [self(institution, s) for s in sample_ids]
