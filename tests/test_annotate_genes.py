"""Gene overlaps from GTF excerpts (GENCODE `chr1`, Ensembl `1`), the same model as GFF3, and a PLINK gene
list, against an explicit interval test; variants sit on every gene's first and last base and one base
outside, and deletions reach into genes from outside (1-based, inclusive coordinates)."""

from __future__ import annotations

import gzip
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
GENCODE = DATA / "gencode_v29_grch38_chr1_subset.gtf.gz"
ENSEMBL = DATA / "annot" / "ensembl_grch38_chr1_subset.gtf.gz"
GLIST = DATA / "glist-hg19.txt"
_NAME = re.compile(r'gene_name "([^"]+)"')
_ID = re.compile(r'gene_id "([^"]+)"')


def _features(gtf: Path) -> list[tuple[str, str, int, int, str | None, str | None]]:
    """(contig, type, start, end, gene_name, gene_id) of every line, read independently of genolake."""
    out = []
    with gzip.open(gtf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            c = line.rstrip("\n").split("\t")
            n, i = _NAME.search(c[8]), _ID.search(c[8])
            out.append((c[0], c[2], int(c[3]), int(c[4]), n.group(1) if n else None, i.group(1) if i else None))
    return out


class _Bins:
    """Intervals bucketed by 10 kb bins so the explicit overlap test below only looks at nearby ones."""

    SIZE = 10_000

    def __init__(self, items: list[tuple[str, int, int, Any]]) -> None:
        self.bins: dict[tuple[str, int], list[tuple[str, int, int, Any]]] = {}
        for it in items:
            for b in range(it[1] // self.SIZE, it[2] // self.SIZE + 1):
                self.bins.setdefault((it[0], b), []).append(it)

    def overlapping(self, contig: str, start: int, end: int) -> list[Any]:
        """Payloads of intervals with interval.start <= end and interval.end >= start (1-based, inclusive)."""
        seen = {}
        for b in range(start // self.SIZE, end // self.SIZE + 1):
            for it in self.bins.get((contig, b), []):
                if it[1] <= end and it[2] >= start:
                    seen[id(it)] = it[3]
        return list(seen.values())


def _bare(contig: str) -> str:
    return contig[3:] if contig.startswith("chr") else contig


def _variants(points: list[tuple[str, int]], seed: int) -> list[tuple[str, int, str, str]]:
    """SNVs at the points, plus 3-base deletions starting two bases before and insertions at each point."""
    rng = random.Random(seed)
    out = set()
    for contig, p in points:
        if p < 3:
            continue
        out.add((contig, p, "A", "G"))
        if rng.random() < 0.5:
            out.add((contig, p - 2, "ACG", "A"))  # covers p-2 .. p
        if rng.random() < 0.3:
            out.add((contig, p, "A", "ATT"))  # covers p only (the same REF base as the SNV: one reference)
    return sorted(out, key=lambda v: (v[0], v[1], v[2], v[3]))


def _write_vcf(path: Path, variants: list[tuple[str, int, str, str]], contigs: dict[str, int]) -> None:
    header = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
              *[f"##contig=<ID={c},length={n}>" for c, n in contigs.items()],
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2"]
    order = {c: i for i, c in enumerate(contigs)}
    body = [f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t0/1\t1/1"
            for c, p, r, a in sorted(variants, key=lambda v: (order[v[0]], v[1], v[2], v[3]))]
    path.write_text("\n".join(header + body) + "\n")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("annot_genes")
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
def grch38_lake(env: Path) -> Path:
    """A GRCh38 `chr` lake with variants at the boundaries of every GENCODE and Ensembl gene and feature."""
    from genolake.ingest.pipeline import ingest

    points: set[tuple[str, int]] = set()
    for gtf in (GENCODE, ENSEMBL):
        for contig, ftype, s, e, _n, _i in _features(gtf):
            if ftype in ("gene", "exon", "CDS", "UTR", "five_prime_utr", "three_prime_utr", "transcript",
                         "stop_codon"):
                points.update(("chr" + _bare(contig), p) for p in (s - 1, s, e, e + 1))
    rng = random.Random(3)
    points.update(("chr1", rng.randint(10_000, 1_600_000)) for _ in range(300))
    vcf = env / "grch38_points.vcf"
    _write_vcf(vcf, _variants(sorted(points), seed=1), {"chr1": 248956422})
    lake = env / "lake38"
    ingest(lake, "north", [vcf], workers=0)
    return lake


def _lake_rows(lake: Path) -> list[dict[str, Any]]:
    from genolake.query.lake import Lake

    with Lake(lake) as lk:
        return lk.sql("SELECT * FROM annotations ORDER BY contig, pos, ref, alt").to_pylist()


def _expected_gtf(gtf: Path, rows: list[dict[str, Any]]) -> tuple[dict[tuple[object, ...], set[str]],
                                                                    dict[tuple[object, ...], str]]:
    feats = _features(gtf)
    genes = _Bins([("chr" + _bare(f[0]), f[2], f[3], f) for f in feats if f[1] == "gene"])
    classes = {"CDS": "coding_exon", "start_codon": "coding_exon", "stop_codon": "coding_exon", "UTR": "utr",
               "five_prime_utr": "utr", "three_prime_utr": "utr", "exon": "noncoding_exon", "transcript": "intron"}
    priority = ["coding_exon", "utr", "noncoding_exon", "intron"]
    parts = _Bins([("chr" + _bare(f[0]), f[2], f[3], classes[f[1]]) for f in feats if f[1] in classes])
    want_genes: dict[tuple[object, ...], set[str]] = {}
    want_class: dict[tuple[object, ...], str] = {}
    for r in rows:
        key = (r["contig"], r["pos"], r["ref"], r["alt"])
        start = int(r["pos"])
        end = start + len(str(r["ref"])) - 1
        hits: list[tuple[object, ...]] = genes.overlapping(str(r["contig"]), start, end)
        want_genes[key] = {str(g[4] or g[5]) for g in hits}
        found = set(parts.overlapping(str(r["contig"]), start, end))
        cls = next((c for c in priority if c in found), "genic" if hits else "intergenic")
        want_class[key] = cls
    return want_genes, want_class


@pytest.mark.parametrize("gtf", [GENCODE, ENSEMBL], ids=["gencode_chr", "ensembl_plain"])
def test_gtf_overlaps_equal_interval_test(grch38_lake: Path, gtf: Path) -> None:
    from genolake.compute.annotate import annotate

    report = annotate(grch38_lake, genes=gtf, workers=0)
    assert report.sources[0].note.startswith("gtf")
    rows = _lake_rows(grch38_lake)
    want_genes, want_class = _expected_gtf(gtf, rows)
    got_genes = {(r["contig"], r["pos"], r["ref"], r["alt"]): {str(s or i) for s, i in
                 zip(r["gene_symbols"], r["gene_ids"], strict=True)} for r in rows}
    assert got_genes == want_genes
    got_class = {(r["contig"], r["pos"], r["ref"], r["alt"]): r["region_class"] for r in rows}
    assert got_class == want_class
    # boundaries really were exercised: variants on a gene's first/last base and just outside
    on_edge = sum(1 for k, g in want_genes.items() if g) and sum(1 for g in want_genes.values() if not g)
    assert on_edge > 0
    assert {"coding_exon", "utr", "intron", "intergenic"} <= set(got_class.values())


def _gtf_to_gff3(gtf: Path, out: Path) -> None:
    """A GFF3 rendering of a GTF (gene -> transcript -> exon/CDS/UTR with ID/Parent)."""
    lines = ["##gff-version 3"]
    with gzip.open(gtf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            c = line.rstrip("\n").split("\t")
            a = dict(re.findall(r'(\S+) "([^"]*)"', c[8]))
            if c[2] == "gene":
                attrs = f"ID=gene:{a['gene_id']};Name={a.get('gene_name', '')};biotype={a.get('gene_type', '')}"
                ftype = "gene"
            elif c[2] == "transcript":
                attrs = f"ID=transcript:{a['transcript_id']};Parent=gene:{a['gene_id']}"
                ftype = "mRNA"
            elif c[2] in ("exon", "CDS", "UTR", "start_codon", "stop_codon"):
                attrs = f"Parent=transcript:{a['transcript_id']}"
                ftype = {"UTR": "five_prime_UTR"}.get(c[2], c[2])
            else:
                continue
            lines.append("\t".join([*c[:2], ftype, *c[3:8], attrs]))
    out.write_text("\n".join(lines) + "\n")


def test_gff3_equals_gtf(grch38_lake: Path, env: Path) -> None:
    from genolake.compute.annotate import annotate

    annotate(grch38_lake, genes=GENCODE, workers=0)
    from_gtf = _lake_rows(grch38_lake)
    gff3 = env / "gencode.gff3"
    _gtf_to_gff3(GENCODE, gff3)
    report = annotate(grch38_lake, genes=gff3, workers=0)
    assert report.sources[0].note.startswith("gff3")
    from_gff3 = _lake_rows(grch38_lake)
    cols = ("gene_symbols", "gene_ids", "biotypes", "region_class")
    assert [[r[c] for c in cols] for r in from_gff3] == [[r[c] for c in cols] for r in from_gtf]


@pytest.fixture(scope="module")
def grch37_lake(env: Path) -> Path:
    """A GRCh37 plain-named lake with variants at the boundaries of the glist-hg19 genes of 20, 22, X and XY."""
    from genolake.ingest.pipeline import ingest

    points: set[tuple[str, int]] = set()
    for line in GLIST.read_text().splitlines():
        c, s, e, _name = line.split()[:4]
        if c in ("20", "22", "X", "XY"):
            chrom = "X" if c == "XY" else c
            points.update((chrom, p) for p in (int(s) - 1, int(s), int(s) + 1, int(e), int(e) + 1))
    vcf = env / "grch37_points.vcf"
    _write_vcf(vcf, _variants(sorted(points), seed=2),
               {"20": 63025520, "22": 51304566, "X": 155270560})
    lake = env / "lake37"
    ingest(lake, "north", [vcf], workers=0)
    return lake


@pytest.mark.parametrize("coords", ["1-based", "bed"])
def test_gene_list_overlaps_equal_interval_test(grch37_lake: Path, coords: str) -> None:
    from genolake.compute.annotate import annotate

    annotate(grch37_lake, genes=GLIST, gene_coords=coords, workers=0)
    genes = []
    for line in GLIST.read_text().splitlines():
        c, s, e, name = line.split()[:4]
        start = int(s) + (1 if coords == "bed" else 0)
        genes.append(("X" if c == "XY" else c, start, int(e), (start, int(e), name)))
    bins = _Bins(genes)
    rows = _lake_rows(grch37_lake)
    assert len(rows) > 1000
    n_edge = 0
    for r in rows:
        start = int(r["pos"])
        end = start + len(str(r["ref"])) - 1
        hits: list[tuple[int, int, str]] = bins.overlapping(str(r["contig"]), start, end)
        want = {g[2] for g in hits}
        assert set(r["gene_symbols"]) == want, (r["contig"], r["pos"], r["ref"], r["alt"])
        assert r["region_class"] == ("genic" if want else "intergenic")
        n_edge += any(g[0] == start or g[1] == start for g in hits)
    assert n_edge > 500
    # a PAR gene listed for X and XY is reported once
    akap = [r for r in rows if "AKAP17A" in (r["gene_symbols"] or [])]
    assert akap and all(r["gene_symbols"].count("AKAP17A") == 1 for r in akap)


def test_gene_region(grch37_lake: Path, grch38_lake: Path) -> None:
    from genolake.compute.annotate import annotate
    from genolake.errors import UserInputError
    from genolake.query.genes import gene_region
    from genolake.query.lake import Lake

    annotate(grch37_lake, genes=GLIST, gene_coords="1-based", workers=0)
    with Lake(grch37_lake) as lk:
        assert gene_region(lk, "BRCA2") == ("13", 32889616, 32973809)
        assert gene_region(lk, "brca2") == ("13", 32889616, 32973809)
        with pytest.raises(UserInputError, match="several contigs"):
            gene_region(lk, "AKAP17A")  # X (and XY) and Y
        with pytest.raises(UserInputError, match="not in the lake's gene source"):
            gene_region(lk, "NOSUCHGENE1")
    annotate(grch37_lake, genes=GLIST, gene_coords="bed", workers=0)
    with Lake(grch37_lake) as lk:
        assert gene_region(lk, "BRCA2") == ("13", 32889617, 32973809)
    annotate(grch38_lake, genes=GENCODE, workers=0)
    with Lake(grch38_lake) as lk:
        assert gene_region(lk, "DDX11L1") == ("chr1", 11869, 14409)
        assert gene_region(lk, "ENSG00000223972.5") == ("chr1", 11869, 14409)
        assert gene_region(lk, "ENSG00000223972") == ("chr1", 11869, 14409)
