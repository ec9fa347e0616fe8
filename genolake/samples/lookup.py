"""Recontact: the institution that holds the key finds its own patients again (`genolake samples lookup`,
`genolake query carriers --reveal`).

Pseudonyms are computed locally from the raw IDs the institution gives (a list file or the sample columns of a
VCF/BCF header) with the lake's key, exactly as at ingest; nothing is written to the lake. Because a pseudonym
is keyed on (institution, raw ID), the raw IDs of one institution can only ever match that institution's
pseudonyms: other institutions' carriers keep their pseudonyms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.errors import UserInputError


def pseudonym_map(store: Any, institution: str, path: Path | str) -> dict[str, str]:
    """pseudonym -> raw ID for the IDs of ``path`` (a list, or a VCF/BCF whose header names the samples)."""
    from genolake.samples.idlist import read_ids
    from genolake.samples.remove import check_institution

    check_institution(store, institution)
    ids = read_ids(path, allow_vcf=True)
    return dict(zip(store.pseudonymiser().many(institution, ids), ids, strict=True))


def lookup(lake: Path | str, *, institution: str, path: Path | str) -> pa.Table:
    """Pseudonym and raw ID side by side for the raw IDs of ``path``, with ``in_lake`` (files or phenotypes).

    Raises :class:`~genolake.errors.UserInputError` if none of the IDs is in the lake for ``institution``.

    Examples
    --------
    >>> lookup("lake", institution="north", path="north.vcf.gz").to_pylist()[0]  # doctest: +SKIP
    {'institution': 'north', 'pseudonym': '3f0c...', 'sample': 'NA12878', 'in_lake': True}
    """
    from genolake.samples.remove import people_of
    from genolake.store import LakeStore

    store = LakeStore.open(lake)
    pmap = pseudonym_map(store, institution, path)
    present = people_of(store, institution)
    if not present & set(pmap):
        raise UserInputError(f"{path}: none of its {len(pmap)} sample IDs is in the lake for institution "
                             f"{institution!r} (check --institution; IDs as in the VCF header)")
    return pa.table({
        "institution": pa.array([institution] * len(pmap), pa.string()),
        "pseudonym": pa.array(list(pmap), pa.string()),
        "sample": pa.array(list(pmap.values()), pa.string()),
        "in_lake": pa.array([p in present for p in pmap], pa.bool_()),
    })


def reveal(table: pa.Table, pmap: dict[str, str], institution: str) -> pa.Table:
    """Add a ``sample`` column (raw ID) after ``sample_id`` for rows of ``institution`` whose pseudonym is in
    ``pmap``; null for every other row (other institutions always keep their pseudonyms)."""
    inst = table["institution"].to_pylist()
    sids = table["sample_id"].to_pylist()
    raw = [pmap.get(s) if i == institution else None for i, s in zip(inst, sids, strict=True)]
    at = table.schema.get_field_index("sample_id") + 1
    return table.add_column(at, "sample", pa.array(raw, pa.string()))


def reveal_carriers(lake: Path | str, table: pa.Table, *, institution: str | None, path: Path | str) -> pa.Table:
    """``query carriers --reveal``: the carriers table with a ``sample`` column for the asker's own carriers."""
    from genolake.store import LakeStore

    if not institution:
        raise UserInputError("--reveal needs --institution (your own institution: only its carriers can be "
                             "revealed)")
    pmap = pseudonym_map(LakeStore.open(lake), institution, path)
    return reveal(table, pmap, institution)
