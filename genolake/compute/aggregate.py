"""`genolake aggregate`: the public entry. Chooses the engine and where it runs, and commits the result.

:func:`aggregate` plans the job (:func:`genolake.compute.frequencies.plan`: committed files, samples and their
strata, contig ranges), has one engine count it -- the Dask engine (:mod:`genolake.compute.frequencies`: one task
per contig range, in process or on a Dask cluster) or Hail (:mod:`genolake.compute.hail_engine`) -- and commits
every ``allele_frequencies`` part and the ``aggregate_runs`` row in one Delta commit under the lake lock,
removing the previous ones: the table is recomputed from scratch on every run, so a run after one more ingest
gives exactly what a run on a fresh lake with the same files gives. :func:`read_frequencies` reads it back.

Both engines feed the same :func:`genolake.compute.frequencies.derive` with integer counts under the lake's
counting rule (docs/SCHEMA.md); a test proves they agree.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from genolake.compute import frequencies
from genolake.compute.frequencies import ProgressFn, plan
from genolake.errors import LakeStateError, UserInputError
from genolake.schema import AGGREGATE_RUNS, ALLELE_FREQUENCIES

log = logging.getLogger(__name__)

ENGINES = ("dask", "hail")


@dataclass
class AggregateReport:
    lake: str
    engine: str
    institutions: list[str]
    strata: list[str]
    sites: int = 0
    rows: int = 0
    parts: int = 0
    seconds: float = 0.0
    deduplicated: bool = False
    dropped: int = 0
    duplicate_groups: int = 0


def aggregate(
    lake: Path | str,
    *,
    by: Sequence[str] = (),
    faf_groups: Sequence[str] = (),
    adj: bool = False,
    engine: str = "dask",
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
    partition_rows: int | None = None,
    dedupe: bool = False,
    dedupe_min_sites: int | None = None,
) -> AggregateReport:
    """Compute the ``allele_frequencies`` table and commit it (replacing the previous one) atomically.

    Parameters
    ----------
    lake
        The lake folder.
    by
        Phenotype columns (of the ``phenotypes`` view) to stratify by; each value becomes a ``COLUMN=value``
        stratum. At most 200 distinct values per column.
    faf_groups
        Columns among ``by`` (e.g. a genetic-ancestry column) over whose strata faf95 is maximised and grpmax
        chosen on the joint ``all`` rows.
    adj
        Also write ``adj:`` strata counting only genotypes that pass gnomAD's adj filter (:data:`genolake.schema.ADJ_RULE`).
    engine
        ``dask`` (default) or ``hail`` (needs ``pip install 'genolake[hail]'`` and Java).
    workers
        None (default) and 0 run in this process, one task per core at a time on threads (the counting is numpy,
        scipy and Arrow calls that release the GIL, so threads use the cores as processes would, without the
        ~5 s start of a local cluster: 3 x 1,000 samples x 73k sites take ~2-3 s in all); N starts a local Dask
        cluster of N processes (the distributed path, as on a real cluster); see also ``scheduler``.
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``); workers must see the lake's path. This is
        where a cluster pays: more cores than this machine has.
    partition_rows
        About how many genotypes (sites x samples) one task reads (default 32 million); contigs are split into
        position ranges of that size, and into at least four tasks per worker or thread (so that tasks of unequal
        size still end together) when the lake has more than 200,000 genotypes. A task also holds at most about
        1 million (site, institution, stratum) cells (its counts are dense per cell, ~250-400 bytes each at the
        peak), so many strata on few samples give more, smaller tasks rather than gigabytes per task.
    dedupe
        Count each person found in several copies (:func:`genolake.samples.duplicates.find_duplicates`, pairs
        of kinship > 0.354, joined transitively) once: the copy of the institution ingested first is kept
        (:func:`genolake.samples.duplicates.keep_rank`), the others count nowhere. The report says how many were
        dropped; the ``aggregate_runs`` row records it.
    dedupe_min_sites
        ``--min-sites`` of the duplicate search (default 500).

    Examples
    --------
    >>> aggregate("lake", by=["sex", "population"], faf_groups=["population"], workers=0)  # doctest: +SKIP
    AggregateReport(lake='/.../lake', engine='dask', institutions=['north', 'south'], ...)
    """
    from genolake.store import Commit, LakeStore

    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise UserInputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    store = LakeStore.open(lake)
    if workers is None and scheduler is None:
        workers = 0  # threads here use the cores as a local cluster would, without its start (~5 s)
    importing = _import_in_background() if engine == "dask" and workers == 0 and scheduler is None else None
    n_workers = 4 if scheduler else (os.cpu_count() or 1) if workers == 0 else max(1, workers or 1)
    drop: frozenset[tuple[str, str]] = frozenset()
    n_groups = 0
    if dedupe:
        from genolake.samples.duplicates import DEFAULT_MIN_SITES, duplicate_copies

        drop, n_groups = duplicate_copies(store, min_sites=dedupe_min_sites or DEFAULT_MIN_SITES)
    with store.staging() as (txn, staged):
        p = plan(store, by=by, faf_groups=faf_groups, adj=adj, n_workers=n_workers, staging=str(staged), txn=txn,
                 target_rows=partition_rows, drop=drop)
        report = AggregateReport(lake=str(store.root), engine=engine, institutions=p.institutions, strata=p.strata,
                                 deduplicated=dedupe, dropped=len(drop), duplicate_groups=n_groups)
        if engine == "hail":
            from genolake.compute.hail_engine import hail_part_results

            results = hail_part_results(store, p, progress=progress)
        else:
            if importing is not None:
                importing.join()  # the tasks import nothing the thread is importing (no concurrent imports)
            results = frequencies._execute(p, workers=workers, scheduler=scheduler, progress=progress)
        commit = Commit(txn=txn)
        for r in results:
            if r.relpath:
                commit.add(ALLELE_FREQUENCIES.name, r.relpath)
            report.rows += r.rows
            report.sites += r.sites
        report.parts = len(commit.adds.get(ALLELE_FREQUENCIES.name, []))
        _stage_run(store, commit, staged, txn, report, adj=adj)
        with store.lock():
            now = store.committed_file_ids()
            if sorted(now) != p.file_ids:
                raise LakeStateError("files were ingested or replaced while aggregating; nothing was committed, "
                                     "run `genolake aggregate` again")
            for name in (ALLELE_FREQUENCIES.name, AGGREGATE_RUNS.name):
                if store.has_table(name):
                    for old in store.relpaths(name):
                        commit.remove(name, old)
            store.ensure_table(ALLELE_FREQUENCIES)
            store.commit(commit, staged, order=(AGGREGATE_RUNS.name, ALLELE_FREQUENCIES.name))
    report.seconds = time.perf_counter() - t0
    log.info("allele_frequencies: %d rows, %d sites, %d parts in %.1f s", report.rows, report.sites, report.parts,
             report.seconds)
    return report


_COUNTING_IMPORTS = ("scipy.sparse", "scipy.special")


def _import_in_background() -> Any:
    """Start importing the counting's scipy modules on a thread (returned; None when they are imported) while the
    job is planned on the main thread, on the other core: about 0.4 s of imports (scipy.special's first import
    alone parses the docstrings of ~90 functions) that the first tasks would otherwise do while holding the
    interpreter lock, stalling the other task thread."""
    import sys
    import threading

    if all(m in sys.modules for m in _COUNTING_IMPORTS):
        return None

    def run() -> None:
        import importlib

        for m in _COUNTING_IMPORTS:
            try:
                importlib.import_module(m)
            except ImportError:  # the task that needs it raises, with its own message
                return

    thread = threading.Thread(target=run, name="genolake-imports", daemon=True)
    thread.start()
    return thread


def _stage_run(store: Any, commit: Any, staged: Path, txn: str, report: AggregateReport, *, adj: bool) -> None:
    """Stage the one ``aggregate_runs`` row of this run (committed with ``allele_frequencies``)."""
    from datetime import UTC, datetime

    from genolake import __version__
    from genolake.store import write_parquet

    row = pa.Table.from_pylist([{
        "run_at": datetime.now(UTC), "engine": report.engine, "strata": report.strata, "adj": adj,
        "deduplicated": report.deduplicated, "dropped": report.dropped,
        "duplicate_groups": report.duplicate_groups, "genolake_version": __version__,
    }], schema=AGGREGATE_RUNS.arrow_schema)
    rel = f"{txn}.parquet"
    write_parquet(AGGREGATE_RUNS, row, staged / AGGREGATE_RUNS.name / rel)
    commit.add(AGGREGATE_RUNS.name, rel)


def read_frequencies(lake: Path | str) -> pa.Table:
    """The committed ``allele_frequencies`` table, sorted by contig, pos, ref, alt, scope, stratum."""
    from genolake.store import LakeStore

    store = LakeStore.open(lake)
    t = store.read_table(ALLELE_FREQUENCIES.name)
    if t.num_rows == 0:
        return ALLELE_FREQUENCIES.arrow_schema.empty_table()
    t = t.select(ALLELE_FREQUENCIES.names).cast(ALLELE_FREQUENCIES.arrow_schema)
    return t.sort_by([(c, "ascending") for c in ("contig", "pos", "ref", "alt", "scope", "stratum")])
