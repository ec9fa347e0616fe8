"""Ingest of real 1000 Genomes files, checked from outside: every record re-read with cyvcf2 (verify) and the
site counts recomputed by bcftools +fill-tags (see test_ingest_counts.py for the oracle and its caveats)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ingest_counts import fill_tags, lake_counts

import genolake
from genolake.ingest.pipeline import ingest
from genolake.ingest.verify import VerificationError, verify_files
from genolake.store import write_parquet

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"

REAL_GRCH37 = [
    "hail_sample_1kg_chr20_100s.vcf.gz",
    "va_hapmap_exome_chr22_22s.vcf.gz",
    "1kg_phase3_broad_chr20_2535s.vcf.gz",
]
REAL_GRCH38 = ["b2z_1kg_nygc_chr22_100s.vcf.gz", "b2z_1kg_2020_chrM_3s.vcf.gz"]
PLOIDY_EDGE = ["edge/bio2zarr__mixed_ploidy.vcf.gz", "edge/bio2zarr__triploid.vcf.gz"]


@pytest.fixture(scope="module")
def lake37(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("real") / "lake37"
    for i, name in enumerate(REAL_GRCH37 + PLOIDY_EDGE):
        ingest(lake, f"inst{i}", [DATA / name], build="GRCh37", workers=0)
    return lake


@pytest.fixture(scope="module")
def lake38(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("real") / "lake38"
    for i, name in enumerate(REAL_GRCH38):
        ingest(lake, f"inst{i}", [DATA / name], build="GRCh38", workers=0)
    return lake


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH37 + PLOIDY_EDGE)))
def test_round_trip_grch37(lake37: Path, i: int, name: str) -> None:
    assert verify_files(lake37, f"inst{i}", [DATA / name]) > 0


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH38)))
def test_round_trip_grch38(lake38: Path, i: int, name: str) -> None:
    assert verify_files(lake38, f"inst{i}", [DATA / name]) > 0


def test_round_trip_sample_data(tmp_path: Path) -> None:
    """The bundled three institutions: bgzip+tbi, plain VCF with chr20, BCF with multi-allelic records."""
    lake = tmp_path / "lake"
    for inst, name in (("north", "north.vcf.gz"), ("south", "south.vcf"), ("east", "east.bcf")):
        ingest(lake, inst, [SAMPLE / name], workers=0)
        assert verify_files(lake, inst, [SAMPLE / name]) > 4000
    lk = genolake.open(lake)
    # `south` wrote chr20, the others 20: one contig in the lake
    assert lk.sql("SELECT DISTINCT contig FROM variant_files").to_pylist() == [{"contig": "20"}]


def test_verify_notices_a_different_file(lake37: Path) -> None:
    with pytest.raises(VerificationError, match="in the lake as institution 'inst1', not 'inst0'"):
        verify_files(lake37, "inst0", [DATA / "va_hapmap_exome_chr22_22s.vcf.gz"])
    with pytest.raises(VerificationError, match="not in the lake"):
        verify_files(lake37, "inst0", [DATA / "b2z_1kg_2020_chrM_3s.vcf.gz"])


@pytest.fixture
def small_lake(tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    ingest(lake, "x", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"], build="GRCh37", workers=0)
    return lake


def _rewrite(lake: Path, table: str, change: object) -> None:
    """Rewrite the table's (only) Parquet file in place, as a disk error or a hand edit would."""
    from genolake.schema import TABLES

    (path,) = [f for f in (lake / table).rglob("*.parquet")]
    t = pq.read_table(path)
    write_parquet(TABLES[table], change(t), path)  # type: ignore[operator]


def _set(t: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = t[column].to_pylist()
    values[row] = value
    return t.set_column(t.schema.get_field_index(column), column, pa.array(values, t[column].type)).cast(t.schema)


def _recode(t: pa.Table, old: str, new: str | None) -> pa.Table:
    """The genotypes rows with the first stored call ``old`` (a genotype text) recoded as ``new`` (None: the call
    is dropped, as if it were 0/0), through the lake's own codec."""
    from genolake import genotypes as gtc

    mat = gtc.unpack(t, 100)  # the file's 100 samples
    row, col, k = gtc.stored_calls(t)
    i = int(np.flatnonzero(k == gtc.code_text(old))[0])
    mat[row[i], col[i]] = 0 if new is None else gtc.code_text(new)
    symbols, _over = gtc.alphabet(mat)
    out = t.set_column(t.schema.get_field_index("gt"), "gt", gtc.pack(mat, symbols))
    out = out.set_column(out.schema.get_field_index("gt_symbols"), "gt_symbols", pa.array([symbols] * t.num_rows))
    if new is None:  # its FORMAT values go with it
        for name in gtc.FORMAT_FIELDS:
            lists = out[name].to_pylist()
            before = int((row[:i] == row[i]).sum())  # stored calls of the row before it
            del lists[int(row[i])][before]
            out = out.set_column(out.schema.get_field_index(name), name, pa.array(lists, out[name].type))
    return out


def _set_gq(t: pa.Table) -> pa.Table:
    lists = t["gq"].to_pylist()
    r = next(i for i, x in enumerate(lists) if x)
    lists[r][0] = 1234
    return t.set_column(t.schema.get_field_index("gq"), "gq", pa.array(lists, t["gq"].type))


@pytest.mark.parametrize("tamper,message", [
    (lambda t: _recode(t, "0/1", "1/1"), "VCF 0/1, lake 1/1"),
    (lambda t: _recode(t, "0/1", None), "VCF 0/1, lake nothing|VCF 0/1, lake 0/0"),
    (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "a call is stored twice"),
    (_set_gq, "GQ"),
])
def test_verify_notices_tampered_calls(small_lake: Path, tamper: object, message: str) -> None:
    verify_files(small_lake, "x", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"])  # as ingested: agrees
    _rewrite(small_lake, "genotypes", tamper)
    with pytest.raises(VerificationError, match=message):
        verify_files(small_lake, "x", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"])


@pytest.mark.parametrize("tamper,message", [
    (lambda t: _set(t, "an", 0, t["an"][0].as_py() + 2), "AC/AN"),
    (lambda t: _set(t, "alt", 0, "T" if t["alt"][0].as_py() != "T" else "G"), "missing from the lake"),
    (lambda t: t.slice(1), "missing from the lake"),
])
def test_verify_notices_tampered_variants(small_lake: Path, tamper: object, message: str) -> None:
    _rewrite(small_lake, "variants", tamper)
    with pytest.raises(VerificationError, match=message):
        verify_files(small_lake, "x", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"])


@pytest.mark.parametrize("pos,message", [(1, "lake has 347 variants for the file, VCF 346"), (None, "stored twice")])
def test_verify_notices_an_extra_variant_row(small_lake: Path, pos: int | None, message: str) -> None:
    def extra(t: pa.Table) -> pa.Table:
        row = t.slice(0, 1) if pos is None else _set(t.slice(0, 1), "pos", 0, pos)
        return pa.concat_tables([t, row])

    _rewrite(small_lake, "variants", extra)
    with pytest.raises(VerificationError, match=message):
        verify_files(small_lake, "x", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"])


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH37 + PLOIDY_EDGE))[:-1])
def test_site_counts_equal_bcftools_grch37(lake37: Path, i: int, name: str) -> None:
    """1000 Genomes chr20/chr22 and the mixed-ploidy file (the triploid one is hand-checked elsewhere)."""
    assert lake_counts(lake37, f"inst{i}") == fill_tags(DATA / name)


@pytest.mark.parametrize("i,name", list(enumerate(REAL_GRCH38)))
def test_site_counts_equal_bcftools_grch38(lake38: Path, i: int, name: str) -> None:
    """1000 Genomes (NYGC) chr22, and chrM (whose calls are written diploid: nhemi 0, as bcftools says)."""
    assert lake_counts(lake38, f"inst{i}") == fill_tags(DATA / name)
