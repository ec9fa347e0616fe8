"""ClinVar joined to real GRCh37 1000 Genomes data, checked against an independent bcftools match.

Lake (GRCh37, plain contig names): 1000 Genomes phase 3 chr20 (2535 samples), the HapMap exome chr22
file and Hail's 100-sample chr20 file, plus a small "spike" VCF whose records are ClinVar alleles written
the way callers write them (multi-allelic records mixing ClinVar and non-ClinVar alleles, indels padded
with an extra base on both alleles, an allele at a ClinVar position that ClinVar does not have).

Oracle: ``bcftools norm -m-`` on every input VCF and on ClinVar, alleles trimmed to their minimal
representation by the few lines of :func:`_minimal` (bcftools norm trims only with a FASTA, which we do
not ship), then ``bcftools isec`` for the matched set and ``bcftools annotate`` for the values.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CLINVAR = DATA / "clinvar_b37_chr20_chr22.vcf.gz"
INPUTS = {
    "kg": (DATA / "1kg_phase3_broad_chr20_2535s.vcf.gz", None),
    "hapmap": (DATA / "va_hapmap_exome_chr22_22s.vcf.gz", None),
    "hail": (DATA / "hail_sample_1kg_chr20_100s.vcf.gz", "GRCh37"),
}
# INFO keys the MacArthur file uses without declaring them (bcftools needs them declared to write BCF/VCF)
_EXTRA_INFO = ['##INFO=<ID=PATHOGENIC,Number=1,Type=String,Description="undeclared in the source">',
               '##INFO=<ID=CONFLICTED,Number=1,Type=String,Description="undeclared in the source">']


def sh(*args: str | Path, stdin: str | None = None) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, input=stdin).stdout


def _need_tools() -> None:
    for tool in ("bcftools", "bgzip", "tabix"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not on PATH")
    for f in [CLINVAR, *(p for p, _ in INPUTS.values())]:
        if not f.exists():
            pytest.skip(f"{f.name} not in tests/data")


def _minimal(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Oracle trimming (independent of genolake): drop shared last bases, then shared first bases, keeping one."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def _declared(vcf: Path) -> str:
    """The VCF's text with the undeclared INFO keys declared (for bcftools)."""
    with gzip.open(vcf, "rt") as fh:
        lines = fh.read().splitlines(keepends=True)
    return lines[0] + "".join(x + "\n" for x in _EXTRA_INFO) + "".join(lines[1:])


def _oracle_sites(vcfs: list[Path], out: Path, info: str | None = None, fix_header: bool = False) -> Path:
    """Split (bcftools norm -m-), trim (_minimal) and write a sorted, indexed sites VCF (INFO/SIG = ``info``)."""
    rows: dict[tuple[str, int, str, str], str] = {}
    for vcf in vcfs:
        text = _declared(vcf) if fix_header else None
        split = sh("bcftools", "norm", "-m-", "--no-version", "-" if text else vcf, stdin=text)
        fmt = "%CHROM\t%POS\t%REF\t%ALT\t" + (f"%INFO/{info}" if info else ".") + "\n"
        for line in sh("bcftools", "query", "-f", fmt, "-", stdin=split).splitlines():
            chrom, pos, ref, alt, sig = line.split("\t")
            if alt in ("*", ".") or alt.startswith("<"):
                continue
            p, r, a = _minimal(int(pos), ref.upper(), alt.upper())
            rows.setdefault((chrom, p, r, a), sig)
    header = ["##fileformat=VCFv4.2", '##INFO=<ID=SIG,Number=1,Type=String,Description="significance">',
              "##contig=<ID=20,length=63025520>", "##contig=<ID=22,length=51304566>",
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = [f"{c}\t{p}\t.\t{r}\t{a}\t.\t.\t" + (f"SIG={s}" if info and s != "." else ".")
            for (c, p, r, a), s in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3]))]
    plain = out.with_suffix("")
    plain.write_text("\n".join(header + body) + "\n")
    sh("bgzip", "-f", plain)
    sh("tabix", "-f", "-p", "vcf", out)
    return out


def _spike_vcf(path: Path, seed: int = 7) -> None:
    """Records built from ClinVar alleles the way callers write them (see the module docstring)."""
    rng = random.Random(seed)
    recs: dict[tuple[str, int], list[tuple[str, str]]] = {}
    with gzip.open(CLINVAR, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            c = line.split("\t", 5)
            recs.setdefault((c[0], int(c[1])), []).append((c[3], c[4]))
    multi = [k for k, v in recs.items() if len(v) > 1 and len({r for r, _ in v}) == 1]
    single = [k for k, v in recs.items() if len(v) == 1]
    indels = [k for k in single if len(recs[k][0][0]) != len(recs[k][0][1])]
    snvs = [k for k in single if len(recs[k][0][0]) == len(recs[k][0][1]) == 1]
    out: list[tuple[str, int, str, str]] = []
    for k in rng.sample(multi, 15):  # two ClinVar alleles at one position -> one multi-allelic record
        ref = recs[k][0][0]
        out.append((k[0], k[1], ref, ",".join(a for _, a in recs[k])))
    for k in rng.sample(indels, 15):  # indel padded with one more (arbitrary) base on both alleles
        ref, alt = recs[k][0]
        out.append((k[0], k[1], ref + "G", alt + "G"))
    for k in rng.sample(snvs, 15):  # ClinVar SNV + an allele ClinVar does not list, in one record
        ref, alt = recs[k][0]
        other = next(b for b in "ACGT" if b not in (ref, alt))
        out.append((k[0], k[1], ref, f"{other},{alt}"))
    for k in rng.sample(snvs, 5):  # only an allele ClinVar does not list: must not match
        ref, alt = recs[k][0]
        other = next(b for b in "ACGT" if b not in (ref, alt))
        out.append((k[0], k[1], ref, other))
    header = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              "##contig=<ID=20,length=63025520>", "##contig=<ID=22,length=51304566>",
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS3"]
    body = []
    for chrom, pos, ref, alts in sorted(set(out), key=lambda r: (r[0], r[1])):
        n = alts.count(",") + 1
        gts = [f"{rng.randint(0, n)}/{rng.randint(0, n)}" for _ in range(3)]
        body.append(f"{chrom}\t{pos}\t.\t{ref}\t{alts}\t.\tPASS\t.\tGT\t" + "\t".join(gts))
    # positions repeat across groups only by chance; keep the first record of a position
    seen: set[tuple[str, str]] = set()
    uniq = []
    for line in body:
        chrom, at = line.split("\t", 2)[:2]
        key = (chrom, at)
        if key not in seen:
            seen.add(key)
            uniq.append(line)
    plain = path.with_suffix("")
    plain.write_text("\n".join(header + uniq) + "\n")
    sh("bgzip", "-f", plain)
    sh("tabix", "-f", "-p", "vcf", path)


@pytest.fixture(scope="module")
def clinvar_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    _need_tools()
    tmp = tmp_path_factory.mktemp("annot_clinvar")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(tmp / "keys")
    try:
        from genolake.ingest.pipeline import ingest

        spike = tmp / "spike.vcf.gz"
        _spike_vcf(spike)
        lake = tmp / "lake"
        for inst, (vcf, build) in INPUTS.items():
            ingest(lake, inst, [vcf], build=build, workers=0)
        ingest(lake, "spike", [spike], build="GRCh37", workers=0)
        # ClinVar with its multi-allelic sites joined (bcftools norm -m+), bgzipped and indexed
        merged = tmp / "clinvar_merged.vcf.gz"
        subprocess.run(["bcftools", "norm", "-m+", "--no-version", "-Oz", "-o", str(merged), "-"],
                       input=_declared(CLINVAR).encode(), check=True, capture_output=True)
        sh("tabix", "-f", "-p", "vcf", merged)
        # the same ClinVar as plain gzip without an index (read sequentially)
        plain_gz = tmp / "clinvar_plain.vcf.gz"
        with gzip.open(CLINVAR, "rb") as src, gzip.open(plain_gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield {"tmp": tmp, "lake": lake, "spike": spike, "merged": merged, "plain_gz": plain_gz}
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


@pytest.fixture(scope="module")
def oracle(clinvar_lake: dict[str, Path]) -> dict[tuple[str, int, str, str], str]:
    """Lake sites matched to ClinVar by bcftools isec / annotate on split, trimmed alleles -> raw significance."""
    tmp = clinvar_lake["tmp"]
    lake_sites = _oracle_sites([p for p, _ in INPUTS.values()] + [clinvar_lake["spike"]], tmp / "lake_sites.vcf.gz")
    cv_sites = _oracle_sites([CLINVAR], tmp / "cv_sites.vcf.gz", info="CLINICAL_SIGNIFICANCE", fix_header=True)
    isec = sh("bcftools", "isec", "-n=2", "-c", "none", "-w1", lake_sites, cv_sites)
    matched = {(c[0], int(c[1]), c[3], c[4]) for c in (line.split("\t") for line in isec.splitlines()
                                                     if line and not line.startswith("#"))}
    annotated = sh("bcftools", "annotate", "--no-version", "-a", cv_sites, "-c", "INFO/SIG", lake_sites)
    values = {}
    for line in sh("bcftools", "query", "-i", "INFO/SIG!=\".\"", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%INFO/SIG\n", "-",
                   stdin=annotated).splitlines():
        c, p, r, a, s = line.split("\t")
        values[(c, int(p), r, a)] = s
    assert set(values) == matched  # the two bcftools routes agree
    return values


def _matched(lake: Path) -> dict[tuple[str, int, str, str], dict[str, Any]]:
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        rows = lk.sql("SELECT * FROM annotations WHERE clinvar_significance IS NOT NULL").to_pylist()
    return {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in rows}


def _raw_text(sig: str) -> str:
    return sig.replace("..", ", ").replace("_", " ")


def test_clinvar_matches_bcftools(clinvar_lake: dict[str, Path], oracle: dict[tuple[str, int, str, str], str]) -> None:
    from genolake.compute.annotate import annotate

    report = annotate(clinvar_lake["lake"], clinvar=CLINVAR, workers=0)
    (src,) = report.sources
    assert src.read_mode == "index"
    got = _matched(clinvar_lake["lake"])
    assert len(oracle) >= 40  # the spike guarantees matches of every kind
    assert set(got) == set(oracle)
    for key, raw in oracle.items():
        assert got[key]["clinvar_significance"] == _raw_text(raw), key
    assert src.n_annotated == len(oracle)


def test_multiallelic_clinvar_records_match_per_allele(clinvar_lake: dict[str, Path],
                                                       oracle: dict[tuple[str, int, str, str], str]) -> None:
    from genolake.compute.annotate import annotate

    merged = clinvar_lake["merged"]
    with gzip.open(merged, "rt") as fh:
        multi = {(c[0], int(c[1])) for c in (line.split("\t", 5) for line in fh if not line.startswith("#"))
                 if "," in c[4]}
    assert len(multi) >= 100
    annotate(clinvar_lake["lake"], clinvar=merged, workers=0)
    got = _matched(clinvar_lake["lake"])
    assert set(got) == set(oracle)
    on_multi = [k for k in got if (k[0], k[1]) in multi]
    assert len(on_multi) >= 20  # the spike's multi-allelic sites
    # a lake allele at a multi-allelic ClinVar site that ClinVar lacks stays unmatched
    from genolake.query.lake import Lake

    with Lake(clinvar_lake["lake"]) as lk:
        keys = {(r["contig"], r["pos"], r["ref"], r["alt"]) for r in lk.sql(
            "SELECT contig, pos, ref, alt FROM annotations").to_pylist()}
    unmatched_at_multi = [k for k in keys if (k[0], k[1]) in multi and k not in got]
    assert all(k not in oracle for k in unmatched_at_multi)


def test_sequential_plain_gzip_equals_indexed(clinvar_lake: dict[str, Path],
                                              oracle: dict[tuple[str, int, str, str], str]) -> None:
    from genolake.compute.annotate import annotate

    report = annotate(clinvar_lake["lake"], clinvar=clinvar_lake["plain_gz"], workers=0)
    assert report.sources[0].read_mode == "sequential"
    got = _matched(clinvar_lake["lake"])
    assert set(got) == set(oracle)
    for key, raw in oracle.items():
        assert got[key]["clinvar_significance"] == _raw_text(raw)


def test_review_status_stars_and_source_version(clinvar_lake: dict[str, Path]) -> None:
    from genolake.annotation.clinvar import STARS
    from genolake.compute.annotate import annotate
    from genolake.query.lake import Lake

    annotate(clinvar_lake["lake"], clinvar=CLINVAR, workers=0)
    got = _matched(clinvar_lake["lake"])
    for row in got.values():
        status = row["clinvar_review_status"]
        assert status is not None and "_" not in status and ".." not in status
        assert row["clinvar_stars"] == STARS[str(status).lower()]
        assert row["clinvar_variation_id"] and str(row["clinvar_variation_id"]).isdigit()
        assert row["clinvar_conditions"]
    with Lake(clinvar_lake["lake"]) as lk:
        src = lk.sql("SELECT * FROM annotation_sources WHERE kind = 'clinvar' ORDER BY annotated_at DESC LIMIT 1")
        ids = lk.sql("SELECT DISTINCT clinvar_source FROM annotations")["clinvar_source"].to_pylist()
    row = src.to_pylist()[0]
    assert row["file_name"] == CLINVAR.name and row["build"] == "GRCh37" and row["build_from"] == "header"
    import hashlib

    assert row["sha256"] == hashlib.sha256(CLINVAR.read_bytes()).hexdigest()
    assert ids == [row["source_id"]]  # every variant was looked up in this release


def test_old_ncbi_multiallelic_record_per_allele(tmp_path: Path) -> None:
    """Old NCBI ClinVar VCFs list values per allele (CLNALLE, numeric CLNSIG); two records of one variant merge."""
    from genolake.annotation.clinvar import ClinvarExtractor
    from genolake.annotation.sites import read_vcf_source
    from genolake.annotation.source import inspect_vcf_source

    vcf = tmp_path / "old_clinvar.vcf"
    vcf.write_text("\n".join([
        "##fileformat=VCFv4.1", "##reference=GRCh37", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
        "1\t1000\trs1\tCAG\tC,CAGAG,TAG\t.\t.\tCLNALLE=1,3;CLNSIG=5,2|3;CLNREVSTAT=single,mult;"
        "CLNDBN=Disease_A,Disease_B|not_provided",
        "1\t2000\t12345\tA\tG\t.\t.\tALLELEID=9;CLNSIG=Pathogenic;CLNREVSTAT=criteria_provided,_single_submitter;CLNDN=X",
        "1\t2000\t12346\tAT\tGT\t.\t.\tALLELEID=10;CLNSIG=Likely_pathogenic;CLNREVSTAT=reviewed_by_expert_panel;CLNDN=Y",
    ]) + "\n")
    src = inspect_vcf_source("clinvar", vcf, lake_build="GRCh37")
    table, n = read_vcf_source(src, ClinvarExtractor(), style="plain")
    assert n == 3
    got = {(r["pos"], r["ref"], r["alt"]): r for r in table.to_pylist()}
    assert set(got) == {(1000, "CAG", "C"), (1000, "C", "T"), (2000, "A", "G")}  # CAG>CAGAG has no values
    a = got[(1000, "CAG", "C")]
    assert (a["clinvar_significance"], a["clinvar_review_status"], a["clinvar_stars"], a["clinvar_conditions"]) == (
        "Pathogenic", "criteria provided, single submitter", 1, ["Disease A"])
    b = got[(1000, "C", "T")]
    assert (b["clinvar_significance"], b["clinvar_class"], b["clinvar_stars"], b["clinvar_conditions"]) == (
        "Benign|Likely benign", ["benign", "likely_benign"], 2, ["Disease B", "not provided"])
    c = got[(2000, "A", "G")]  # AT>GT trims to A>G: merged with the other record
    assert c["clinvar_significance"] == "Pathogenic|Likely pathogenic" and c["clinvar_stars"] == 3
    assert c["clinvar_variation_id"] == "12345|12346" and c["clinvar_conditions"] == ["X", "Y"]


def test_region_clinvar_filter_equals_annotations(clinvar_lake: dict[str, Path]) -> None:
    """`query region --clinvar` keeps exactly the region's variants whose ClinVar class matches."""
    from genolake.compute.annotate import annotate
    from genolake.query.lake import Lake

    annotate(clinvar_lake["lake"], clinvar=CLINVAR, workers=0)
    with Lake(clinvar_lake["lake"]) as lk:
        contig = lk.sql("SELECT contig FROM annotations WHERE clinvar_significance IS NOT NULL LIMIT 1").to_pylist()
        assert contig
        c = contig[0]["contig"]
        full = lk.region(f"{c}:1-300000000")
        hits = lk.region(f"{c}:1-300000000", clinvar="any")
        want = lk.sql("SELECT count(*) AS n FROM annotations WHERE contig = ? AND clinvar_significance IS NOT NULL",
                      [c]).to_pylist()[0]["n"]
        assert 0 < hits.num_rows == want < full.num_rows
        assert hits.column("pos").to_pylist() == sorted(hits.column("pos").to_pylist())
