"""Regression: a new lake held an empty `annotations` (or `allele_frequencies`, `phenotypes`) table whenever the
creating process had imported the module that registers it, so `query gene` answered an empty list instead of
"the lake has no annotations yet" (found as a test-order dependent failure of the serve tests). Every table is now
declared in `genolake.schema`, whatever modules are imported: a new lake must still hold only the ingest tables."""

from __future__ import annotations

from pathlib import Path

import pytest

import genolake
from genolake.errors import UserInputError
from genolake.ingest.pipeline import ingest
from genolake.schema import FILE_TABLES, TABLES
from genolake.store import LakeStore

NORTH = Path(__file__).parents[1] / "data" / "sample_vcfs" / "north.vcf.gz"


def test_a_new_lake_holds_only_the_ingest_tables(tmp_path: Path) -> None:
    ingest(tmp_path / "lake", "north", [NORTH], workers=0)
    store = LakeStore.open(tmp_path / "lake")
    assert {"annotations", "allele_frequencies", "phenotypes"} <= set(TABLES)  # declared, not created
    for name in ("annotations", "allele_frequencies", "phenotypes"):
        assert not store.has_table(name), name
    assert all(store.has_table(t) for t in (*FILE_TABLES, "files"))
    with genolake.open(tmp_path / "lake") as lk, pytest.raises(UserInputError, match="no annotations yet"):
        from genolake.query.genes import gene_variants

        gene_variants(lk, "BRCA2")
