"""The store answers every file and path fact: hive folder names, the contig / institution / file_id of a data
file, and the data files of a table per contig and institution (the quick Delta reader, checked against
deltalake and against the files on disk)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from query_fixtures import *  # noqa: F403 - the sample_lake fixture
from query_fixtures import SampleLake

from genolake.schema import TABLES
from genolake.store import (
    LakeStore,
    contig_of,
    file_id_of,
    hive_quote,
    hive_unquote,
    partition_dir,
    partition_values,
)


def test_hive_names_round_trip() -> None:
    for value in ("chr20", "HLA-A*01:01", "north site/2", "Zürich", "a=b", "~x", ""):
        quoted = hive_quote(value)
        assert "/" not in quoted and "=" not in quoted
        assert hive_unquote(quoted) == value
    rel = f"{partition_dir(TABLES['genotypes'], {'institution': 'St. Anna/Wien', 'contig': 'HLA-A*01'})}/f1.parquet"
    assert partition_values(rel) == {"institution": "St. Anna/Wien", "contig": "HLA-A*01"}
    assert contig_of(rel) == "HLA-A*01"
    assert contig_of("institution=x/part.parquet") is None
    assert contig_of("/lake/genotypes/institution=x/contig=chr1/f0123456789abcdef01234567-0.parquet") == "chr1"


def test_file_id_of() -> None:
    fid = "f0123456789abcdef01234567"
    assert file_id_of(f"institution=x/contig=20/{fid}-00001.parquet") == fid
    assert file_id_of(f"{fid}.parquet") == fid
    assert file_id_of("institution=x/20261130T061000-0123456789ab.parquet") is None  # phenotypes: by txn
    assert file_id_of(f"institution=x/{fid}x.parquet") is None


def test_data_files_per_table_contig_and_institution(sample_lake: SampleLake) -> None:
    store = LakeStore.open(sample_lake.path)
    for table in ("files", "genotypes", "variants", "samples", "ploidy", "phenotypes"):
        every = store.data_files(table)
        assert [f.relpath for f in every] == sorted(store.relpaths(table)), table
        on_disk = sorted(str(p.relative_to(store.table_path(table))) for p in store.table_path(table).rglob("*.parquet")
                         if "_delta_log" not in p.parts)
        assert [f.relpath for f in every] == on_disk, table  # a fresh lake: every file is in the current version
        for f in every:
            assert Path(f.path) == store.table_path(table) / f.relpath
            assert f.institution == partition_values(f.relpath).get("institution")
    genotypes = store.data_files("genotypes")
    contigs = {f.contig for f in genotypes}
    institutions = {f.institution for f in genotypes}
    assert len(institutions) == 3 and None not in contigs
    committed = set(store.committed_file_ids())
    for f in genotypes:
        assert f.file_id in committed
        got = pq.read_table(f.path, columns=["contig", "institution", "file_id"]).to_pylist()
        assert {(r["contig"], r["institution"], r["file_id"]) for r in got} == {(f.contig, f.institution, f.file_id)}
    for contig in contigs:
        for inst in institutions:
            want = [f for f in genotypes if f.contig == contig and f.institution == inst]
            assert store.data_files("genotypes", contig=contig, institution=inst) == want
    assert store.data_files("genotypes", contig="no-such-contig") == []
    # tables of later stages that were never written have no files (and no folder)
    assert store.data_files("annotations") == []


def test_delta_version_and_lake_stamp(sample_lake: SampleLake, tmp_path: Path) -> None:
    from genolake.store import delta_version, lake_stamp

    store = LakeStore.open(sample_lake.path)
    stamp = dict(lake_stamp(sample_lake.path))
    for table in ("files", "genotypes", "variants", "phenotypes"):
        assert delta_version(store.table_path(table)) == store.delta(table).version() == stamp[table], table
    assert delta_version(tmp_path / "no-table") is None
    assert set(stamp) == {p.parent.name for p in sample_lake.path.glob("*/_delta_log")}
    assert lake_stamp(tmp_path / "no-lake") == ()


def test_commits_record_each_files_position_range_and_rows(sample_lake: SampleLake) -> None:
    """The store answers which positions a data file holds from the Delta log (recorded at commit), equal to
    the range in the file's own Parquet statistics and to its rows; tables without positions have none."""
    import pyarrow.compute as pc

    store = LakeStore.open(sample_lake.path)
    for table in ("genotypes", "variants"):
        files = store.data_files(table)
        assert files
        for f in files:
            pos = pq.read_table(f.path, columns=["pos"])["pos"]
            mm = pc.min_max(pos).as_py()
            assert f.pos_range == (mm["min"], mm["max"]), f.relpath
            assert f.rows == len(pos) == pq.ParquetFile(f.path).metadata.num_rows
        # deltalake reads the same statistics
        adds = store.delta(table).get_add_actions(flatten=True)
        cols = [adds.column(c).to_pylist() for c in ("path", "min.pos", "max.pos")]
        got = {p: (lo, hi) for p, lo, hi in zip(*cols, strict=True)}
        assert got == {f.relpath: f.pos_range for f in files}
    assert all(f.pos_range is None for f in store.data_files("samples"))
