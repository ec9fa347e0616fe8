"""Shared test setup: keys never land in ~, and paths to the bundled real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_VCFS = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"


@pytest.fixture(autouse=True, scope="session")
def _key_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every lake key of the test session lives in a temporary folder (inherited by subprocesses)."""
    path = tmp_path_factory.mktemp("genolake-keys")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(path)
    os.environ.pop("GENOLAKE_KEY_FILE", None)
    yield path
    if old is None:
        os.environ.pop("GENOLAKE_KEY_DIR", None)
    else:
        os.environ["GENOLAKE_KEY_DIR"] = old


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
