"""Simple gene lists: whitespace-separated ``chrom start end name`` (PLINK ``glist-*`` files, BED4+).

Coordinates: ``1-based`` (inclusive start and end, PLINK's definition of a gene list) or ``bed`` (BED:
0-based start, exclusive end, converted to 1-based inclusive by adding 1 to the start). ``auto`` means
``bed`` for files named ``*.bed`` / ``*.bed.gz`` and ``1-based`` otherwise.

Note on the shipped PLINK lists: ``glist-hg38`` (GENCODE genes) uses 1-based starts, but ``glist-hg19`` was
made from UCSC refGene and its starts are UCSC's 0-based ``txStart`` (BRCA2: 32889616, NCBI 1-based
32889617). Read as 1-based (as PLINK does) its genes start one base early; pass ``--gene-coords bed`` to
read it as BED.

A name that looks like an Ensembl gene ID (``ENSG00000223972.5``) fills ``gene_ids`` instead of
``gene_symbols``. PLINK's chromosome ``XY`` (the X/Y pseudo-autosomal regions) is mapped to ``X``;
numeric codes 23, 24, 25, 26 to X, Y, X, MT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from genolake.annotation.intervals import ContigGenes, GeneModel
from genolake.annotation.source import lake_contig
from genolake.errors import BadInputFileError, UserInputError

COORDS = ("auto", "1-based", "bed")
_ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
_PLINK_CHROM = {"XY": "X", "23": "X", "24": "Y", "25": "X", "26": "MT"}


def coords_for(path: str, coords: str) -> str:
    if coords not in COORDS:
        raise UserInputError(f"--gene-coords {coords!r}: use one of {', '.join(COORDS)}")
    if coords != "auto":
        return coords
    low = path.lower()
    return "bed" if low.endswith((".bed", ".bed.gz")) else "1-based"


def read_gene_list(path: str, lines: Iterator[str], style: str, *, coords: str = "auto") -> GeneModel:
    """Parse a gene list into genes per lake contig (no transcript structure: region class genic/intergenic)."""
    mode = coords_for(path, coords)
    contigs: dict[str, ContigGenes] = {}
    first = True
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        cols = line.split()
        if len(cols) < 4:
            if len(cols) == 3 and first is False:
                raise BadInputFileError(path, "a gene list needs a fourth column with the gene name", record=f"line {n}")
            if first and len(cols) >= 3 and not cols[1].isdigit():
                first = False
                continue  # a header line
            raise BadInputFileError(path, "expected `chrom start end name` (whitespace-separated)", record=f"line {n}")
        if not (cols[1].isdigit() and cols[2].isdigit()):
            if first:
                first = False
                continue  # a header line
            raise BadInputFileError(path, "start and end (columns 2 and 3) must be integers", record=f"line {n}")
        first = False
        start, end = int(cols[1]), int(cols[2])
        if mode == "bed":
            start += 1
        if start < 1 or end < start:
            raise BadInputFileError(
                path, f"need start <= end ({'0-based BED start < end' if mode == 'bed' else '1-based, inclusive'})",
                record=f"line {n}")
        chrom = _PLINK_CHROM.get(cols[0].upper(), cols[0])
        contig = lake_contig(chrom, style)
        cg = contigs.get(contig)
        if cg is None:
            cg = contigs[contig] = ContigGenes()
        name = cols[3]
        if _ENSEMBL_ID.match(name):
            cg.add_gene(start, end, None, name, None, _strand(cols))
        else:
            cg.add_gene(start, end, name, None, None, _strand(cols))
    if not contigs:
        raise BadInputFileError(path, "no genes found")
    label = "0-based start, exclusive end (BED)" if mode == "bed" else "1-based inclusive"
    return GeneModel(kind="list", contigs=contigs, structured=False, coordinates=label)


def _strand(cols: list[str]) -> str | None:
    return cols[5] if len(cols) > 5 and cols[5] in ("+", "-") else None


def sniff_genes(path: str, lines: Iterator[str]) -> str:
    """`gtf`, `gff3` or `list` from a file's first lines; refuses anything else."""
    gff_header = False
    for n, line in enumerate(lines, start=1):
        if line.startswith("##gff-version 3"):
            gff_header = True
        if not line.strip() or line.startswith(("#", "track", "browser")):
            if n > 10_000:
                break
            continue
        cols = line.split("\t")
        if len(cols) == 9 and cols[3].isdigit() and cols[4].isdigit():
            attrs = cols[8]
            if gff_header or ("=" in attrs and '"' not in attrs):
                return "gff3"
            return "gtf"
        ws = line.split()
        if len(ws) >= 4 and ws[1].isdigit() and ws[2].isdigit():
            return "list"
        if n > 3:
            break
    raise BadInputFileError(path, "unknown gene file format: expected GTF, GFF3 or a gene list "
                            "(`chrom start end name`, whitespace-separated)")
