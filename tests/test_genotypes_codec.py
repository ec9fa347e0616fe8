"""The genotype store's codec (genolake/genotypes.py): its two expansions agree, and what it writes reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import genolake
from genolake import genotypes as gtc
from genolake.ingest.pipeline import ingest

DATA = Path(__file__).parent / "data"
COLUMNS = ["institution", "pos", "ref", "alt", "sample_id", "gt", "ploidy", "called", "alt_count", "phased", "gq",
           "dp", "ad_ref", "ad_alt", "file_id"]


def _rows(t: pa.Table) -> list[tuple[object, ...]]:
    return sorted(zip(*(t[c].to_pylist() for c in COLUMNS), strict=True), key=repr)


def test_numpy_and_sql_expansions_agree(tmp_path: Path) -> None:
    """`expand` (point reads, aggregate, Hail's input) and `calls_sql` (the `calls` view) give the same calls, on
    a file with FORMAT fields and on one with haploid, triploid and missing calls (other-ploidy texts)."""
    lake = tmp_path / "lake"
    ingest(lake, "a", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"], build="GRCh37", workers=0)
    ingest(lake, "b", [DATA / "edge" / "bio2zarr__mixed_ploidy.vcf.gz"], build="GRCh37", workers=0)
    lk = genolake.open(lake)
    eng = lk.engine
    by_sql = lk.sql(f"SELECT {', '.join(COLUMNS)} FROM calls")
    rows = pa.concat_tables([pq.read_table(p) for p in sorted((lake / "genotypes").rglob("*.parquet"))])
    by_numpy = gtc.expand(rows, eng.file_pseudonyms, COLUMNS)
    assert by_sql.num_rows == by_numpy.num_rows > 7000
    assert _rows(by_sql) == _rows(by_numpy)
    assert any(g not in gtc.TEXT for g in by_numpy["gt"].to_pylist())  # other-ploidy texts were exercised


def test_encode_keeps_codes_beyond_the_alphabet_as_texts() -> None:
    """More distinct codes than 15 symbols: the rarest become other-texts, and the calls read back the same."""
    rng = np.random.default_rng(1)
    codes = rng.integers(1, gtc.OTHER, size=(6, 40)).astype(np.uint8)  # 21 distinct nonzero codes
    codes[0, :5] = 0
    before = codes.copy()
    gt, symbols, other = gtc.encode(codes, {})
    assert len(symbols) == gtc.MAX_SYMBOLS
    rows = pa.table({"file_id": ["f"] * 6, "gt": gt, "gt_symbols": [symbols] * 6, "other_gt": other})
    names = pa.array([f"s{i}" for i in range(40)])
    back = gtc.expand(rows, lambda _f: names, ["sample_id", "gt"])
    want = [(f"s{c}", gtc.TEXT[int(before[r, c])]) for r in range(6) for c in range(40) if before[r, c]]
    assert list(zip(back["sample_id"].to_pylist(), back["gt"].to_pylist(), strict=True)) == want


def test_drop_samples_removes_their_calls_and_moves_the_rest_down() -> None:
    codes = np.array([[0, 6, 9, 0, 6], [20, 0, 0, 21, 6]], dtype=np.uint8)
    gt, symbols, other = gtc.encode(codes.copy(), {})
    gq = gtc.list_column(np.count_nonzero(codes, axis=1), np.array([10, 20, 30, 40, 50, 60]), -1)
    rows = pa.table({"file_id": ["f", "f"], "gt": gt, "gt_symbols": [symbols] * 2, "other_gt": other, "gq": gq})
    kept = gtc.drop_samples(rows, [1, 3], 5)
    assert (gtc.unpack(kept, 3) == codes[:, [0, 2, 4]]).all()
    assert kept["gq"].to_pylist() == [[20, 30], [40, 60]]
