"""Helpers for the ingest tests: run the CLI as a user would, fingerprint a lake folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`genolake ARGS` as a separate process (what a user sees: exit code, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "genolake", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def lake_fingerprint(lake: Path) -> dict[str, str]:
    """SHA-256 of every file under the lake (the lock file excluded: flock never changes its bytes; so is
    ``_staging``, scratch of running jobs and of open query engines, which spill there)."""
    out: dict[str, str] = {}
    for root, _dirs, files in os.walk(lake):
        for f in files:
            p = Path(root) / f
            rel = str(p.relative_to(lake))
            if rel == "_lock" or rel.startswith("_staging/"):
                continue
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def sorted_rows(lake: Path, sql: str) -> list[tuple[object, ...]]:
    import genolake

    lk = genolake.open(lake)
    try:
        return sorted(tuple(r.values()) for r in lk.sql(sql).to_pylist())
    finally:
        lk.close()
