"""Sites VCFs (dbSNP, gnomAD and other frequency files) and the generic VCF source reader.

:func:`read_vcf_source` streams a VCF source (one region through its index, or the whole file), splits
each record per ALT allele, normalises every allele exactly as the ingest does (trim to the minimal
representation; left-align with a reference if given) and hands the INFO of the record to an extractor
that returns that source's values per allele. Records that cannot touch a lake variant (no lake variant
position within REF's span) are skipped before their INFO is parsed.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from genolake.annotation.source import Region, SourceFile, parse_info, split_alleles, vcf_lines
from genolake.errors import BadInputFileError

KEY_FIELDS = (("contig", pa.string()), ("pos", pa.int32()), ("ref", pa.string()), ("alt", pa.string()))


class Extractor(Protocol):
    """Turns one record's INFO into per-allele values for the source's columns."""

    columns: tuple[tuple[str, pa.DataType], ...]

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        """Values of ``columns`` for ALT ``alt_index`` (1-based), or None to skip the allele."""
        ...

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        """Two records normalise to the same variant: combine their values."""
        ...


def read_vcf_source(
    src: SourceFile,
    extractor: Extractor,
    *,
    style: str,
    region: Region | None = None,
    positions: dict[str, array] | None = None,
    fetch: Callable[[str], Callable[[int, int], str] | None] | None = None,
) -> tuple[pa.Table, int]:
    """Normalised rows (key + extractor columns) of a VCF source and the number of records read.

    ``positions``: sorted lake variant positions per contig; records whose REF span holds none of them
    are skipped early (not used with left-alignment, which can move a variant left of its POS).
    ``fetch(contig)``: a reference fetcher for left-alignment, or None.
    """
    rows: dict[tuple[str, int, str, str], tuple[Any, ...]] = {}
    n_records = 0
    for line_no, contig, cols in vcf_lines(src, region, style):
        n_records += 1
        try:
            pos = int(cols[1])
        except ValueError:
            raise BadInputFileError(src.path, f"POS {cols[1]!r} is not an integer",
                                    record=f"line {line_no}" if line_no else cols[0]) from None
        ref = cols[3]
        if positions is not None and fetch is None:
            arr = positions.get(contig)
            if arr is None:
                continue
            i = bisect_left(arr, pos)
            if i == len(arr) or arr[i] > pos + len(ref) - 1:
                continue
        ref_fetch = fetch(contig) if fetch is not None else None
        alleles = split_alleles(pos, ref, cols[4], ref_fetch)
        if not alleles:
            continue
        info = parse_info(cols[7])
        n_alts = cols[4].count(",") + 1
        for alt_index, p, r, a in alleles:
            if region is not None and not (region.start <= p <= region.end):
                continue
            vals = extractor.values(cols, info, alt_index, n_alts)
            if vals is None:
                continue
            key = (contig, p, r, a)
            old = rows.get(key)
            rows[key] = vals if old is None else extractor.merge(old, vals)
    return _to_table(rows, extractor.columns), n_records


def _to_table(rows: dict[tuple[str, int, str, str], tuple[Any, ...]], columns: tuple[tuple[str, pa.DataType], ...]) -> pa.Table:
    fields = [*KEY_FIELDS, *columns]
    keys = list(rows)
    vals = list(rows.values())
    data: dict[str, pa.Array] = {}
    for i, (name, typ) in enumerate(KEY_FIELDS):
        data[name] = pa.array([k[i] for k in keys], typ)
    for j, (name, typ) in enumerate(columns):
        data[name] = pa.array([v[j] for v in vals], typ)
    return pa.table(data, schema=pa.schema([pa.field(n, t) for n, t in fields]))


def per_allele(value: str | None, alt_index: int, n_alts: int) -> str | None:
    """The value of a Number=A INFO field for one allele (`.` is missing)."""
    if value is None or value == "":
        return None
    parts = value.split(",")
    if len(parts) == n_alts:
        v = parts[alt_index - 1]
    elif len(parts) == 1:
        v = parts[0]
    else:
        return None
    return None if v in (".", "") else v


def _num(v: str | None, kind: type) -> Any:
    """An int or float from INFO text; None if missing, not a number, NaN or infinite."""
    if v is None:
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    if not math.isfinite(x):
        return None
    return int(x) if kind is int else x


class RsidExtractor:
    """dbSNP (or any sites VCF): the ID column; for dbSNP's own VCF also INFO/RS when ID is not an rsID."""

    columns = (("rsid", pa.string()),)

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        vid = cols[2]
        if vid in (".", ""):
            rs = info.get("RS")
            if not rs:
                return None
            vid = ";".join("rs" + x if not x.startswith("rs") else x for x in rs.split("|") if x)
        return (vid,)

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        ids = list(dict.fromkeys([*str(old[0]).split(";"), *str(new[0]).split(";")]))
        return (";".join(ids),)


# INFO keys tried in order for each frequency column (gnomAD v2/v3/v4, ExAC, 1000 Genomes, TOPMed style).
FREQ_KEYS = {
    "af": ("AF",),
    "ac": ("AC",),
    "an": ("AN",),
    "nhomalt": ("nhomalt", "AC_Hom", "Hom"),
    "popmax": ("popmax", "grpmax", "POPMAX"),
    "popmax_af": ("AF_popmax", "AF_grpmax", "POPMAX_AF"),
}


class FrequencyExtractor:
    """External allele frequencies: AF, AC, AN, nhomalt and the popmax population and AF, per allele.

    AF is taken from INFO/AF; when a file has AC and AN but no AF, AF = AC / AN.
    """

    columns = (
        ("af", pa.float64()), ("ac", pa.int64()), ("an", pa.int64()), ("nhomalt", pa.int64()),
        ("popmax", pa.string()), ("popmax_af", pa.float64()),
    )

    def __init__(self, keys: dict[str, tuple[str, ...]] | None = None) -> None:
        self.keys = keys or FREQ_KEYS

    def _get(self, info: dict[str, str], col: str) -> str | None:
        for k in self.keys[col]:
            if k in info:
                return info[k]
        return None

    def values(self, cols: list[str], info: dict[str, str], alt_index: int, n_alts: int) -> tuple[Any, ...] | None:
        af = _num(per_allele(self._get(info, "af"), alt_index, n_alts), float)
        ac = _num(per_allele(self._get(info, "ac"), alt_index, n_alts), int)
        an_raw = self._get(info, "an")
        an = _num(an_raw.split(",")[0] if an_raw else None, int)
        if af is None and ac is not None and an:
            af = ac / an
        nhom = _num(per_allele(self._get(info, "nhomalt"), alt_index, n_alts), int)
        popmax = per_allele(self._get(info, "popmax"), alt_index, n_alts)
        popmax_af = _num(per_allele(self._get(info, "popmax_af"), alt_index, n_alts), float)
        if af is None and ac is None and an is None and popmax_af is None:
            return None
        return (af, ac, an, nhom, popmax, popmax_af)

    def merge(self, old: tuple[Any, ...], new: tuple[Any, ...]) -> tuple[Any, ...]:
        return old  # duplicate records of one site in a frequency file: keep the first


def frequency_keys(spec: str) -> dict[str, tuple[str, ...]]:
    """Parse ``af=AF_nfe,ac=AC_nfe,an=AN_nfe`` into the INFO keys to use (others keep their defaults)."""
    keys = dict(FREQ_KEYS)
    for item in filter(None, (x.strip() for x in spec.split(","))):
        col, sep, key = item.partition("=")
        if not sep or col not in FREQ_KEYS or not key:
            from genolake.errors import UserInputError

            raise UserInputError(f"--freq-fields: {item!r} must be COLUMN=INFO_KEY with COLUMN one of "
                                 f"{', '.join(FREQ_KEYS)}")
        keys[col] = (key,)
    return keys
