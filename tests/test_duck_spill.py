"""DuckDB never spills outside the lake: its default ``temp_directory`` is ``./.tmp`` of the current directory,
where a killed process would leave pseudonymised call rows. An engine spills into a locked folder under the
lake's ``_staging`` (kept from writers' recovery while it lives, removed on close); other connections do not
spill at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from genolake.duck import connect
from genolake.ingest.pipeline import ingest
from genolake.query.engine import Engine
from genolake.store import LakeStore

VCF = Path(__file__).resolve().parent / "data" / "hail_sample_1kg_chr20_100s.vcf.gz"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spill") / "lake"
    ingest(path, "north", [VCF], build="GRCh37", workers=0)
    return path


def _setting(con: object, name: str) -> str:
    return str(con.execute(f"SELECT current_setting('{name}')").fetchone()[0])  # type: ignore[attr-defined]


def test_plain_connection_does_not_spill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    con = connect(1)
    assert _setting(con, "temp_directory") == ""
    con.execute("SET memory_limit = '64MB'")
    with pytest.raises(Exception, match=r"(?i)out of memory"):
        con.execute("SELECT count(*) FROM (SELECT i, md5(i::VARCHAR) m FROM range(3000000) t(i) ORDER BY m)").fetchall()
    assert not (tmp_path / ".tmp").exists()


def test_spill_goes_where_it_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    con = connect(1, spill=tmp_path / "work" / "duckdb")
    con.execute("SET memory_limit = '64MB'")
    n = con.execute("SELECT count(*) FROM (SELECT i, md5(i::VARCHAR) m FROM range(3000000) t(i) ORDER BY m)")
    assert n.fetchone()[0] == 3000000
    assert not (tmp_path / ".tmp").exists()
    con.close()
    assert not (tmp_path / "work" / "duckdb").exists()  # DuckDB removes its folder on close


def test_engine_spills_under_the_lake_staging(lake: Path) -> None:
    store = LakeStore.open(lake)
    eng = Engine(store)
    spill = Path(_setting(eng._con, "temp_directory"))
    assert spill.parent.parent == lake / "_staging" and spill.name == "duckdb"
    assert (spill.parent / ".owner").exists()
    store._clean_stale_staging()  # a writer's recovery leaves a live engine's folder alone
    assert spill.parent.exists()
    eng.query("SELECT count(*) FROM variants")
    eng.close()
    assert not spill.parent.exists()


def test_engine_on_a_lake_it_cannot_write_runs_without_spilling(lake: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    # the tests run as root, who writes to read-only folders: the check the engine makes is stood in for
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == lake else real_access(p, m))
    before = sorted((lake / "_staging").iterdir()) if (lake / "_staging").exists() else []
    eng = Engine(LakeStore.open(lake))
    assert _setting(eng._con, "temp_directory") == ""
    assert eng.query("SELECT count(*) AS n FROM variants").column("n")[0].as_py() > 0
    eng.close()
    assert (sorted((lake / "_staging").iterdir()) if (lake / "_staging").exists() else []) == before
