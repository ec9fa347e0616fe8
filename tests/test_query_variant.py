"""`Lake.variant` / `carriers` on a tiny hand-built lake with exact, hand-computed answers.

Three institutions: `one` (4 samples; a multi-allelic site, a missing and a partly missing call, haploid
chrX calls of males), `two` (2 samples, --absent-as-ref), `three` (1 sample, --callable-regions 20:150-250).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genolake.errors import UserInputError

HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=20,length=63025520>\n##contig=<ID=X,length=155270560>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
)
ONE = HEADER + "A\tB\tC\tD\n" + (
    "20\t100\trs100\tA\tC,G\t50\tPASS\t.\tGT\t1/2\t0/1\t./.\t2/2\n"
    "20\t200\trs999\tA\tT\t50\tPASS\t.\tGT\t0/1\t0/0\t1/1\t./1\n"
    "X\t500\t.\tG\tA\t50\tPASS\t.\tGT\t1\t0\t0/1\t1/1\n"
)
TWO = HEADER + "E\tF\n" + (
    "20\t200\trs999\tA\tT\t50\tPASS\t.\tGT\t0/1\t0/0\n"
    "X\t600\t.\tC\tT\t50\tPASS\t.\tGT\t1\t0/0\n"
)
THREE = HEADER + "G\n" + "20\t250\t.\tC\tA\t50\tPASS\t.\tGT\t0/1\n"
SEX = {"A": "male", "B": "male", "C": "female", "D": "female", "E": "male", "F": "female", "G": "female"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Iterator[Any]:
    import genolake
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    tmp = tmp_path_factory.mktemp("tiny")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(_session_key_dir)  # reachable from every test
    try:
        for name, text in (("one", ONE), ("two", TWO), ("three", THREE)):
            (tmp / f"{name}.vcf").write_text(text)
        (tmp / "three.bed").write_text("20\t149\t250\n")
        lake = tmp / "lake"
        ingest(lake, "one", [tmp / "one.vcf"], workers=0)
        ingest(lake, "two", [tmp / "two.vcf"], absent_as_ref=True, workers=0)
        ingest(lake, "three", [tmp / "three.vcf"], callable_regions=tmp / "three.bed", workers=0)
        for inst, samples in (("one", "ABCD"), ("two", "EF"), ("three", "G")):
            f = tmp / f"{inst}.tsv"
            f.write_text("sample_id\tsex\n" + "".join(f"{s}\t{SEX[s]}\n" for s in samples))
            load_phenotypes(lake, inst, f)
        lk = genolake.open(lake)
        lk.tmp = tmp  # type: ignore[attr-defined]
        yield lk
        lk.close()
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def freqs(rep: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {f["scope"]: (f["ac"], f["an"], f["nhomalt"], f["nhemi"]) for f in rep["frequencies"]}


def test_multiallelic_split_missing_and_absent_as_ref(tiny: Any) -> None:
    # 1/2 -> C: 1/0, G: 0/1; 2/2 -> C: 0/0 (implied), G: 1/1; ./. counts 0; two's E, F count 2 each (absent-as-ref)
    assert freqs(tiny.variant("20-100-A-C")) == {
        "joint": (2, 10, 0, 0), "one": (2, 6, 0, 0), "two": (0, 4, 0, 0), "three": (0, 0, 0, 0)}
    assert freqs(tiny.variant("20:100:A:G")) == {
        "joint": (3, 10, 1, 0), "one": (3, 6, 1, 0), "two": (0, 4, 0, 0), "three": (0, 0, 0, 0)}
    rep = tiny.variant("20-100-A-G")
    assert rep["variant"]["multiallelic"] is True and rep["variant"]["rsid"] == "rs100"
    assert rep["frequencies"][0]["af"] == pytest.approx(0.3)


def test_partly_missing_call_and_callable_region(tiny: Any) -> None:
    # ./1 adds 1 to AC and AN; G (three, callable 20:150-250) counts 2 at 20:200, which its file does not list
    assert freqs(tiny.variant("chr20-200-A-T")) == {
        "joint": (5, 13, 1, 0), "one": (4, 7, 1, 0), "two": (1, 4, 0, 0), "three": (0, 2, 0, 0)}
    # outside the callable region G does not count; inside but on a site no file lists: ac 0
    assert freqs(tiny.variant("20-100-A-C"))["three"] == (0, 0, 0, 0)
    unseen = tiny.variant("20-220-A-T")
    assert unseen["variant"]["observed"] is False
    assert freqs(unseen) == {"joint": (0, 6, 0, 0), "one": (0, 0, 0, 0), "two": (0, 4, 0, 0), "three": (0, 2, 0, 0)}
    assert unseen["frequencies"][1]["af"] is None


def test_haploid_calls_and_ploidy_of_absent_sites(tiny: Any) -> None:
    # A: 1 (hemizygous), B: 0 (haploid ref, stored), C: 0/1, D: 1/1; two's E is haploid on X (its X:600 call)
    assert freqs(tiny.variant("X-500-G-A")) == {
        "joint": (4, 9, 1, 1), "one": (4, 6, 1, 1), "two": (0, 3, 0, 0), "three": (0, 0, 0, 0)}
    by_sex = {p["value"]: p for p in tiny.variant("chrX-500-G-A")["phenotypes"] if p["phenotype"] == "sex"}
    assert {k: (v["samples"], v["carriers"], v["ac"], v["an"], v["nhomalt"], v["nhemi"]) for k, v in by_sex.items()} == {
        "male": (3, 1, 1, 3, 0, 1), "female": (3, 2, 3, 6, 1, 0)}


def test_breakdown_at_a_callable_site(tiny: Any) -> None:
    by_sex = {p["value"]: p for p in tiny.variant("20-200-A-T")["phenotypes"] if p["phenotype"] == "sex"}
    # male A 0/1, B 0/0, E 0/1; female C 1/1, D ./1, F 0/0, G (callable fill) 2
    assert {k: (v["samples"], v["carriers"], v["ac"], v["an"]) for k, v in by_sex.items()} == {
        "male": (3, 2, 2, 6), "female": (4, 2, 3, 7)}


def test_carriers_with_genotypes(tiny: Any) -> None:
    from genolake.store import LakeStore

    pseudo = LakeStore.open(tiny.path).pseudonymiser()
    rows = tiny.carriers("20-200-A-T").to_pylist()
    got = {(r["institution"], r["sample_id"]): (r["gt"], r["alt_count"], r["sex"]) for r in rows}
    assert got == {
        ("one", pseudo("one", "A")): ("0/1", 1, "male"),
        ("one", pseudo("one", "C")): ("1/1", 2, "female"),
        ("one", pseudo("one", "D")): ("./1", 1, "female"),
        ("two", pseudo("two", "E")): ("0/1", 1, "male"),
    }
    assert tiny.carriers("20-200-A-T", where="sex = 'female' AND institution = 'one'").num_rows == 2
    assert tiny.carriers("X-500-G-A", where="sex = 'male'").to_pylist()[0]["gt"] == "1"


def test_rsid_lookup(tiny: Any) -> None:
    assert tiny.variant("rs999")["variant"]["id"] == "20-200-A-T"
    assert tiny.variant("RS999")["variant"]["id"] == "20-200-A-T"
    with pytest.raises(UserInputError, match=r"rs100 names 2 alleles \(20-100-A-C, 20-100-A-G\)"):
        tiny.variant("rs100")
    with pytest.raises(UserInputError, match="rs1234 is not in the lake"):
        tiny.variant("rs1234")


def test_region_and_site_frequencies_agree_with_variant(tiny: Any) -> None:
    reg = {(r["contig"], r["pos"], r["ref"], r["alt"]): (r["ac"], r["an"]) for r in tiny.region("20").to_pylist()}
    assert reg == {("20", 100, "A", "C"): (2, 10), ("20", 100, "A", "G"): (3, 10), ("20", 200, "A", "T"): (5, 13),
                   ("20", 250, "C", "A"): (1, 2 + 4)}  # one (no_call) does not count where it has no record
    x = tiny.region("chrX").to_pylist()
    assert [(r["pos"], r["ac"], r["an"], r["nhemi"]) for r in x] == [(500, 4, 9, 1), (600, 1, 3, 1)]
    view = {(r["scope"], r["pos"], r["alt"]): (r["ac"], r["an"])
            for r in tiny.sql("SELECT * FROM site_frequencies WHERE contig = '20'").to_pylist()}
    assert view[("joint", 200, "T")] == (5, 13) and view[("three", 200, "T")] == (0, 2)
    assert ("three", 100, "C") not in view


def test_precomputed_frequencies_used_when_current(tiny: Any, tmp_path: Path) -> None:
    """After `genolake aggregate` the frequencies come from allele_frequencies and are the same numbers."""
    import shutil

    import genolake

    freq = pytest.importorskip("genolake.compute.aggregate")
    lake = tmp_path / "lake"
    shutil.copytree(tiny.path, lake)
    freq.aggregate(lake, workers=0)
    with genolake.open(lake) as lk:
        for vid in ("20-100-A-C", "20-100-A-G", "20-200-A-T", "X-500-G-A"):
            rep = lk.variant(vid)
            assert rep["variant"]["source"] == "allele_frequencies", vid
            assert freqs(rep) == freqs(tiny.variant(vid)), vid
