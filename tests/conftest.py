"""Shared test setup: keys never land in ~, and paths to the bundled real data (tests/data, never ../shared)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
EDGE = DATA / "edge"
REGRESSIONS = DATA / "regressions"
SAMPLE_VCFS = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"


@pytest.fixture(autouse=True, scope="session")
def _session_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keys of lakes built by session- and module-scoped fixtures (set up before any function fixture)."""
    path = tmp_path_factory.mktemp("genolake-keys")
    old = {k: os.environ.get(k) for k in ("GENOLAKE_KEY_DIR", "GENOLAKE_KEY_FILE")}
    os.environ["GENOLAKE_KEY_DIR"] = str(path)
    os.environ.pop("GENOLAKE_KEY_FILE", None)
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def key_dir(_session_key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs with GENOLAKE_KEY_DIR in a temporary folder (inherited by subprocesses); a test that
    changes it (or sets GENOLAKE_KEY_FILE) cannot leak into the next. One folder for the whole session, so
    the keys of module-scoped lakes stay reachable; each lake has its own key file in it."""
    monkeypatch.setenv("GENOLAKE_KEY_DIR", str(_session_key_dir))
    monkeypatch.delenv("GENOLAKE_KEY_FILE", raising=False)
    return _session_key_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: copies of real public files (provenance in tests/data/SOURCES.md)."""
    return DATA


@pytest.fixture(scope="session")
def shared_edge() -> Path:
    """tests/data/edge: the 80 edge-case and malformed VCFs (copied from ../shared/data/edge)."""
    return EDGE


@pytest.fixture(scope="session")
def regressions_dir() -> Path:
    """tests/data/regressions: small hand-made VCFs, each named after the bug it caught."""
    return REGRESSIONS
