"""Contig naming and reference build detection.

A lake uses one contig naming style: `chr`-prefixed (`chr20`, `chrX`, `chrM`) or plain (`20`, `X`, `MT`).
Every input file's contigs are renamed to the lake's style, so `20` and `chr20` are one contig; user input
(regions, variant IDs) is accepted in either style.
"""

from __future__ import annotations

import re

from genolake.errors import BadInputFileError, UserInputError

BUILDS = ("GRCh37", "GRCh38")

# Lengths that identify the build (chr1, chr20, chrX differ between GRCh37 and GRCh38).
_LENGTHS = {
    ("1", 249250621): "GRCh37",
    ("1", 248956422): "GRCh38",
    ("20", 63025520): "GRCh37",
    ("20", 64444167): "GRCh38",
    ("22", 51304566): "GRCh37",
    ("22", 50818468): "GRCh38",
    ("12", 133851895): "GRCh37",
    ("12", 133275309): "GRCh38",
    ("X", 155270560): "GRCh37",
    ("X", 156040895): "GRCh38",
    ("MT", 16569): None,  # same in both
}
_BUILD_WORDS = [
    (re.compile(r"grch38|hg38|b38|hs38|grch_38", re.I), "GRCh38"),
    (re.compile(r"grch37|hg19|b37|hs37|human_g1k_v37|grch_37|hg37", re.I), "GRCh37"),
]
_ALIASES = {"hg19": "GRCh37", "b37": "GRCh37", "grch37": "GRCh37", "hg38": "GRCh38", "b38": "GRCh38", "grch38": "GRCh38"}


def canonical_build(name: str) -> str:
    """Map a build name given by a user (`hg19`, `b37`, `GRCh38`) to GRCh37 or GRCh38."""
    build = _ALIASES.get(name.strip().lower())
    if build is None:
        raise UserInputError(f"unknown reference build {name!r}; use GRCh37 or GRCh38")
    return build


def bare(contig: str) -> str:
    """Contig name without any `chr` prefix, with the mitochondrion as `M`."""
    c = contig[3:] if contig.lower().startswith("chr") else contig
    if c.upper() in ("M", "MT"):
        return "M"
    return c.upper() if c.upper() in ("X", "Y") else c


def to_style(contig: str, style: str) -> str:
    """Rename a contig to the lake style: `chr` (chr20, chrX, chrM) or `plain` (20, X, MT)."""
    b = bare(contig)
    if style == "chr":
        return "chr" + b
    return "MT" if b == "M" else b


def style_of(contigs: list[str]) -> str:
    """`chr` if most contig names carry a chr prefix, else `plain`."""
    n_chr = sum(1 for c in contigs if c.lower().startswith("chr"))
    return "chr" if contigs and n_chr * 2 >= len(contigs) else "plain"


def detect_build(header_lines: list[str], path: str) -> str | None:
    """Build from the ##contig lengths, else from ##reference / ##assembly words; None if unknown.

    Raises if the header contradicts itself (contig lengths of both builds).
    """
    found: set[str] = set()
    for line in header_lines:
        if line.startswith("##contig=<"):
            m_id = re.search(r"[<,]ID=([^,>]+)", line)
            m_len = re.search(r"[<,]length=(\d+)", line)
            if m_id and m_len:
                name = bare(m_id.group(1))
                build = _LENGTHS.get(("MT" if name == "M" else name, int(m_len.group(1))))
                if build:
                    found.add(build)
            m_asm = re.search(r"assembly=([^,>]+)", line)
            if m_asm:
                for rx, b in _BUILD_WORDS:
                    if rx.search(m_asm.group(1)):
                        found.add(b)
                        break
    if len(found) > 1:
        raise BadInputFileError(path, "header ##contig lines mix GRCh37 and GRCh38 lengths")
    if found:
        return found.pop()
    for line in header_lines:
        if line.startswith(("##reference", "##assembly")):
            for rx, b in _BUILD_WORDS:
                if rx.search(line):
                    return b
    return None


_REGION = re.compile(r"^\s*([^:\s]+)(?::([\d,]+)(?:(-)([\d,]*))?)?\s*$")


def parse_region(text: str, style: str) -> tuple[str, int, int]:
    """Parse `chr20:1000000-2000000` (1-based, inclusive), `chr20:3999000-` (to the contig's end),
    `chr20:1014254` or `chr20` into (contig, start, end)."""
    m = _REGION.match(text)
    if not m:
        raise UserInputError(f"malformed region {text!r}: use CONTIG, CONTIG:POS or CONTIG:START-END (1-based, inclusive)")
    contig = to_style(m.group(1), style)
    start = int(m.group(2).replace(",", "")) if m.group(2) else 1
    # `chr20:5-` and `chr20` run to the contig's end; `chr20:5` is one position
    open_end = 2**31 - 1 if m.group(3) or not m.group(2) else start
    end = int(m.group(4).replace(",", "")) if m.group(4) else open_end
    if start < 1 or end < start:
        raise UserInputError(f"malformed region {text!r}: start must be >= 1 and end >= start")
    return contig, start, end
