"""NCBI ClinVar (GRCh38, plain gzip with a foreign index), dbSNP IDs and gnomAD frequencies, re-annotation
with a new source version, gene queries, and bad input (one clear line, annotations unchanged)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
NCBI = DATA / "annot" / "clinvar_ncbi_grch38_brca2_chr22.vcf.gz"
CLINVAR37 = DATA / "clinvar_b37_chr20_chr22.vcf.gz"
GNOMAD = DATA / "gnomad_exomes_r2.1.1_sites_chr1_100.vcf.gz"
GLIST = DATA / "glist-hg19.txt"


def _records(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        return [line.rstrip("\n").split("\t") for line in fh if not line.startswith("#")]


def _header(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return [line.rstrip("\n") for line in fh if line.startswith("#")]


def _lake_vcf(path: Path, records: list[tuple[str, int, str, str]], contigs: list[str], extra: str = "") -> None:
    """A genotype VCF with the given sites (two samples) -- the lake's side of a join."""
    header = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">', *contigs,
              *([extra] if extra else []), "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2"]
    body = [f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t0/1\t0/0" for c, p, r, a in records]
    path.write_text("\n".join(header + body) + "\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("annot_sources")
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(tmp / "keys")
    try:
        yield tmp
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


@pytest.fixture(scope="module")
def lake38(env: Path) -> Path:
    """GRCh38 `chr` lake whose sites are the NCBI ClinVar records (plain names `13`, `22`) plus non-ClinVar alleles."""
    from genolake.ingest.pipeline import ingest

    sites = []
    for c in _records(NCBI):
        if "," in c[4] or not c[3].isalpha() or not c[4].isalpha():
            continue
        sites.append(("chr" + c[0], int(c[1]), c[3], c[4]))
    for c in _records(NCBI)[:20]:  # an allele ClinVar does not list, next to a ClinVar one
        if len(c[3]) == 1 and len(c[4]) == 1:
            other = next(b for b in "ACGT" if b not in (c[3], c[4]))
            sites.append(("chr" + c[0], int(c[1]), c[3], other))
    sites = sorted(set(sites), key=lambda s: (s[0], s[1], s[2], s[3]))
    vcf = env / "lake38.vcf"
    _lake_vcf(vcf, sites, ["##contig=<ID=chr13,length=114364328>", "##contig=<ID=chr22,length=50818468>"],
              "##reference=GRCh38")
    lake = env / "lake38"
    ingest(lake, "north", [vcf], workers=0)
    return lake


@pytest.fixture(scope="module")
def trap(env: Path) -> dict[str, Path]:
    """The NCBI file as shipped upstream: plain gzip next to a .tbi of another file; and a bgzipped copy whose
    .tbi belongs to another file."""
    d = env / "trap"
    d.mkdir()
    plain = d / NCBI.name
    shutil.copy(NCBI, plain)
    shutil.copy(str(CLINVAR37) + ".tbi", str(plain) + ".tbi")
    bgz = d / "ncbi_bgzf.vcf.gz"
    text = d / "ncbi_bgzf.vcf"
    text.write_bytes(gzip.decompress(NCBI.read_bytes()))
    subprocess.run(["bgzip", "-f", str(text)], check=True)
    shutil.copy(str(CLINVAR37) + ".tbi", str(bgz) + ".tbi")
    good = d / "ncbi_indexed.vcf.gz"
    shutil.copy(bgz, good)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(good)], check=True)
    return {"plain": plain, "bgz_foreign": bgz, "indexed": good}


def _rows(lake: Path, sql: str = "SELECT * FROM annotations") -> list[dict[str, Any]]:
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        return lk.sql(sql).to_pylist()


def _expected_ncbi() -> dict[tuple[str, int, str, str], dict[str, str]]:
    from genolake.annotation.source import parse_info

    out = {}
    for c in _records(NCBI):
        info = parse_info(c[7])
        out[("chr" + c[0], int(c[1]), c[3], c[4])] = {"id": c[2], **info}
    return out


@pytest.mark.parametrize("which", ["plain", "bgz_foreign", "indexed"])
def test_ncbi_clinvar_grch38(lake38: Path, trap: dict[str, Path], which: str) -> None:
    from genolake.annotation.clinvar import STARS
    from genolake.compute.annotate import annotate

    if shutil.which("bgzip") is None or shutil.which("tabix") is None:
        pytest.skip("bgzip/tabix not on PATH")
    report = annotate(lake38, clinvar=trap[which], workers=0)
    src = report.sources[0]
    if which == "indexed":
        assert src.read_mode == "index" and not report.warnings
    else:
        assert src.read_mode == "sequential"
        assert any("cannot be used" in w or "does not" in w for w in report.warnings), report.warnings
    want = _expected_ncbi()
    got = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in _rows(lake38)
           if r["clinvar_variation_id"] is not None}
    lake_keys = {(r["contig"], r["pos"], r["ref"], r["alt"]) for r in _rows(lake38)}
    assert set(got) == {k for k in want if k in lake_keys}
    assert len(got) > 250
    for key, row in got.items():
        info = want[key]
        assert row["clinvar_variation_id"] == info["id"]
        assert row["clinvar_allele_id"] == info["ALLELEID"]
        if "CLNSIG" not in info:  # only somatic classifications
            assert row["clinvar_significance"] is None and row["clinvar_stars"] is None
            continue
        assert row["clinvar_significance"] == info["CLNSIG"].replace("_", " ")
        status = info["CLNREVSTAT"].replace(",_", ", ").replace("_", " ")
        assert row["clinvar_review_status"] == status
        assert row["clinvar_stars"] == STARS[status]
        assert row["clinvar_conditions"] == list(dict.fromkeys(x.replace("_", " ") for x in info["CLNDN"].split("|")))
    with gzip.open(NCBI, "rt") as fh:
        date = next(line for line in fh if line.startswith("##fileDate=")).strip().split("=")[1]
    last = _rows(lake38, "SELECT * FROM annotation_sources ORDER BY annotated_at DESC LIMIT 1")[0]
    assert last["file_date"] == date and last["build"] == "GRCh38" and last["build_from"] == "header"


def test_promised_index_missing_refused(lake38: Path, trap: dict[str, Path]) -> None:
    from genolake.compute.annotate import annotate
    from genolake.errors import BadInputFileError

    before = _rows(lake38)
    for which in ("plain", "bgz_foreign"):
        with pytest.raises(BadInputFileError, match="--require-index"):
            annotate(lake38, clinvar=trap[which], require_index=True, workers=0)
    assert _rows(lake38) == before


def test_build_checks(lake38: Path, env: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.errors import BuildMismatchError

    with pytest.raises(BuildMismatchError, match=r"GRCh37.*lake holds GRCh38"):
        annotate(lake38, clinvar=CLINVAR37, workers=0)
    with pytest.raises(BuildMismatchError, match="GRCh37"):
        annotate(lake38, genes=GLIST, workers=0)  # glist-hg19: build from the file name
    plain_name = env / "genes.txt"
    shutil.copy(GLIST, plain_name)
    with pytest.raises(BuildMismatchError, match="--source-build"):
        annotate(lake38, clinvar=NCBI, source_build="GRCh37", workers=0)  # contradicts the header
    report = annotate(lake38, genes=plain_name, source_build="GRCh38", workers=0)  # no build anywhere: as told
    assert report.sources[0].kind == "genes"


# ------------------------------------------------------------------------------------------- GRCh37 lake
@pytest.fixture(scope="module")
def lake37(env: Path) -> Path:
    """GRCh37 lake: the gnomAD sample's sites (chr1) and ClinVar chr20/22 sites, two institutions."""
    from genolake.ingest.pipeline import ingest

    gn = sorted({("1", int(c[1]), c[3], c[4]) for c in _records(GNOMAD)}, key=lambda s: (s[1], s[2], s[3]))
    cv = sorted({(c[0], int(c[1]), c[3], c[4]) for c in _records(CLINVAR37)[::10]},
                key=lambda s: (s[0], s[1], s[2], s[3]))
    contigs = ["##contig=<ID=1,length=249250621>", "##contig=<ID=20,length=63025520>",
               "##contig=<ID=22,length=51304566>"]
    _lake_vcf(env / "gn.vcf", gn, contigs)
    _lake_vcf(env / "cv.vcf", cv, contigs)
    lake = env / "lake37"
    ingest(lake, "north", [env / "gn.vcf"], workers=0)
    ingest(lake, "south", [env / "cv.vcf"], workers=0)
    return lake


def test_frequencies_and_rsids(lake37: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.query.genes import annotation_of, variants_by_rsid
    from genolake.query.lake import Lake

    report = annotate(lake37, frequencies=[(GNOMAD, "gnomad")], dbsnp=GNOMAD, workers=0)
    by_kind = {s.kind: s for s in report.sources}
    assert by_kind["frequencies"].n_annotated == len(_records(GNOMAD))
    assert by_kind["dbsnp"].n_annotated == sum(1 for c in _records(GNOMAD) if c[2] != ".")
    freq = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in _rows(lake37, "SELECT * FROM external_frequencies")}
    ann = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in _rows(lake37)}
    from genolake.annotation.source import parse_info

    for c in _records(GNOMAD):
        key = ("1", int(c[1]), c[3], c[4])
        info = parse_info(c[7])
        f = freq[key]
        assert f["source"] == "gnomad"
        assert f["ac"] == int(info["AC"]) and f["an"] == int(info["AN"])
        if "AF" in info:
            assert f["af"] == pytest.approx(float(info["AF"]))
        else:
            assert f["af"] is None if int(info["AN"]) == 0 else f["af"] == pytest.approx(int(info["AC"]) / int(info["AN"]))
        assert f["nhomalt"] == (int(info["nhomalt"]) if "nhomalt" in info else None)
        assert f["popmax"] == (info.get("popmax") if info.get("popmax") not in (None, ".") else None)
        assert ann[key]["rsid"] == (c[2] if c[2] != "." else None)
        assert ann[key]["max_external_af"] == f["af"]
    rs = next(c for c in _records(GNOMAD) if c[2].startswith("rs"))
    with Lake(lake37) as lk:
        assert variants_by_rsid(lk, rs[2].upper()) == [("1", int(rs[1]), rs[3], rs[4])]
        one = annotation_of(lk, "1", int(rs[1]), rs[3], rs[4])
        assert one is not None and one["external_frequencies"]["gnomad"]["an"] is not None


def test_annotations_in_variant_reports_equal_through_both_readers(lake37: Path) -> None:
    """`lake.variant()` reads a variant's annotations and external frequencies with the pyarrow point reader;
    the DuckDB path (the CLI's) gives the same objects, list columns included."""
    from genolake.compute.annotate import annotate
    from genolake.query.lake import Lake

    annotate(lake37, frequencies=[(GNOMAD, "gnomad")], dbsnp=GNOMAD, clinvar=CLINVAR37, workers=0)
    with Lake(lake37) as fast, Lake(lake37, point_reads=False) as slow:
        keys = fast.sql("SELECT contig, pos, ref, alt FROM annotations ORDER BY ALL").to_pylist()
        assert len(keys) > 50
        seen_freq = seen_clinvar = 0
        for k in keys:
            vid = f"{k['contig']}-{k['pos']}-{k['ref']}-{k['alt']}"
            a, b = fast.variant(vid)["annotations"], slow.variant(vid)["annotations"]
            assert a == b, vid
            seen_freq += bool(a.get("external_frequencies"))
            seen_clinvar += a.get("clinvar_significance") is not None
        assert seen_freq and seen_clinvar


def test_reannotate_replaces_one_source_keeps_others_and_genotypes(lake37: Path, env: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.store import LakeStore

    annotate(lake37, genes=GLIST, clinvar=CLINVAR37, frequencies=[(GNOMAD, "gnomad")], workers=0)
    store = LakeStore.open(lake37)
    genotype_state = {t: (store.delta(t).version(), sorted(store.active_files(t))) for t in ("genotypes", "variants", "files")}
    first = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in _rows(lake37)}
    # "next release": every Pathogenic becomes Likely pathogenic and every 3rd record is gone
    v2 = env / "clinvar_v2.vcf"
    lines = ["##fileDate=2099-01-01", *_header(CLINVAR37)[1:]]
    for i, c in enumerate(_records(CLINVAR37)):
        if i % 3 == 0:
            continue
        c[7] = c[7].replace("CLINICAL_SIGNIFICANCE=Pathogenic;", "CLINICAL_SIGNIFICANCE=Likely_pathogenic;")
        lines.append("\t".join(c))
    v2.write_text(_header(CLINVAR37)[0] + "\n" + "\n".join(lines) + "\n")
    report = annotate(lake37, clinvar=v2, workers=0)
    second = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in _rows(lake37)}
    assert set(second) == set(first)
    kept = ("gene_symbols", "region_class", "genes_source", "max_external_af")
    n_gone = n_changed = 0
    for key, row in second.items():
        assert all(row[c] == first[key][c] for c in kept), key
        if first[key]["clinvar_significance"] is not None:
            assert row["clinvar_source"] == report.sources[0].source_id != first[key]["clinvar_source"]
            if row["clinvar_significance"] is None:
                n_gone += 1
            elif first[key]["clinvar_significance"] == "Pathogenic":
                assert row["clinvar_significance"] == "Likely pathogenic"
                n_changed += 1
    assert n_gone > 10 and n_changed > 10
    store = LakeStore.open(lake37)
    assert {t: (store.delta(t).version(), sorted(store.active_files(t))) for t in genotype_state} == genotype_state
    hist = _rows(lake37, "SELECT kind, file_date FROM annotation_sources WHERE kind = 'clinvar' ORDER BY annotated_at")
    assert hist[-1]["file_date"] == "2099-01-01" and len(hist) >= 2
    assert _rows(lake37, "SELECT DISTINCT source FROM external_frequencies") == [{"source": "gnomad"}]


def test_gene_variants_filters(lake37: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.errors import UserInputError
    from genolake.query.genes import gene_variants
    from genolake.query.lake import Lake

    annotate(lake37, genes=GLIST, clinvar=CLINVAR37, frequencies=[(GNOMAD, "gnomad")], workers=0)
    rows = _rows(lake37)
    gene = max({g for r in rows for g in (r["gene_symbols"] or []) if r["clinvar_significance"]},
               key=lambda g: sum(1 for r in rows if g in (r["gene_symbols"] or [])))
    with Lake(lake37) as lk:
        all_rows = gene_variants(lk, gene).to_pylist()
        assert {(r["contig"], r["pos"]) for r in all_rows} == {
            (r["contig"], r["pos"]) for r in rows if gene in (r["gene_symbols"] or [])}
        assert all(r["ac"] == 1 and r["institutions"] for r in all_rows)
        assert "gnomad_af" in gene_variants(lk, gene).column_names
        path = gene_variants(lk, gene, clinvar="pathogenic|likely_pathogenic").to_pylist()
        assert {(r["pos"], r["alt"]) for r in path} == {
            (r["pos"], r["alt"]) for r in all_rows
            if {"pathogenic", "likely_pathogenic"} & set(_classes(r["clinvar_significance"]))}
        assert gene_variants(lk, gene, max_af=0.0).num_rows == len(all_rows)  # none of them is in gnomAD
        with pytest.raises(UserInputError, match="--consequence"):
            gene_variants(lk, gene, consequence="not_a_term")
        gn = gene_variants(lk, "SAMD11").to_pylist()  # a chr1 gene of the gnomAD sample
        if gn:
            rare = gene_variants(lk, "SAMD11", max_af=0.001).to_pylist()
            assert {r["pos"] for r in rare} == {r["pos"] for r in gn if (r["max_external_af"] or 0) <= 0.001}


def _classes(sig: str | None) -> list[str]:
    from genolake.annotation.clinvar import significance_classes

    return significance_classes(sig)


# ------------------------------------------------------------------------------------------- bad input (CLI)
def _cli(*args: str | Path, env_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENOLAKE_KEY_DIR": str(env_dir / "keys")}
    return subprocess.run([sys.executable, "-m", "genolake", *map(str, args)], capture_output=True, text=True, env=env)


def _bad_files(d: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (annotate arguments, expected message)"""
    d.mkdir(exist_ok=True)
    hdr = "\n".join(_header(CLINVAR37))
    (d / "bad_pos.vcf").write_text(hdr + "\n20\tabc\t.\tA\tG\t.\t.\t.\n")
    (d / "short.vcf").write_text(hdr + "\n20\t100\t.\tA\n")
    (d / "not_a_vcf.vcf").write_text("this is not a VCF\n")
    data = CLINVAR37.read_bytes()
    (d / "truncated.vcf.gz").write_bytes(gzip.compress(gzip.decompress(data))[: len(data) // 2])
    (d / "bad.gtf").write_text("20\tHAVANA\tgene\t10\t100\t.\t+\t.\tgene_id \"G1\";\n"
                               "20\tHAVANA\tgene\tx\t100\t.\t+\t.\tgene_id \"G2\";\n")
    (d / "weird.txt").write_text("hello world\nfoo\n")
    (d / "genes.txt").write_text("20 100 200 GENE1\n20 300 x GENE2\n")
    return {
        "bad_pos": (["--clinvar", str(d / "bad_pos.vcf")], "POS 'abc' is not an integer"),
        "short": (["--clinvar", str(d / "short.vcf")], "wrong number of tab-separated columns"),
        "not_vcf": (["--clinvar", str(d / "not_a_vcf.vcf")], "not a VCF"),
        "truncated": (["--clinvar", str(d / "truncated.vcf.gz")], "truncated or corrupt"),
        "bad_gtf": (["--genes", str(d / "bad.gtf"), "--source-build", "GRCh37"], "line 2: start and end"),
        "unknown_genes": (["--genes", str(d / "weird.txt"), "--source-build", "GRCh37"], "unknown gene file format"),
        "bad_list": (["--genes", str(d / "genes.txt"), "--source-build", "GRCh37"], "line 2: start and end"),
        "unknown_type": (["--source", f"foo={d / 'genes.txt'}"], "unknown annotation source type 'foo'"),
        "missing": (["--clinvar", str(d / "nope.vcf.gz")], "no such file"),
        "no_index": (["--clinvar", str(d / "bad_pos.vcf"), "--require-index"], "--require-index"),
        "no_source": ([], "no annotation source given"),
    }


@pytest.mark.parametrize("case", ["bad_pos", "short", "not_vcf", "truncated", "bad_gtf", "unknown_genes", "bad_list",
                                  "unknown_type", "missing", "no_index", "no_source"])
def test_bad_input_one_line_and_annotations_unchanged(lake37: Path, env: Path, case: str) -> None:
    from genolake.store import LakeStore

    args, message = _bad_files(env / "bad")[case]
    store = LakeStore.open(lake37)
    if not store.active_files("annotations"):
        from genolake.compute.annotate import annotate

        annotate(lake37, genes=GLIST, workers=0)
    before = (LakeStore.open(lake37).delta("annotations").version(), _rows(lake37))
    res = _cli("annotate", "--lake", lake37, "-w", "0", *args, env_dir=env)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genolake: error:"), res.stderr
    assert message in lines[0]
    assert (LakeStore.open(lake37).delta("annotations").version(), _rows(lake37)) == before


def test_cli_annotate_and_query_gene(lake37: Path, env: Path) -> None:
    res = _cli("annotate", "--lake", lake37, "--genes", GLIST, "--clinvar", CLINVAR37, "--frequencies", GNOMAD,
               "--prefix", "gnomad", "-w", "0", env_dir=env)
    assert res.returncode == 0, res.stderr
    assert "annotated" in res.stderr and "variants/s" in res.stderr
    rows = _rows(lake37, "SELECT gene_symbols[1] AS g FROM annotations WHERE clinvar_significance LIKE 'Pathogenic%' "
                         "AND len(gene_symbols) > 0 ORDER BY contig, pos LIMIT 1")
    gene = rows[0]["g"]
    res = _cli("query", "gene", gene, "--lake", lake37, "--clinvar", "pathogenic", "-f", "tsv", env_dir=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip().splitlines()
    head = out[0].split("\t")
    assert head[:4] == ["contig", "pos", "ref", "alt"] and "clinvar_significance" in head and "gnomad_af" in head
    assert len(out) >= 2 and all("Pathogenic" in line for line in out[1:])
    res = _cli("query", "gene", gene, "--lake", lake37, "--clinvar", "bogus!", env_dir=env)
    assert res.returncode == 2 and res.stderr.strip().startswith("genolake: error:")


@pytest.mark.cluster
def test_workers_0_and_2_give_identical_annotations(lake37: Path) -> None:
    from genolake.compute.annotate import annotate

    annotate(lake37, genes=GLIST, clinvar=CLINVAR37, frequencies=[(GNOMAD, "gnomad")], workers=0)
    serial = _rows(lake37, "SELECT * EXCLUDE (genes_source) FROM annotations ORDER BY ALL")
    annotate(lake37, genes=GLIST, clinvar=CLINVAR37, frequencies=[(GNOMAD, "gnomad")], workers=2)
    assert _rows(lake37, "SELECT * EXCLUDE (genes_source) FROM annotations ORDER BY ALL") == serial


def test_written_annotation_files_match_the_schema(lake37: Path) -> None:
    import pyarrow.parquet as pq

    from genolake.compute.annotate import annotate
    from genolake.schema import TABLES

    annotate(lake37, genes=GLIST, clinvar=CLINVAR37, dbsnp=GNOMAD, frequencies=[(GNOMAD, "gnomad")], workers=0)
    for name in ("annotations", "external_frequencies", "annotation_sources", "annotation_genes"):
        files = list((lake37 / name).rglob("*.parquet"))
        assert files, name
        want = TABLES[name].arrow_schema
        for f in files:
            got = pq.read_schema(f)
            assert got.names == want.names, name
            norm = lambda ts: [str(t).replace("element:", "item:") for t in ts]  # noqa: E731 - list field name
            assert norm(got.types) == norm(want.types), name


def test_reference_left_aligns_source_indels(env: Path) -> None:
    """A lake ingested with --reference holds left-aligned indels; a source that writes the same deletion
    further right in a repeat matches only when annotate left-aligns it with the same reference."""
    from genolake.compute.annotate import annotate
    from genolake.ingest.pipeline import ingest

    seq = "ACGTTGCA" * 5 + "GCACACACACAT" + "TTGACCGA" * 5  # a CA repeat at 41-51
    fasta = env / "ref.fa"
    fasta.write_text(">1\n" + seq + "\n")
    hdr = ["##fileformat=VCFv4.2", f"##contig=<ID=1,length={len(seq)}>", "##reference=GRCh37"]
    # deletion of one CA, written at the right end of the repeat (POS 49: ACA -> A)
    right = 49
    ref = seq[right - 1:right + 2]
    assert ref == "ACA"
    lake_vcf = env / "la_lake.vcf"
    lake_vcf.write_text("\n".join([*hdr, '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
                                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
                                   f"1\t{right}\t.\t{ref}\tA\t.\tPASS\t.\tGT\t0/1"]) + "\n")
    lake = env / "la_lake"
    ingest(lake, "north", [lake_vcf], reference=fasta, workers=0)
    keys = _rows(lake, "SELECT contig, pos, ref, alt FROM variant_files")
    assert keys[0]["pos"] < right  # left-aligned by the ingest
    src = env / "la_clinvar.vcf"
    src.write_text("\n".join([*hdr, "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
                              f"1\t{right}\t42\t{ref}\tA\t.\t.\tCLNSIG=Pathogenic;CLNREVSTAT=reviewed_by_expert_panel"]) + "\n")
    annotate(lake, clinvar=src, workers=0)
    assert _rows(lake, "SELECT clinvar_significance AS s FROM annotations") == [{"s": None}]
    annotate(lake, clinvar=src, reference=fasta, workers=0)
    assert _rows(lake, "SELECT clinvar_significance AS s FROM annotations") == [{"s": "Pathogenic"}]
