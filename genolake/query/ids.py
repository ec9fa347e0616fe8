"""Variant IDs and regions as users type them.

A variant is ``CONTIG-POS-REF-ALT`` with ``-``, ``:``, ``_`` or ``/`` between the parts (``chr20-1014254-A-T``,
``20:1014254:A:T``, ``20_1014254_A_T``, ``20:1014254:A>T``), POS 1-based, alleles as normalised in the lake
(split, trimmed). An ``rs`` number is looked up in ``variants.id`` (and ``annotations.rsid`` once annotated).
Contigs are accepted in either naming (``chr20`` or ``20``) and renamed to the lake's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genolake.contigs import parse_region, to_style
from genolake.errors import UserInputError

_SEP = r"[-:_/]"
_VARIANT = re.compile(
    rf"^\s*(?P<contig>[A-Za-z0-9._]+?){_SEP}(?P<pos>\d[\d,]*){_SEP}(?P<ref>[ACGTN]+)(?:{_SEP}|>)(?P<alt>[ACGTN*]+)\s*$",
    re.IGNORECASE,
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
    m = _VARIANT.match(text)
    if not m:
        raise UserInputError(
            f"malformed variant ID {text!r}: use CONTIG-POS-REF-ALT (e.g. chr20-1014254-A-T, 20:1014254:A:T, "
            "20_1014254_A_T) or an rsID such as rs6054257"
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
