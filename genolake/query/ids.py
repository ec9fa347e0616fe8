"""Variant IDs and regions as users type them.

A variant is ``CONTIG-POS-REF-ALT`` with ``-``, ``:``, ``_`` or ``/`` between the parts (``chr20-1014254-A-T``,
``20:1014254:A:T``, ``20_1014254_A_T``, ``20:1014254:A>T``, ``chr20:1014254A>T`` as HGVS-like tools print it),
POS 1-based, alleles as normalised in the lake (split, trimmed). An ``rs`` number is looked up in ``variants.id`` (and ``annotations.rsid`` once annotated).
Contigs are accepted in either naming (``chr20`` or ``20``) and renamed to the lake's.

Regions follow bcftools' ``-r`` / ``-R`` habits: ``chr20:1000000-2000000`` (1-based, inclusive), ``chr20:3999000-``
(to the end of the contig), ``chr20:1014254`` (one position), ``chr20`` (the whole contig), several separated by
commas; a regions file is BED (``.bed``, ``.bed.gz``: 0-based, half-open) or tab-separated ``CHROM POS`` /
``CHROM BEG END`` (1-based, inclusive), as ``bcftools view -R`` reads them.

Nothing here imports pandas or pyarrow: ``genolake query variant`` parses its IDs before anything heavy loads.
"""

from __future__ import annotations

import gzip
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from genolake.contigs import parse_region, to_style
from genolake.errors import UserInputError

_SEP = r"[-:_/]"
_VARIANT = re.compile(
    rf"^\s*(?P<contig>[A-Za-z0-9._]+?){_SEP}(?P<pos>\d[\d,]*){_SEP}(?P<ref>[ACGTN]+)(?:{_SEP}|>)(?P<alt>[ACGTN*]+)\s*$",
    re.IGNORECASE,
)
# chr20:1335865T>C (contig:POS then REF>ALT with no separator), as printed by HGVS-like tools
_VARIANT_GT = re.compile(
    r"^\s*(?P<contig>[A-Za-z0-9._]+?):(?P<pos>\d[\d,]*)(?P<ref>[ACGTN]+)>(?P<alt>[ACGTN*]+)\s*$", re.IGNORECASE,
)
_RSID = re.compile(r"^\s*(rs\d+)\s*$", re.IGNORECASE)
MAX_POS = 2**31 - 1


@dataclass(frozen=True)
class VariantKey:
    """One split, normalised allele: the key of `variants` and `calls` rows."""

    contig: str
    pos: int
    ref: str
    alt: str

    def __str__(self) -> str:
        return f"{self.contig}-{self.pos}-{self.ref}-{self.alt}"


@dataclass(frozen=True)
class Region:
    """A 1-based, inclusive interval on one contig (``chr20:1000000-2000000``)."""

    contig: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.contig}:{self.start}-{self.end}"


def is_rsid(text: str) -> bool:
    return bool(_RSID.match(text))


def parse_variant(text: str, style: str) -> VariantKey:
    """Parse ``chr20-1014254-A-T`` (or ``20:1014254:A:T``, ``20_1014254_A_T``) into the lake's naming.

    >>> parse_variant("chr20:1014254:a:t", "plain")
    VariantKey(contig='20', pos=1014254, ref='A', alt='T')
    """
    m = _VARIANT.match(text) or _VARIANT_GT.match(text)
    if not m:
        raise UserInputError(
            f"malformed variant ID {text!r}: use CONTIG-POS-REF-ALT (e.g. chr20-1014254-A-T, 20:1014254:A:T, "
            "20_1014254_A_T, chr20:1014254A>T) or an rsID such as rs6054257"
        )
    pos = int(m.group("pos").replace(",", ""))
    if not 1 <= pos <= MAX_POS:
        raise UserInputError(f"malformed variant ID {text!r}: position must be between 1 and {MAX_POS}")
    ref, alt = m.group("ref").upper(), m.group("alt").upper()
    if ref == alt:
        raise UserInputError(f"malformed variant ID {text!r}: REF and ALT are the same allele")
    return VariantKey(to_style(m.group("contig"), style), pos, ref, alt)


def parse_region_text(text: str, style: str) -> Region:
    """Parse ``chr20:1000000-2000000`` (1-based, inclusive; commas allowed), ``chr20:1014254`` or ``chr20``."""
    contig, start, end = parse_region(text, style)
    if end > MAX_POS:
        end = MAX_POS
    if start > MAX_POS:
        raise UserInputError(f"malformed region {text!r}: positions must be at most {MAX_POS}")
    return Region(contig, start, end)


def split_region_list(text: str) -> list[str]:
    """Split a bcftools-style comma list (``20:1-500,20:900-1000``) into regions; commas that group thousands
    (``20:1,000,000-2,000,000``: a comma followed by exactly three digits) stay inside their region."""
    parts: list[str] = []
    for tok in text.split(","):
        if parts and re.match(r"^\d{3}(?:-[\d,]*)?$", tok) and re.search(r":[\d,]*\d-?[\d,]*$", parts[-1]):
            parts[-1] += "," + tok
        else:
            parts.append(tok)
    return [p.strip() for p in parts if p.strip()]


def parse_regions(texts: list[str], style: str) -> list[Region]:
    """Regions from command-line text, each possibly a comma list (see :func:`split_region_list`)."""
    return [parse_region_text(t, style) for text in texts for t in split_region_list(text)]


def read_regions_file(path: str | Path, style: str) -> list[Region]:
    """Regions of a ``bcftools -R`` file: BED (name ends ``.bed`` or ``.bed.gz``; 0-based, half-open) or a
    tab-separated ``CHROM POS`` / ``CHROM BEG END`` file (1-based, inclusive). ``#``, ``track`` and
    ``browser`` lines are skipped. A malformed line is an error naming the file and the line.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); bed = os.path.join(d, "r.bed")
    >>> _ = open(bed, "w").write("chr20\t999\t1000\n")
    >>> read_regions_file(bed, "plain")
    [Region(contig='20', start=1000, end=1000)]
    """
    from genolake.errors import BadInputFileError

    p = Path(path)
    is_bed = p.name.lower().endswith((".bed", ".bed.gz"))
    try:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rt") as fh:  # type: ignore[operator]
            lines = fh.read().splitlines()
    except OSError as exc:
        raise UserInputError(f"regions file {p.name}: cannot read it ({exc.strerror or exc})") from None
    out: list[Region] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        f = line.rstrip("\r").split("\t")
        try:
            if is_bed:
                if len(f) < 3:
                    raise ValueError("a BED line needs CHROM, START (0-based) and END")
                start, end = int(f[1]) + 1, int(f[2])
            elif len(f) >= 3 and f[2].strip().isdigit():
                start, end = int(f[1]), int(f[2])
            elif len(f) >= 2:
                start = end = int(f[1])
            else:
                raise ValueError("use CHROM<TAB>POS or CHROM<TAB>BEG<TAB>END (1-based; BED files must end .bed)")
            if start < 1 or end < start:
                raise ValueError(f"start {f[1]} and end {f[2] if len(f) > 2 else f[1]} make an empty interval")
        except ValueError as exc:
            raise BadInputFileError(p.name, str(exc).replace("invalid literal for int() with base 10",
                                                             "not a position"), record=f"line {n}") from None
        out.append(Region(to_style(f[0].strip(), style), start, min(end, MAX_POS)))
    if not out:
        raise BadInputFileError(p.name, "no regions in the file")
    return out


def collect_ids(args: list[str], ids_file: str | Path | None = None) -> list[str]:
    """Variant IDs from arguments, ``-`` (one per line on stdin) and ``--ids FILE`` (one per line; ``#`` lines
    and blank lines skipped; the first whitespace-separated word of each line), in order, duplicates kept once."""
    raw: list[str] = []

    def from_lines(lines: list[str]) -> None:
        for line in lines:
            word = line.strip().split()[0] if line.strip() else ""
            if word and not word.startswith("#"):
                raw.append(word)

    for a in args:
        if a == "-":
            from_lines(sys.stdin.read().splitlines())
        else:
            raw.append(a)
    if ids_file is not None:
        try:
            from_lines(Path(ids_file).read_text().splitlines())
        except OSError as exc:
            raise UserInputError(f"--ids {Path(ids_file).name}: cannot read it ({exc.strerror or exc})") from None
    seen: set[str] = set()
    out = [x for x in raw if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]
    if not out:
        raise UserInputError("no variant IDs given: pass them as arguments, `-` to read stdin, or --ids FILE")
    return out
