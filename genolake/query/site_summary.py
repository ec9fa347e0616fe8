"""The ``variant`` part and the frequency rows of a variant report, from the site's `variants` rows: one definition for the library's
:func:`genolake.query.variant.variant_report` and the cold CLI's :mod:`genolake.query.cold_report`.

Imports nothing heavy (no numpy, pyarrow or DuckDB): the cold ``genolake query variant`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from genolake.query.ids import VariantKey

#: The `variants` columns of a site row, in the order the summary reads them.
SITE_COLUMNS = ("file_id", "institution", "ac", "an", "nhomalt", "nhemi", "id", "filters", "qual", "n_alleles")


def frequency_row(scope: str, ac: int, an: int, nhomalt: int, nhemi: int) -> dict[str, Any]:
    """One ``frequencies`` entry of a variant report: ``scope`` (``joint`` or an institution) and its counts,
    ``af`` = AC / AN (None when AN is 0)."""
    return {"scope": scope, "ac": int(ac), "an": int(an), "af": ac / an if an else None, "nhomalt": int(nhomalt),
            "nhemi": int(nhemi)}


def variant_summary(key: VariantKey, rows: Sequence[Sequence[Any]], *, precomputed: bool) -> dict[str, Any]:
    """``{"id", "contig", "pos", "ref", "alt", "rsid", "filters", "multiallelic", "observed", "institutions",
    "source"}`` of ``key`` from its site rows (:data:`SITE_COLUMNS`, one per file listing it); ``precomputed``:
    the frequencies come from `allele_frequencies` rather than the lake's rows."""
    ids = sorted({i for r in rows if r[6] for i in str(r[6]).split(";")})
    filters = sorted({f for r in rows if r[7] for f in str(r[7]).split(";")})
    return {
        "id": str(key), "contig": key.contig, "pos": key.pos, "ref": key.ref, "alt": key.alt,
        "rsid": ";".join(ids) or None,
        "filters": ";".join(filters) or None,
        "multiallelic": any((r[9] or 0) > 2 for r in rows),
        "observed": bool(rows),
        "institutions": sorted({r[1] for r in rows}),
        "source": "allele_frequencies" if precomputed else "lake",
    }
