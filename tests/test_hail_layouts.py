"""The Hail engine equals the Dask engine, and both equal a brute-force count from the VCF text, on the layouts of the
counting rule (docs/SCHEMA.md): one file per chromosome with the same samples, sample batches (disjoint samples,
same contigs), a mix of both, ``--absent-as-ref``, ``--callable-regions``, ``--by`` strata and ``--adj``; and
``genolake export hail`` of such a lake reads back in Hail with the genotypes of the VCF text.

The brute-force counter reads each file's records as text and applies the rule as written: within an institution a
sample is one person; at a site, a person's genotype comes from the file that lists the site; a file that does not
list it gives hom-ref when it is ``--absent-as-ref``, or ``--callable-regions`` and the site is in its BED, and only
on the contigs it has records on; otherwise the person does not count.

Tier `hail` (the extra and a JVM); about two minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_support import data_path, need_bcftools, panel, panel_id, sh, write_phenotypes

pytestmark = pytest.mark.hail
hl = pytest.importorskip("hail")

REPO = Path(__file__).resolve().parent.parent
SPLIT = 13_500_000  # records of the chr20 source past this position become contig 21: a second chromosome
BY = ["super_population", "sex"]
Key = tuple[str, int, str, str]


@dataclass
class File:
    institution: str
    path: Path
    samples: list[str]
    mode: str = "no_call"  # no_call | ref | callable
    bed: list[tuple[str, int, int]] = field(default_factory=list)  # BED rows (0-based start, end)


def _two_contigs(tmp: Path) -> Path:
    """The Hail sample VCF (100 samples, GT:AD:DP:GQ:PL, missing calls) with its second half moved to contig 21."""
    src = data_path("hail_sample_1kg_chr20_100s.vcf.gz")
    out = []
    for line in sh("bcftools", "view", src).splitlines():
        if line.startswith("##contig=<ID=20"):
            out += [line, "##contig=<ID=21>"]
        elif line.startswith("#"):
            out.append(line)
        else:
            chrom, pos, rest = line.split("\t", 2)
            out.append("\t".join(["21" if int(pos) > SPLIT else chrom, pos, rest]))
    plain = tmp / "two_contigs.vcf"
    plain.write_text("\n".join(out) + "\n")
    dst = tmp / "two_contigs.vcf.gz"
    sh("bcftools", "view", "-Oz", "-o", dst, plain)
    sh("bcftools", "index", "-f", "-t", dst)
    return dst


def _view(src: Path, dst: Path, samples: list[str], contig: str | None) -> Path:
    """``bcftools view -s`` (one contig or all), keeping only records with an alt allele in these samples, so some
    sites are absent from some files."""
    args: list[str | Path] = ["bcftools", "view", "-s", ",".join(samples), "-c", "1", "-Oz", "-o", dst]
    if contig:
        args += ["-r", contig]
    sh(*args, src)
    sh("bcftools", "index", "-f", "-t", dst)
    return dst


def _layout(tmp: Path) -> list[File]:
    """north: one file per chromosome, --absent-as-ref; south: two sample batches; east: batches x chromosomes
    (four files) with --callable-regions."""
    src = _two_contigs(tmp)
    samples = sh("bcftools", "query", "-l", src).split()
    north, south, east = samples[:40], samples[40:70], samples[70:]
    bed = [("20", 10_000_000, 12_000_000), ("21", 15_000_000, 16_500_000)]
    files = [File("north", _view(src, tmp / f"north.{c}.vcf.gz", north, c), north, "ref") for c in ("20", "21")]
    files += [File("south", _view(src, tmp / f"south.b{i}.vcf.gz", b, None), b)
              for i, b in enumerate((south[:15], south[15:]))]
    files += [File("east", _view(src, tmp / f"east.b{i}.{c}.vcf.gz", b, c), b, "callable", bed)
              for i, b in enumerate((east[:12], east[12:])) for c in ("20", "21")]
    return files


def _labels(samples: list[str]) -> dict[str, list[str]]:
    pan = panel()
    return {s: [f"{col}={pan[panel_id(s)][col]}" for col in BY if panel_id(s) in pan] for s in samples}


# ------------------------------------------------------------------------------------------- brute force
def _records(path: Path) -> tuple[list[str], dict[Key, list[str]]]:
    """Sample names and, per record (biallelic), each sample's GT string, from the VCF text."""
    text = sh("bcftools", "view", path)
    names: list[str] = []
    recs: dict[Key, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("##"):
            continue
        f = line.split("\t")
        if line.startswith("#CHROM"):
            names = f[9:]
            continue
        assert "," not in f[4], "the brute-force counter expects biallelic records"
        gi = f[8].split(":").index("GT")
        recs[(f[0], int(f[1]), f[3], f[4])] = [x.split(":")[gi] for x in f[9:]]
    return names, recs


def _genotypes(files: list[File]) -> dict[tuple[str, str], dict[Key, tuple[int, int, int] | None]]:
    """(institution, raw sample) -> site -> (ploidy, called alleles, alt alleles), for every site of the lake where
    the person counts; None where the person does not count."""
    parsed = [(f, *_records(f.path)) for f in files]
    sites = sorted({k for _f, _n, recs in parsed for k in recs})
    out: dict[tuple[str, str], dict[Key, tuple[int, int, int] | None]] = defaultdict(dict)
    for f, names, recs in parsed:
        assert names == f.samples
        contigs = {k[0] for k in recs}
        for site in sites:
            person_gts: list[tuple[int, int, int] | None]
            if site in recs:
                person_gts = []
                for gt in recs[site]:
                    alleles = gt.replace("|", "/").split("/")
                    person_gts.append((len(alleles), sum(a != "." for a in alleles), sum(a == "1" for a in alleles)))
            elif site[0] in contigs and (f.mode == "ref" or (f.mode == "callable" and any(
                    c == site[0] and a < site[1] <= b for c, a, b in f.bed))):
                person_gts = [(2, 2, 0)] * len(names)  # hom-ref (every sample of this source is diploid)
            else:
                person_gts = [None] * len(names)
            for s, g in zip(names, person_gts, strict=True):
                # one person at one site comes from one file at most (ingest refuses overlaps)
                if g is not None or site not in out[(f.institution, s)]:
                    assert out[(f.institution, s)].get(site) is None
                    out[(f.institution, s)][site] = g
    return out


def brute_force_counts(files: list[File], labels: dict[str, list[str]]) -> dict[tuple[Key, str, str], tuple[int, ...]]:
    """(site, scope, stratum) -> (ac, an, nhomalt, nhemi, n_called) for `all` and the `--by` strata (not adj):
    `all` rows of every scope at every site, other strata where at least one person counts."""
    gts = _genotypes(files)
    sites = sorted({k for per in gts.values() for k in per})
    insts = sorted({f.institution for f in files})
    cells: dict[tuple[Key, str, str], list[int]] = {}
    for site in sites:
        for scope in ["joint", *insts]:
            cells[(site, scope, "all")] = [0] * 6
    for (inst, sample), per in gts.items():
        for site, g in per.items():
            if g is None:
                continue
            ploidy, called, alt = g
            add = [alt, called, int(ploidy == 2 and alt == 2), int(ploidy == 1 and alt == 1), int(called == ploidy), 1]
            for scope in ("joint", inst):
                for stratum in ["all", *labels[sample]]:
                    cell = cells.setdefault((site, scope, stratum), [0] * 6)
                    for i, v in enumerate(add):
                        cell[i] += v
    return {k: tuple(v[:5]) for k, v in cells.items() if k[2] == "all" or v[5] > 0}


def lake_counts(table: Any) -> dict[tuple[Key, str, str], tuple[int, ...]]:
    return {((r["contig"], r["pos"], r["ref"], r["alt"]), r["scope"], r["stratum"]):
            (r["ac"], r["an"], r["nhomalt"], r["nhemi"], r["n_called"])
            for r in table.to_pylist() if not r["stratum"].startswith("adj:")}


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def layout_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    need_bcftools()
    tmp = tmp_path_factory.mktemp("hail_layouts")
    files = _layout(tmp)
    (tmp / "east.bed").write_text("".join(f"{c}\t{a}\t{b}\n" for c, a, b in files[-1].bed))
    lake = tmp / "lake"
    for inst in ("north", "south", "east"):
        mine = [f for f in files if f.institution == inst]
        ingest(lake, inst, [f.path for f in mine], build="GRCh37", workers=0, absent_as_ref=mine[0].mode == "ref",
               callable_regions=tmp / "east.bed" if mine[0].mode == "callable" else None)
        people = [s for f in mine for s in f.samples]
        pan = panel()
        columns = {col: {s: pan[panel_id(s)][col] for s in people if panel_id(s) in pan} for col in BY}
        load_phenotypes(lake, inst, write_phenotypes(tmp / f"{inst}.tsv", sorted(set(people)), columns))
    return {"lake": lake, "tmp": tmp, "files": files, "labels": _labels([s for f in files for s in f.samples])}


@pytest.fixture(scope="module")
def both_engines(layout_lake: dict[str, Any]) -> dict[str, Any]:
    from genolake.compute.aggregate import aggregate, read_frequencies

    lake = layout_lake["lake"]
    aggregate(lake, by=BY, faf_groups=["super_population"], adj=True, workers=0)
    dask = read_frequencies(lake)
    aggregate(lake, by=BY, faf_groups=["super_population"], adj=True, engine="hail")
    return {"dask": dask, "hail": read_frequencies(lake)}


# --------------------------------------------------------------------------------------------------- tests
def test_layouts_hail_equals_dask_row_for_row(both_engines: dict[str, Any]) -> None:
    dask, hail = both_engines["dask"], both_engines["hail"]
    strata = set(dask["stratum"].to_pylist())
    assert {"all", "adj:all", "sex=female", "adj:super_population=EUR"} <= strata
    assert hail.num_rows == dask.num_rows > 1_000
    assert hail.equals(dask)


def test_layouts_equal_a_brute_force_count_of_the_vcf_text(layout_lake: dict[str, Any],
                                                           both_engines: dict[str, Any]) -> None:
    truth = brute_force_counts(layout_lake["files"], layout_lake["labels"])
    got = lake_counts(both_engines["dask"])
    assert set(got) == set(truth)
    wrong = [(k, got[k], truth[k]) for k in sorted(truth) if got[k] != truth[k]]
    assert not wrong, f"{len(wrong)} cells differ, e.g. {wrong[:3]}"
    # the layouts matter: a person in two files (one per chromosome) counts once; absent-as-ref and callable fill
    north = [v for (site, scope, st), v in truth.items() if scope == "north" and st == "all"]
    assert max(an for _ac, an, *_ in north) == 80  # 40 people, diploid, never 160
    east_an = {an for (site, scope, st), (_ac, an, *_) in truth.items() if scope == "east" and st == "all"}
    assert 0 in east_an and len(east_an) > 3  # sites outside the BED and absent from a batch do not count


def test_export_hail_reads_back_the_genotypes_of_the_vcf_text(layout_lake: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """Every entry of the exported MatrixTable, read back in Hail, is the genotype the VCF text gives (hom-ref
    where an absent site counts, missing where the person does not count)."""
    from genolake.compute.export import export_hail
    from genolake.store import LakeStore

    lake, out = layout_lake["lake"], tmp_path / "lake.mt"
    info = export_hail(lake, out)
    pseudo = LakeStore.open(lake).pseudonymiser()
    truth = _genotypes(layout_lake["files"])
    by_pseudonym = {pseudo(inst, s): per for (inst, s), per in truth.items()}
    assert (info["rows"], info["cols"]) == (len({k for per in truth.values() for k in per}), 100)

    mt = hl.read_matrix_table(str(out))
    assert set(mt.col) >= {"s", "institution", *BY}
    # one int per entry: 10 * ploidy + alt alleles, -1 missing; collected as one array per row
    code = hl.or_else(mt.GT.ploidy * 10 + mt.GT.n_alt_alleles(), -1)
    rows = mt.select_entries(g=code).localize_entries("g", "cols")
    cols = [c.s for c in hl.eval(rows.globals.cols)]
    checked = 0
    for r in rows.collect():
        site = (r.locus.contig, r.locus.position, r.alleles[0], r.alleles[1])
        for s, e in zip(cols, r.g, strict=True):
            want = by_pseudonym[s].get(site)
            expect = -1 if want is None or want[1] < want[0] else 10 * want[0] + want[2]
            assert (e.g if e is not None else -1) == expect, (site, s)
            checked += 1
    assert checked == info["rows"] * 100


def test_issue_9_one_file_per_chromosome_through_the_cli(tmp_path: Path) -> None:
    """The reproduction of issue 9, run as a user would (`genolake ingest`, `genolake aggregate --engine hail`):
    north.vcf.gz split into a chr20 file and a file renamed to chr21, same 100 samples, `--absent-as-ref`; with
    east.bcf beside it, every site counts the 100 north people once (AN 200), in both engines."""
    from genolake.compute.aggregate import read_frequencies

    need_bcftools()
    n = REPO / "data" / "sample_vcfs" / "north.vcf.gz"
    (tmp_path / "ren.txt").write_text("20\t21\n")
    a, b = tmp_path / "a.vcf.gz", tmp_path / "b.vcf.gz"
    sh("bcftools", "view", "-r", "20:1-1300000", "-Oz", "-o", a, n)
    sh("bcftools", "index", "-f", "-t", a)
    text = subprocess.run(f"bcftools view -r 20:1300001-99000000 {n} | bcftools annotate --rename-chrs "
                          f"{tmp_path / 'ren.txt'}", shell=True, check=True, capture_output=True, text=True).stdout
    (tmp_path / "b.vcf").write_text(text.replace("##contig=<ID=21,length=63025520", "##contig=<ID=21,length=48129895"))
    sh("bcftools", "view", "-Oz", "-o", b, tmp_path / "b.vcf")
    sh("bcftools", "index", "-f", "-t", b)
    lake = tmp_path / "L"

    def cli(*args: str | Path) -> str:
        proc = subprocess.run([sys.executable, "-m", "genolake", *map(str, args)], capture_output=True, text=True,
                              check=False, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    cli("ingest", "--lake", lake, "--institution", "north", "--absent-as-ref", "--workers", "0", a, b)
    cli("ingest", "--lake", lake, "--institution", "east", "--workers", "0", REPO / "data" / "sample_vcfs" / "east.bcf")
    tables = {}
    for engine in ("dask", "hail"):
        cli("aggregate", "--lake", lake, "--engine", engine, *(["--workers", "0"] if engine == "dask" else []))
        tables[engine] = read_frequencies(lake)
    assert tables["hail"].equals(tables["dask"])
    rows = [r for r in tables["hail"].to_pylist() if r["scope"] == "north" and r["stratum"] == "all"]
    assert {r["contig"] for r in rows} == {"20", "21"}
    assert {r["an"] for r in rows} == {200}
    total = cli("query", "sql", "--lake", lake, "--format", "tsv",
                "SELECT sum(ac) FROM allele_frequencies WHERE scope = 'north' AND stratum = 'all'")
    view = cli("query", "sql", "--lake", lake, "--format", "tsv",
               "SELECT sum(ac) FROM variants WHERE institution = 'north'")
    assert total.split()[-1] == view.split()[-1]


def test_a_job_after_a_restart_survives_the_garbage_of_the_job_before(tmp_path: Path) -> None:
    """Each aggregate restarts genolake's Hail context on its own folder. Tables of the job before (made with
    `Table.from_spark`) free their Java ids in whatever context is current when they are collected; collected after
    the restart, they freed the new job's ids and the new job failed ("key not found: 1" in Hail's IR parser)."""
    import gc

    from genolake.compute.hail_engine import init_hail, lake_matrix_table
    from genolake.store import LakeStore

    sys.path.insert(0, str(Path(__file__).parent))
    from test_aggregate_truths import build_truth_lake

    store = LakeStore.open(build_truth_lake(tmp_path))
    init_hail(str(tmp_path / "job1"))
    first = lake_matrix_table(store)
    n = first.count_rows()
    cycle: list[Any] = [first]
    cycle.append(cycle)  # only the garbage collector frees it, at a time nobody chooses
    del first, cycle
    gc.disable()  # the worst time: not during the restart, but once the second job has made its tables
    try:
        init_hail(str(tmp_path / "job2"))
        second = lake_matrix_table(store)
    finally:
        gc.enable()
    gc.collect()  # the first job's tables, if still there, are collected now, in the second job's context
    assert second.count_rows() == n
