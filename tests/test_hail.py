"""The Hail engine computes the same `allele_frequencies` table as the Dask engine, row for row.

Marked `hail`: needs `pip install -e '.[hail]'` and a JVM (Java 11 or 17), and takes about 1.5 minutes
(Spark start-up). Run it with `python -m pytest -m hail`. Skipped when hail is not importable.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.hail
hl = pytest.importorskip("hail")

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"


def test_hail_engine_equals_dask_engine(tmp_path: Path) -> None:
    from genolake.compute.aggregate import aggregate, read_frequencies
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    lake = tmp_path / "lake"
    # three institutions: bgzip (20), plain VCF renamed chr20 and --absent-as-ref, BCF with multi-allelic records
    for inst, name in (("north", "north.vcf.gz"), ("south", "south.vcf"), ("east", "east.bcf")):
        ingest(lake, inst, [SAMPLE / name], workers=0, absent_as_ref=(inst == "south"))
        load_phenotypes(lake, inst, SAMPLE / f"{inst}.phenotypes.tsv")
    aggregate(lake, by=["sex", "case_status"], workers=0)
    dask_rows = read_frequencies(lake).to_pylist()
    aggregate(lake, by=["sex", "case_status"], engine="hail")
    hail_rows = read_frequencies(lake).to_pylist()
    assert len(dask_rows) > 50_000
    assert hail_rows == dask_rows
