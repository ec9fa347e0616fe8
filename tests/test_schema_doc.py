"""docs/SCHEMA.md is generated from genolake/schema.py, and written files carry exactly those schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from genolake.ingest.pipeline import ingest
from genolake.schema import FILE_TABLES, TABLES

DOC = Path(__file__).resolve().parent.parent / "docs" / "SCHEMA.md"


def test_schema_doc_is_current() -> None:
    out = subprocess.run([sys.executable, "-m", "genolake.schema"], capture_output=True, text=True, check=True).stdout
    assert DOC.read_text() == out, "docs/SCHEMA.md is stale: python -m genolake.schema > docs/SCHEMA.md"


def test_written_files_match_the_schema(tmp_path: Path) -> None:
    data = Path(__file__).resolve().parent / "data"
    lake = tmp_path / "lake"
    ingest(lake, "x", [data / "hail_sample_1kg_chr20_100s.vcf.gz"], build="GRCh37", workers=0,
           callable_regions=None)
    for name in (*FILE_TABLES, "files"):
        files = list((lake / name).rglob("*.parquet"))
        if name == "callable":
            assert not files
            continue
        assert files, name
        for f in files:
            got = pq.read_schema(f)
            want = TABLES[name].arrow_schema
            assert got.names == want.names, name
            norm = lambda ts: [str(t).replace("element:", "item:") for t in ts]  # noqa: E731 - list field name
            assert norm(got.types) == norm(want.types), name
