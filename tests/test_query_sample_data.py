"""End to end on the bundled sample data (data/sample_vcfs: three institutions, VCF.gz / VCF / BCF with
phenotype tables and a planted case/control variant): the planted variant ranks first in `assoc`, and the
three query paths agree on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Iterator[Any]:
    if not (DATA / "planted_variant.txt").exists():
        pytest.skip("data/sample_vcfs not present")
    import genolake
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    tmp = tmp_path_factory.mktemp("sample_data")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(_session_key_dir)  # reachable from every test
    try:
        lake = tmp / "lake"
        for inst, name, ref in (("north", "north.vcf.gz", False), ("south", "south.vcf", True), ("east", "east.bcf", False)):
            ingest(lake, inst, [DATA / name], absent_as_ref=ref, workers=0)
            rep = load_phenotypes(lake, inst, DATA / f"{inst}.phenotypes.tsv")
            assert rep["in_table_not_in_lake"] == 0 and rep["in_lake_not_in_table"] == 0
        with genolake.open(lake) as lk:
            yield lk
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def test_planted_variant_ranks_first(demo_lake: Any) -> None:
    planted = (DATA / "planted_variant.txt").read_text().split()[0]
    contig, pos, ref, alt = planted.split("-")
    top = demo_lake.assoc("case_status", case="case", region=f"{contig}:{int(pos) - 200_000}-{int(pos) + 200_000}",
                          min_ac=5).to_pylist()[0]
    assert (top["pos"], top["ref"], top["alt"]) == (int(pos), ref, alt)
    assert top["p"] < 1e-4 and top["or"] > 1


def test_paths_agree_on_the_planted_variant(demo_lake: Any) -> None:
    planted = (DATA / "planted_variant.txt").read_text().split()[0]
    rep = demo_lake.variant(planted)
    joint = rep["frequencies"][0]
    contig, pos, ref, alt = planted.split("-")
    reg = [r for r in demo_lake.region(f"{contig}:{pos}-{pos}").to_pylist() if (r["ref"], r["alt"]) == (ref, alt)]
    assert (reg[0]["ac"], reg[0]["an"]) == (joint["ac"], joint["an"])
    carriers = demo_lake.carriers(planted)
    assert carriers.num_rows == sum(p["carriers"] for p in rep["phenotypes"] if p["phenotype"] == "sex")
    cases = {p["value"]: p for p in rep["phenotypes"] if p["phenotype"] == "case_status"}
    assert demo_lake.carriers(planted, where="case_status = 'case'").num_rows == cases["case"]["carriers"]
