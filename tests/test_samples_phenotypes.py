"""Phenotypes of people not in the lake (issue 9): counted, not stored, unless --keep-unmatched; a later ingest
of those people (a second sample batch of the institution) picks the kept rows up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genolake.ingest.pipeline import ingest
from genolake.query.lake import Lake

SAMPLE_VCFS = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"
NORTH = SAMPLE_VCFS / "north.vcf.gz"
PHENO = SAMPLE_VCFS / "north.phenotypes.tsv"


@pytest.fixture()
def batches(tmp_path: Path) -> tuple[Path, Path]:
    names = subprocess.run(["bcftools", "query", "-l", str(NORTH)], capture_output=True, text=True,
                           check=True).stdout.split()
    out = []
    for tag, sel in (("first", names[:80]), ("second", names[80:])):
        dst = tmp_path / f"{tag}.vcf.gz"
        subprocess.run(["bcftools", "view", "-s", ",".join(sel), "-Oz", "-o", str(dst), str(NORTH)], check=True)
        out.append(dst)
    return out[0], out[1]


def _joined(lake: Path) -> int:
    with Lake(lake) as lk:
        return int(lk.sql("SELECT count(DISTINCT sample_id) AS n FROM phenotypes p "
                          "JOIN samples s USING (institution, sample_id)").to_pylist()[0]["n"])


def _stored(lake: Path) -> int:
    with Lake(lake) as lk:
        return int(lk.sql("SELECT count(DISTINCT sample_id) AS n FROM phenotypes_long").to_pylist()[0]["n"])


@pytest.mark.parametrize("keep", [False, True])
def test_unmatched_rows_counted_or_kept_for_a_later_ingest(batches: tuple[Path, Path], tmp_path: Path,
                                                           keep: bool) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "north", [batches[0]], workers=0)
    args = [sys.executable, "-m", "genolake", "phenotypes", "load", str(PHENO), "--lake", str(lake), "-i", "north",
            "--format", "json"] + (["--keep-unmatched"] if keep else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    assert '"in_table_not_in_lake": 20' in out.stdout
    assert f'"stored_samples": {100 if keep else 80}' in out.stdout
    assert _stored(lake) == (100 if keep else 80)
    ingest(lake, "north", [batches[1]], workers=0)  # the other 20 people arrive later
    assert _joined(lake) == (100 if keep else 80)


def test_remove_reaches_kept_phenotype_rows(batches: tuple[Path, Path], tmp_path: Path) -> None:
    """A person known only by kept phenotype rows (not ingested yet) can be withdrawn too."""
    from genolake.phenotypes import load_phenotypes
    from genolake.samples.remove import remove_samples

    lake = tmp_path / "lake"
    ingest(lake, "north", [batches[0]], workers=0)
    load_phenotypes(lake, "north", PHENO, keep_unmatched=True)
    later = subprocess.run(["bcftools", "query", "-l", str(batches[1])], capture_output=True, text=True,
                           check=True).stdout.split()[0]
    (tmp_path / "w.txt").write_text(later + "\n")
    files_before = sorted(p.name for p in (lake / "files").rglob("*.parquet"))
    rep = remove_samples(lake, institution="north", path=tmp_path / "w.txt")
    assert (rep.removed, rep.files_rewritten, rep.files_dropped) == (1, 0, 0) and rep.phenotype_rows > 0
    assert _stored(lake) == 99
    assert sorted(p.name for p in (lake / "files").rglob("*.parquet")) == files_before
