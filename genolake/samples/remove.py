"""`genolake samples remove` (withdrawal of consent) and `genolake vacuum`.

Removal takes the people of one institution (raw IDs pseudonymised with the lake's key as at ingest, or
pseudonyms) out of every table in ONE atomic multi-table commit (:meth:`genolake.store.LakeStore.commit`) that
rewrites only the Parquet files holding them:

- ``calls``: the parts of their files that hold a call of theirs, without those rows;
- ``variants``: every part of their files, with ``ac``, ``an``, ``nhomalt``, ``nhemi``, ``n_called``,
  ``n_missing`` and ``n_samples`` recounted from the remaining stored calls by the lake's rule (a remaining sample
  without a stored call is an implied diploid 0/0);
- ``samples`` (``column_index`` renumbered as in a file without their columns), ``ploidy``, the ``files`` row
  (``n_samples``, ``n_calls``) of each of their files; a file left without samples is removed entirely;
- ``phenotypes``: the institution's rows of theirs.

Because ``files`` is recommitted, ``allele_frequencies`` is no longer current and queries count from the lake
(as after an ingest) until ``genolake aggregate`` runs again. One JSON line (time, institution, counts; never an
ID) is appended to ``<lake>/audit.jsonl``. The removed Parquet files stay on disk for Delta time travel until
:func:`vacuum` deletes every file that is not in a table's current version.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genolake import genotypes as gtc
from genolake.errors import UserInputError
from genolake.genotypes import drop_samples

log = logging.getLogger(__name__)

AUDIT = "audit.jsonl"
PER_FILE = ("genotypes", "variants", "samples", "ploidy", "callable", "files")
_REWRITE_SUFFIX = re.compile(r"-w[0-9a-f]{12}$")


@dataclass
class RemoveReport:
    """What :func:`remove_samples` did (counts only, never IDs)."""

    institution: str
    given: int
    removed: int
    not_found: int
    files_rewritten: int = 0
    files_dropped: int = 0
    parquet_removed: int = 0
    parquet_added: int = 0
    phenotype_rows: int = 0


def institutions_of(store: Any) -> set[str]:
    """Institutions with committed files or phenotype rows."""
    out = set(store.read_table("files", columns=["institution"])["institution"].to_pylist())
    if store.has_table("phenotypes"):
        out |= set(store.read_table("phenotypes", columns=["institution"])["institution"].to_pylist())
    return out


def check_institution(store: Any, institution: str) -> None:
    known = institutions_of(store)
    if institution not in known:
        raise UserInputError(f"--institution {institution!r} has no data in the lake; the institutions are: "
                             + (", ".join(sorted(known)) or "none"))


def people_of(store: Any, institution: str) -> set[str]:
    """Pseudonyms of the institution's people: in its committed files or in its phenotype rows."""
    s = store.read_table("samples", columns=["institution", "sample_id"])
    out = set(s.filter(pc.equal(s["institution"], institution))["sample_id"].to_pylist())
    if store.has_table("phenotypes"):
        p = store.read_table("phenotypes", columns=["institution", "sample_id"])
        out |= set(p.filter(pc.equal(p["institution"], institution))["sample_id"].to_pylist())
    return out


def resolve(store: Any, institution: str, path: Path | str, *, pseudonyms: bool = False) -> tuple[list[str], int]:
    """Pseudonyms of the listed people present in the lake, and how many listed IDs are not there."""
    from genolake.samples.idlist import read_ids, read_pseudonyms

    check_institution(store, institution)
    pids = read_pseudonyms(path) if pseudonyms else store.pseudonymiser().many(institution, read_ids(path))
    present = people_of(store, institution)
    hit = [p for p in dict.fromkeys(pids) if p in present]
    if not hit:
        what = "pseudonyms" if pseudonyms else "sample IDs"
        raise UserInputError(
            f"{path}: none of its {len(pids)} {what} is in the lake for institution {institution!r}; nothing was "
            "changed (check --institution, and give raw IDs as in the VCF header, or --pseudonyms)")
    return hit, len(pids) - len(hit)


def _counting(rows: pa.Table, n: int) -> pa.Table:
    """The stored calls of ``rows`` (a file of ``n`` samples) with the columns :func:`_recount` needs."""
    from genolake.genotypes import expand

    anonymous = pa.array([""] * n, pa.string())  # only counts are needed, not who
    return expand(rows, lambda _f: anonymous, ["pos", "ref", "alt", "ploidy", "called", "alt_count"])


def _stored(rows: pa.Table) -> int:
    from genolake.genotypes import stored_calls

    return int(stored_calls(rows)[0].size) if rows.num_rows else 0


def _new_rel(rel: str, txn: str) -> str:
    p = Path(rel)
    stem = _REWRITE_SUFFIX.sub("", p.stem)
    return str(p.with_name(f"{stem}-w{txn[-12:]}.parquet"))


def _by_file(store: Any, table: str, institution: str) -> dict[str, list[str]]:
    """file_id -> relpaths of ``table``'s files of the institution (files not named after an ingested file,
    such as phenotypes, each under their own path)."""
    out: dict[str, list[str]] = {}
    for df in store.data_files(table, institution=institution):
        if df.institution == institution:
            out.setdefault(df.file_id or df.relpath, []).append(df.relpath)
    return out


def _recount(variants: pa.Table, calls: pa.Table, n_samples: int) -> pa.Table:
    """``variants`` rows with their counts recomputed from ``calls`` (the remaining stored calls of the same
    part) by the lake's rule: ``an = 2 * (samples without a stored call) + sum(called)``."""
    from genolake.duck import connect

    per_call = gtc.call_counts(*(np.asarray(calls.column(c).to_numpy(zero_copy_only=False), dtype=np.int64)
                                 for c in ("ploidy", "called", "alt_count")))  # the lake's one counting rule
    c = calls.select(["pos", "ref", "alt"])
    for j, name in enumerate(gtc.COUNT_FIELDS):
        c = c.append_column(f"c_{name}", pa.array(per_call[:, j], pa.int64()))
    con = connect(1)
    try:
        con.register("v", variants.append_column("_rid", pa.array(range(variants.num_rows), pa.int64())))
        con.register("c", c)
        out = con.sql(
            """WITH agg AS (
                 SELECT pos, ref, alt, count(*) AS k, sum(c_ac) AS ac, sum(c_an) AS called,
                        sum(c_nhomalt) AS nhomalt, sum(c_nhemi) AS nhemi, sum(c_missing) AS nmiss
                 FROM c GROUP BY ALL)
               SELECT v.* REPLACE (
                        CAST(coalesce(agg.ac, 0) AS INTEGER) AS ac,
                        CAST(2 * ($n - coalesce(agg.k, 0)) + coalesce(agg.called, 0) AS INTEGER) AS an,
                        CAST(coalesce(agg.nhomalt, 0) AS INTEGER) AS nhomalt,
                        CAST(coalesce(agg.nhemi, 0) AS INTEGER) AS nhemi,
                        CAST($n - coalesce(agg.nmiss, 0) AS INTEGER) AS n_called,
                        CAST(coalesce(agg.nmiss, 0) AS INTEGER) AS n_missing,
                        CAST($n AS INTEGER) AS n_samples)
               FROM v LEFT JOIN agg USING (pos, ref, alt) ORDER BY v._rid""", params={"n": n_samples})
        t = out.to_arrow_table() if hasattr(out, "to_arrow_table") else out.fetch_arrow_table()
    finally:
        con.close()
    if t.num_rows != variants.num_rows:  # a (pos, ref, alt) twice in one part: cannot happen after ingest checks
        raise AssertionError("variants part with a repeated allele key")
    return t.drop(["_rid"])


def remove_samples(lake: Path | str, *, institution: str, path: Path | str,
                   pseudonyms: bool = False) -> RemoveReport:
    """Remove every row of the listed people of ``institution`` from the lake in one atomic commit.

    Parameters
    ----------
    lake
        The lake folder.
    institution
        The institution whose people are removed (pseudonyms are per institution).
    path
        A file of raw sample IDs, one per line (pseudonymised with the lake's key, as at ingest), or of
        pseudonyms with ``pseudonyms=True``.

    Returns
    -------
    RemoveReport
        Counts only. IDs of the file that are not in the lake are counted in ``not_found`` and ignored; if none
        is in the lake, :class:`~genolake.errors.UserInputError` and the lake is unchanged.

    Examples
    --------
    >>> remove_samples("lake", institution="north", path="withdrawn.txt")  # doctest: +SKIP
    RemoveReport(institution='north', given=2, removed=2, not_found=0, files_rewritten=1, ...)
    """
    from genolake.schema import TABLES
    from genolake.store import COMMIT_ORDER, Commit, LakeStore, write_parquet

    store = LakeStore.open(lake)
    targets, not_found = resolve(store, institution, path, pseudonyms=pseudonyms)
    gone = pa.array(sorted(targets), pa.string())
    report = RemoveReport(institution=institution, given=len(targets) + not_found, removed=len(targets),
                          not_found=not_found)
    with store.staging() as (txn, staged), store.lock():
        commit = Commit(txn=txn)

        def replace(table: str, rel: str, data: pa.Table | None) -> None:
            commit.remove(table, rel)
            report.parquet_removed += 1
            if data is not None and data.num_rows:
                new = _new_rel(rel, txn)
                write_parquet(TABLES[table], data, staged / table / new)
                commit.add(table, new)
                report.parquet_added += 1

        samples = store.read_table("samples", columns=["institution", "sample_id", "file_id"])
        mine = samples.filter(pc.equal(samples["institution"], institution))
        hit = mine.filter(pc.is_in(mine["sample_id"], gone))
        fids = sorted(set(hit["file_id"].to_pylist()))
        rels = {t: _by_file(store, t, institution) for t in PER_FILE}
        for fid in fids:
            left = mine.filter(pc.equal(mine["file_id"], fid))
            n_left = left.num_rows - hit.filter(pc.equal(hit["file_id"], fid)).num_rows
            n_file = left.num_rows
            if n_left == 0:  # nobody left in the file: the file leaves the lake
                for t in PER_FILE:
                    for rel in rels[t].get(fid, []):
                        replace(t, rel, None)
                report.files_dropped += 1
                continue
            report.files_rewritten += 1
            removed_calls = 0
            old = pq.read_table(store.table_path("samples") / rels["samples"][fid][0]) \
                if rels["samples"].get(fid) else samples.slice(0, 0)
            drop = sorted(int(i) for i, sid in zip(old["column_index"].to_pylist(), old["sample_id"].to_pylist(),
                                                   strict=True) if sid in targets)
            geno_rels = {r: r for r in rels["genotypes"].get(fid, [])}  # same relpath in both tables
            for vrel in rels["variants"].get(fid, []):
                vt = pq.read_table(store.table_path("variants") / vrel)
                grel = geno_rels.pop(vrel, None)
                if grel is not None:
                    gtab = pq.read_table(store.table_path("genotypes") / grel)
                    kept = drop_samples(gtab, drop, n_file)
                    removed_calls += _stored(gtab) - _stored(kept)
                    replace("genotypes", grel, kept)
                    calls = _counting(kept, n_left)
                else:
                    calls = _counting(pa.table({}), n_left)
                replace("variants", vrel, _recount(vt, calls, n_left))
            for grel in geno_rels.values():  # a genotypes part without its variants part (not written by ingest)
                gtab = pq.read_table(store.table_path("genotypes") / grel)
                kept = drop_samples(gtab, drop, n_file)
                removed_calls += _stored(gtab) - _stored(kept)
                replace("genotypes", grel, kept)
            for rel in rels["samples"].get(fid, []):
                st = pq.read_table(store.table_path("samples") / rel)
                st = st.filter(pc.invert(pc.is_in(st["sample_id"], gone))).sort_by("column_index")
                st = st.set_column(st.schema.get_field_index("column_index"), "column_index",
                                   pa.array(range(st.num_rows), pa.int32()))
                replace("samples", rel, st)
            for rel in rels["ploidy"].get(fid, []):
                pt = pq.read_table(store.table_path("ploidy") / rel)
                replace("ploidy", rel, pt.filter(pc.invert(pc.is_in(pt["sample_id"], gone))))
            for rel in rels["files"].get(fid, []):
                ft = pq.read_table(store.table_path("files") / rel)
                ft = ft.set_column(ft.schema.get_field_index("n_samples"), "n_samples",
                                   pa.array([n_left] * ft.num_rows, pa.int32()))
                ft = ft.set_column(ft.schema.get_field_index("n_calls"), "n_calls",
                                   pc.subtract(ft["n_calls"], pa.scalar(removed_calls, pa.int64())))
                replace("files", rel, ft)
        for rel in [r for rs in _by_file(store, "phenotypes", institution).values() for r in rs] \
                if store.has_table("phenotypes") else []:
            ph = pq.read_table(store.table_path("phenotypes") / rel)
            keep = pc.invert(pc.is_in(ph["sample_id"], gone))
            if pc.all(keep).as_py():
                continue
            report.phenotype_rows += ph.num_rows - int(pc.sum(keep.cast(pa.int64())).as_py() or 0)
            replace("phenotypes", rel, ph.filter(keep))
        store.commit(commit, staged, order=(*COMMIT_ORDER, "phenotypes"))
        _audit(store.root, {"action": "remove", "institution": institution, "people": report.removed,
                            "not_found": report.not_found, "files_rewritten": report.files_rewritten,
                            "files_dropped": report.files_dropped})
    log.info("removed %d people of %s: %s", report.removed, institution, asdict(report))
    return report


def _audit(root: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to the lake's audit record (fsynced)."""
    from genolake import __version__

    line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"), **record,
                       "genolake_version": __version__}) + "\n"
    fd = os.open(root / AUDIT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_audit(lake: Path | str) -> list[dict[str, Any]]:
    """The audit record's entries, oldest first."""
    from genolake.store import LakeStore

    path = LakeStore.open(lake).root / AUDIT
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def vacuum(lake: Path | str) -> dict[str, int]:
    """Delete from disk every Parquet file that is not in its table's current Delta version.

    Until then Delta time travel keeps the files a removal, ``--replace`` or a new ``aggregate`` took out of the
    tables (so removed people's genotypes are still on disk). Returns table -> files deleted. The tables'
    current contents do not change, and whether ``allele_frequencies`` is current is kept as it was.
    """
    from genolake.store import LakeStore, committed_after

    store = LakeStore.open(lake)
    out: dict[str, int] = {}
    with store.lock():
        current = committed_after(store.root, "allele_frequencies", "files")
        names = [n for n in store.table_names() if n != "allele_frequencies"]
        if "allele_frequencies" in store.table_names():
            names.append("allele_frequencies")  # last: its log stays newer than `files` if it was current
        for name in names:
            dt = store.delta(name)
            # full: also files no version references (moved in by a commit that crashed before its redo
            # record); safe under the lake lock, which every commit holds
            opts: dict[str, Any] = {"retention_hours": 0, "enforce_retention_duration": False, "full": True}
            # the Delta log keeps its tombstones, so a second vacuum lists the same paths again: count real ones
            listed = dt.vacuum(dry_run=True, **opts)
            there = [p for p in listed if (store.table_path(name) / p).exists()]
            if listed:
                dt.vacuum(dry_run=False, **opts)
            out[name] = len(there)
        if current and not committed_after(store.root, "allele_frequencies", "files"):
            os.utime(store.root / "allele_frequencies" / "_delta_log")
        _audit(store.root, {"action": "vacuum", "deleted": sum(out.values())})
    log.info("vacuum: %s", out)
    return out
