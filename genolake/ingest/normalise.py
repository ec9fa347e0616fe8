"""Allele normalisation: minimal representation and left-alignment.

After a multi-allelic record is split, each (REF, ALT) pair is trimmed to its minimal representation
(common trailing bases, then common leading bases, removed while both alleles keep at least one base,
as `vt normalize` and `bcftools norm` do). With a reference FASTA, indels are also left-aligned
(Tan, Abecasis & Kang 2015): shift left while the alleles end in the same base, extending from the
reference when an allele would become empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_BASES = re.compile(r"^[ACGTN]+$")


def is_symbolic(alt: str) -> bool:
    """Symbolic (`<DEL>`, `<NON_REF>`), breakend, spanning-deletion (`*`) or missing alleles are kept as is."""
    return alt.startswith("<") or "[" in alt or "]" in alt or alt in ("*", ".") or alt.startswith(".") or alt.endswith(".")


def trim(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Minimal representation of one biallelic pair of plain base alleles."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt = ref[1:], alt[1:]
        pos += 1
    return pos, ref, alt


def left_align(pos: int, ref: str, alt: str, fetch: Callable[[int, int], str]) -> tuple[int, str, str]:
    """Left-align an indel. ``fetch(start0, end0)`` returns reference bases (0-based, half-open)."""
    if len(ref) == len(alt):
        return trim(pos, ref, alt)
    while True:
        changed = False
        if ref and alt and ref[-1] == alt[-1]:
            ref, alt = ref[:-1], alt[:-1]
            changed = True
        if (not ref or not alt) and pos > 1:
            base = fetch(pos - 2, pos - 1).upper()
            ref, alt = base + ref, base + alt
            pos -= 1
            changed = True
        if not changed:
            break
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt = ref[1:], alt[1:]
        pos += 1
    return pos, ref, alt


def valid_bases(allele: str) -> bool:
    return bool(_BASES.match(allele))
