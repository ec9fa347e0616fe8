"""GTF (GENCODE, Ensembl) and GFF3 gene models: genes with symbol, ID and biotype, and the intervals of
CDS, UTR, exon and transcript features used for the coarse region class. 1-based, inclusive.

GTF: symbol `gene_name`, ID `gene_id`, biotype `gene_type` (GENCODE) or `gene_biotype` (Ensembl). A file
without `gene` lines gets gene spans from its transcripts (or exons) grouped by `gene_id`.
GFF3: genes are features of type `gene` / `*_gene` / `pseudogene` (symbol `Name` or `gene_name`, ID
`gene_id` or `ID` without its `gene:` prefix, biotype `biotype` or `gene_type`); transcripts are features
whose Parent is a gene.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from genolake.annotation.intervals import ContigGenes, GeneModel
from genolake.annotation.source import lake_contig
from genolake.errors import BadInputFileError

CODING = {"CDS", "start_codon", "stop_codon"}
UTR = {"UTR", "five_prime_utr", "three_prime_utr", "five_prime_UTR", "three_prime_UTR", "5UTR", "3UTR"}
EXON = {"exon"}
TRANSCRIPT = {"transcript", "mRNA"}
_GTF_ATTR = re.compile(r'\s*([^\s";]+)\s+(?:"((?:[^"\\]|\\.)*)"|([^;]*?))\s*(?:;|$)')
_GENE_ID = re.compile(r'gene_id\s+"([^"]*)"')


def gtf_attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _GTF_ATTR.finditer(text):
        key = m.group(1)
        if key not in out:
            out[key] = m.group(2) if m.group(2) is not None else (m.group(3) or "")
    return out


def gff3_attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.strip().strip(";").split(";"):
        k, sep, v = item.strip().partition("=")
        if sep:
            out[k] = unquote(v)
    return out


def _columns(path: str, lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
    for n, line in enumerate(lines, start=1):
        if not line or line.startswith("#"):
            if line.startswith("##FASTA"):
                return
            continue
        cols = line.split("\t")
        if len(cols) != 9:
            raise BadInputFileError(path, f"expected 9 tab-separated GTF/GFF3 columns, found {len(cols)}",
                                    record=f"line {n}")
        if not (cols[3].isdigit() and cols[4].isdigit()):
            raise BadInputFileError(path, "start and end (columns 4 and 5) must be integers", record=f"line {n}")
        if int(cols[3]) < 1 or int(cols[4]) < int(cols[3]):
            raise BadInputFileError(path, "need 1 <= start <= end (GTF/GFF3 are 1-based, inclusive)",
                                    record=f"line {n}")
        yield n, cols


def read_gtf(path: str, lines: Iterator[str], style: str, *, gff3: bool = False) -> GeneModel:
    """Parse a GTF or GFF3 gene model into genes and feature intervals per lake contig."""
    contigs: dict[str, ContigGenes] = {}
    # genes seen only through their transcripts/exons (a GTF without gene lines)
    derived: dict[str, _Derived] = {}
    has_gene: set[str] = set()
    gff_genes: set[str] = set()
    gff_children: list[tuple[str, str, int, int]] = []  # (parent, contig, start, end) of possible transcripts
    structured = False
    for _n, cols in _columns(path, lines):
        ftype = cols[2]
        contig = lake_contig(cols[0], style)
        start, end = int(cols[3]), int(cols[4])
        cg = contigs.get(contig)
        if cg is None:
            cg = contigs[contig] = ContigGenes()
        is_gene = ftype == "gene" or (gff3 and (ftype.endswith("_gene") or ftype == "pseudogene"))
        if is_gene:
            a = gff3_attributes(cols[8]) if gff3 else gtf_attributes(cols[8])
            if gff3:
                gid = a.get("gene_id") or _strip_prefix(a.get("ID"))
                if a.get("ID"):
                    gff_genes.add(a["ID"])
                sym = a.get("Name") or a.get("gene_name")
                bio = a.get("biotype") or a.get("gene_type") or a.get("gene_biotype")
            else:
                gid = a.get("gene_id")
                sym = a.get("gene_name")
                bio = a.get("gene_type") or a.get("gene_biotype")
            if gid:
                has_gene.add(gid)
            cg.add_gene(start, end, sym or None, gid or None, bio or None, cols[6] if cols[6] in ("+", "-") else None)
            continue
        if ftype in CODING:
            cg.add_feature("coding", start, end)
        elif ftype in UTR:
            cg.add_feature("utr", start, end)
        elif ftype in EXON:
            cg.add_feature("exon", start, end)
        elif gff3:
            parent = gff3_attributes(cols[8]).get("Parent")
            if parent:
                for p in parent.split(","):
                    gff_children.append((p, contig, start, end))
            continue
        elif ftype in TRANSCRIPT:
            cg.add_feature("transcript", start, end)
            structured = True
        else:
            continue
        if not gff3 and not has_gene:
            # a GTF without gene lines: remember spans per gene_id from transcript-level features
            m = _GENE_ID.search(cols[8])
            if m:
                _extend(derived, m.group(1), contig, start, end, cols[8], cols[6])
    if gff3:
        for parent, contig, start, end in gff_children:
            if parent in gff_genes:
                contigs[contig].add_feature("transcript", start, end)
                structured = True
    else:
        for gid, d in derived.items():
            if gid not in has_gene:
                contigs[d.contig].add_gene(d.start, d.end, d.symbol, gid, d.biotype, d.strand)
        if derived and not structured:
            # exon/CDS-only GTF: transcripts are the gene spans
            for cg in contigs.values():
                for s, e in zip(cg.start, cg.end, strict=True):
                    cg.add_feature("transcript", s, e)
            structured = True
    if not any(c.start for c in contigs.values()):
        raise BadInputFileError(path, "no genes found (no `gene` features and no gene_id attributes)")
    return GeneModel(kind="gff3" if gff3 else "gtf", contigs={k: v for k, v in contigs.items() if v.start},
                     structured=structured, coordinates="1-based inclusive (GTF/GFF3)")


def _strip_prefix(v: str | None) -> str | None:
    if v and ":" in v and v.split(":", 1)[0] in ("gene", "Gene"):
        return v.split(":", 1)[1]
    return v


@dataclass
class _Derived:
    contig: str
    start: int
    end: int
    symbol: str | None
    biotype: str | None
    strand: str | None


def _extend(derived: dict[str, _Derived], gid: str, contig: str, start: int, end: int, attrs: str,
            strand: str) -> None:
    cur = derived.get(gid)
    if cur is None:
        a = gtf_attributes(attrs)
        derived[gid] = _Derived(contig, start, end, a.get("gene_name") or None,
                                a.get("gene_type") or a.get("gene_biotype") or None,
                                strand if strand in ("+", "-") else None)
        return
    cur.start = min(cur.start, start)
    cur.end = max(cur.end, end)
