"""Sample lakes for the query tests, built once per session from real data (Hail's 100-sample chr20 VCF).

``sample_lake``: the VCF split by samples into three institutions with ``bcftools view -s``:

- ``north`` (40 samples): every site, absent sites are no-calls (default);
- ``south`` (30 samples): every 5th record dropped, ingested ``--absent-as-ref``;
- ``east`` (30 samples): every 3rd record dropped, ingested with ``--callable-regions`` (two BED intervals);

with phenotypes loaded from a TSV (north), a CSV (south) and a PED with extra columns (east), and the
bcftools oracle (``bcftools merge`` of the files, absent sites filled with 0/0 where the lake counts them).

Test modules use ``from query_fixtures import *`` (pytest puts tests/ on sys.path) for the fixtures.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["opened", "sample_lake"]  # the fixtures, for `from query_fixtures import *`

REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = [
    REPO / "tests" / "data" / "hail_sample_1kg_chr20_100s.vcf.gz",
    REPO.parent / "shared" / "data" / "vcf" / "hail_sample_1kg_chr20_100s.vcf.gz",
    Path("/work/shared/data/vcf/hail_sample_1kg_chr20_100s.vcf.gz"),
]
EAST_BED = [("20", 10_000_000, 13_000_000), ("20", 15_000_000, 16_000_000)]  # BED: 0-based, half-open


def hail_vcf() -> Path:
    for c in _CANDIDATES:
        if c.exists():
            return c
    pytest.skip("hail_sample_1kg_chr20_100s.vcf.gz not found (tests/data or ../shared/data/vcf)")
    raise AssertionError


def need_bcftools() -> None:
    if shutil.which("bcftools") is None or shutil.which("bgzip") is None:
        pytest.skip("bcftools/bgzip not on PATH")


def sh(*args: str | Path, stdout: Path | None = None) -> str:
    if stdout is not None:
        with open(stdout, "wb") as fh:
            subprocess.run([str(a) for a in args], check=True, stdout=fh)
        return ""
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def drop_records(src: Path, dst: Path, every: int, samples: list[str]) -> None:
    """Samples ``samples`` of ``src`` without every ``every``-th record, bgzipped and indexed."""
    text = sh("bcftools", "view", "-s", ",".join(samples), src)
    out, k = [], 0
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            out.append(line)
            continue
        k += 1
        if k % every != 0:
            out.append(line)
    plain = dst.with_suffix("")
    plain.write_text("".join(out))
    sh("bgzip", "-f", plain)
    sh("bcftools", "index", "-f", "-t", dst)


def two_institution_lake(tmp: Path) -> Path:
    """A lake of the 1000 Genomes chr20 sample: institution ``one`` (the first 50 samples, every record) and
    ``two`` (the other 50, every 4th record dropped), ingested in process."""
    from genolake.ingest.pipeline import ingest

    need_bcftools()
    src = hail_vcf()
    samples = sh("bcftools", "query", "-l", src).split()
    a, b = tmp / "a.vcf.gz", tmp / "b.vcf.gz"
    drop_records(src, a, 10**9, samples[:50])
    drop_records(src, b, 4, samples[50:])
    lake_path = tmp / "lake"
    ingest(lake_path, "one", [a], build="GRCh37", workers=0)
    ingest(lake_path, "two", [b], build="GRCh37", workers=0)
    return lake_path


@dataclass
class SampleLake:
    path: Path
    tmp: Path
    institutions: dict[str, list[str]]  # institution -> raw sample IDs
    vcfs: dict[str, Path]
    phenotypes: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)  # raw ID -> {name: value}
    oracle: Path | None = None  # merged, filled VCF (bgzip)
    key_dir: Path | None = None

    def institution_of(self, sample: str) -> str:
        return next(i for i, s in self.institutions.items() if sample in s)


def _write_phenotypes(tmp: Path, inst: dict[str, list[str]]) -> tuple[dict[str, Path], dict[str, dict[str, object]]]:
    rng = random.Random(20240611)
    truth: dict[str, dict[str, object]] = {}
    for samples in inst.values():
        for s in samples:
            row: dict[str, object] = {
                "sex": rng.choice(["male", "female"]),
                "case_status": rng.choice(["case", "control", "control", None]),
                "age": rng.choice([rng.randint(18, 90), rng.randint(18, 90), None]),
                "hpo": rng.choice([["HP:0001250", "HP:0004322"], ["HP:0001250"], ["HP:0000118"], None]),
                "population": rng.choice(["AFR", "EUR", "EAS"]),
            }
            truth[s] = row
    files: dict[str, Path] = {}

    def cell(v: object, sep: str = ";") -> str:
        if v is None:
            return "NA"
        if isinstance(v, list):
            return sep.join(v)
        return str(v)

    north = tmp / "north.phenotypes.tsv"
    with open(north, "w") as fh:
        fh.write("sample_id\tSex\tcase_status\tAge\thpo\tpopulation\n")
        for s in inst["north"]:
            r = truth[s]
            fh.write("\t".join([s, cell(r["sex"]), cell(r["case_status"]), cell(r["age"]), cell(r["hpo"]),
                                cell(r["population"])]) + "\n")
    files["north"] = north
    south = tmp / "south.phenotypes.csv"
    with open(south, "w") as fh:
        fh.write("Sample,sex,case_status,age,hpo,population\n")
        for s in inst["south"]:
            r = truth[s]
            hpo = cell(r["hpo"], ";")
            fh.write(",".join([s, cell(r["sex"]), cell(r["case_status"]), cell(r["age"]), hpo,
                               cell(r["population"])]) + "\n")
    files["south"] = south
    east = tmp / "east.ped"
    with open(east, "w") as fh:
        fh.write("#family_id sample_id paternal_id maternal_id sex phenotype case_status age hpo population\n")
        for k, s in enumerate(inst["east"]):
            r = truth[s]
            sex = {"male": "1", "female": "2"}[str(r["sex"])]
            aff = {"case": "2", "control": "1", None: "-9"}[r["case_status"]]  # type: ignore[index]
            father = inst["east"][k - 1] if k % 3 == 2 else "0"
            fh.write(" ".join([f"fam{k // 3}", s, father, "0", sex, aff, cell(r["case_status"]), cell(r["age"]),
                               cell(r["hpo"]), cell(r["population"])]) + "\n")
    files["east"] = east
    return files, truth


def build_oracle(tmp: Path, vcfs: dict[str, Path], inst: dict[str, list[str]]) -> Path:
    """`bcftools merge` of the three files with absent sites filled as the lake counts them: south
    (absent-as-ref) everywhere, east (callable regions) inside its BED only, north never. The 0/0 fill is
    bcftools' own (`merge -0` against north, which lists every site, then the institution's samples)."""
    north_bed = tmp / "north_in_east_bed.vcf.gz"
    sh("bcftools", "view", "-T", tmp / "east.bed", "-Oz", "-o", north_bed, vcfs["north"])
    sh("bcftools", "index", "-f", "-t", north_bed)
    filled = {"north": vcfs["north"]}
    for name, other in (("south", vcfs["north"]), ("east", north_bed)):
        both = tmp / f"{name}.plus_north.vcf.gz"
        sh("bcftools", "merge", "-m", "none", "-0", "-Oz", "-o", both, vcfs[name], other)
        out = tmp / f"{name}.filled.vcf.gz"
        sh("bcftools", "view", "-s", ",".join(inst[name]), "-Oz", "-o", out, both)
        sh("bcftools", "index", "-f", "-t", out)
        filled[name] = out
    merged = tmp / "oracle.vcf.gz"
    sh("bcftools", "merge", "-m", "none", "-Oz", "-o", merged, filled["north"], filled["south"], filled["east"])
    sh("bcftools", "index", "-f", "-t", merged)
    return merged


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Iterator[SampleLake]:
    """The three-institution lake (see the module docstring), with phenotypes and the bcftools oracle."""
    need_bcftools()
    src = hail_vcf()
    tmp = tmp_path_factory.mktemp("query_lake")
    key_dir = _session_key_dir  # the folder every test runs with (conftest), so any test can reach the key
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(key_dir)
    try:
        from genolake.ingest.pipeline import ingest
        from genolake.phenotypes import load_phenotypes

        samples = sh("bcftools", "query", "-l", src).split()
        inst = {"north": samples[:40], "south": samples[40:70], "east": samples[70:]}
        vcfs = {name: tmp / f"{name}.vcf.gz" for name in inst}
        drop_records(src, vcfs["north"], 10**9, inst["north"])
        drop_records(src, vcfs["south"], 5, inst["south"])
        drop_records(src, vcfs["east"], 3, inst["east"])
        (tmp / "east.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in EAST_BED))
        lake = tmp / "lake"
        ingest(lake, "north", [vcfs["north"]], build="GRCh37", workers=0)
        ingest(lake, "south", [vcfs["south"]], build="GRCh37", absent_as_ref=True, workers=0)
        ingest(lake, "east", [vcfs["east"]], build="GRCh37", callable_regions=tmp / "east.bed", workers=0)
        pheno_files, truth = _write_phenotypes(tmp, inst)
        load_phenotypes(lake, "north", pheno_files["north"])
        load_phenotypes(lake, "south", pheno_files["south"], sample_column="Sample")
        load_phenotypes(lake, "east", pheno_files["east"])
        oracle = build_oracle(tmp, vcfs, inst)
        yield SampleLake(lake, tmp, inst, vcfs, {"truth": truth}, oracle, key_dir)  # type: ignore[dict-item]
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


@pytest.fixture(scope="session")
def opened(sample_lake: SampleLake) -> Iterator[object]:
    """A `Lake` on the sample lake (one DuckDB connection for the session's read-only tests)."""
    import genolake

    lk = genolake.open(sample_lake.path)
    yield lk
    lk.close()


def fill_tags(vcf: Path, groups: dict[str, str] | None, tmp: Path, tag: str = "x") -> dict[tuple[str, int, str, str], dict[str, int]]:
    """INFO counts of ``bcftools +fill-tags`` (with ``-S groups`` if given) per (contig, pos, ref, alt)."""
    args: list[str | Path] = ["bcftools", "+fill-tags", vcf, "--", "-t", "AN,AC,AC_Hom,AC_Hemi"]
    if groups:
        gfile = tmp / f"groups_{tag}.txt"
        gfile.write_text("".join(f"{s}\t{g}\n" for s, g in groups.items()))
        args += ["-S", gfile]
    text = sh(*args)
    out: dict[tuple[str, int, str, str], dict[str, int]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        info = {}
        for kv in f[7].split(";"):
            k, _, v = kv.partition("=")
            if k.startswith(("AC", "AN")):
                info[k] = int(v.split(",")[0])
        out[(f[0], int(f[1]), f[3], f[4])] = info
    return out
