"""The ``variant`` part and the frequency rows of a variant report, from the site's `variants` rows: one definition for the library's
:func:`genolake.query.variant.variant_report` and the cold CLI's :mod:`genolake.query.cold_report`.

Imports nothing heavy (no numpy, pyarrow or DuckDB): the cold ``genolake query variant`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genolake.query.ids import VariantKey

#: The `variants` columns of a site row, in the order the summary reads them.
SITE_COLUMNS = ("file_id", "institution", "ac", "an", "nhomalt", "nhemi", "id", "filters", "n_alleles")
_ID, _FILTERS, _N_ALLELES = (SITE_COLUMNS.index(c) for c in ("id", "filters", "n_alleles"))


def allele_rows(found: Sequence[Sequence[Any]], key: VariantKey) -> list[tuple[Any, ...]]:
    """Of rows of :data:`SITE_COLUMNS` followed by ``ref`` and ``alt`` (every row at the position), those of
    ``key``'s allele, without the ``ref`` and ``alt``."""
    n = len(SITE_COLUMNS)
    return [tuple(r[:n]) for r in found if r[n] == key.ref and r[n + 1] == key.alt]


def frequency_row(scope: str, ac: int, an: int, nhomalt: int, nhemi: int) -> dict[str, Any]:
    """One ``frequencies`` entry of a variant report: ``scope`` (``joint`` or an institution) and its counts,
    ``af`` = AC / AN (None when AN is 0)."""
    return {"scope": scope, "ac": int(ac), "an": int(an), "af": ac / an if an else None, "nhomalt": int(nhomalt),
            "nhemi": int(nhemi)}


def variant_summary(key: VariantKey, rows: Sequence[Sequence[Any]], *, precomputed: bool) -> dict[str, Any]:
    """``{"id", "contig", "pos", "ref", "alt", "rsid", "filters", "multiallelic", "observed", "institutions",
    "source"}`` of ``key`` from its site rows (:data:`SITE_COLUMNS`, one per file listing it); ``precomputed``:
    the frequencies come from `allele_frequencies` rather than the lake's rows."""
    ids = sorted({i for r in rows if r[_ID] for i in str(r[_ID]).split(";")})
    filters = sorted({f for r in rows if r[_FILTERS] for f in str(r[_FILTERS]).split(";")})
    return {
        "id": str(key), "contig": key.contig, "pos": key.pos, "ref": key.ref, "alt": key.alt,
        "rsid": ";".join(ids) or None,
        "filters": ";".join(filters) or None,
        "multiallelic": any((r[_N_ALLELES] or 0) > 2 for r in rows),
        "observed": bool(rows),
        "institutions": sorted({r[1] for r in rows}),
        "source": "allele_frequencies" if precomputed else "lake",
    }
