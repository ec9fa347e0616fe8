"""The Python API: ``genolake.open(path)`` returns a :class:`Lake`.

One DuckDB connection per ``Lake``, reused across queries. Every method returns a ``pyarrow.Table``
(``.to_pandas()``, ``polars.from_arrow(...)``) except :meth:`Lake.variant` and :meth:`Lake.info`,
which return plain dicts (the same objects the CLI prints with ``--format json``).

Coordinates are 1-based and inclusive; variant IDs and regions are accepted with either contig naming
(``chr20`` or ``20``). Frequencies follow the lake's counting rule, including sites absent from files
ingested with ``--absent-as-ref`` or ``--callable-regions`` (:mod:`genolake.query.counts`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genolake.query.engine import Engine
from genolake.store import LakeStore

if TYPE_CHECKING:
    import pyarrow as pa

    from genolake.query.ids import Region
    from genolake.query.where import Condition
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")


def _shown_path(path: Path) -> str:
    """The lake's path relative to the working directory when it lies below it (as a user typed it)."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


class Lake:
    """An opened lake.

    Examples
    --------
    >>> import genolake
    >>> lake = genolake.open("lake")  # doctest: +SKIP
    >>> lake.variant("chr20-1014254-A-T")["frequencies"][0]  # doctest: +SKIP
    {'scope': 'joint', 'ac': 12, 'an': 600, 'af': 0.02, 'nhomalt': 1, 'nhemi': 0}
    >>> lake.region("20:1000000-2000000", max_af=0.01).to_pandas()  # doctest: +SKIP
    >>> lake.carriers("20-1014254-A-T", where="case_status = 'case'").to_pandas()  # doctest: +SKIP
    >>> lake.assoc("case_status", region="20:1000000-2000000").to_pandas()  # doctest: +SKIP
    >>> lake.sql("SELECT institution, count(*) AS n FROM samples GROUP BY 1").to_pandas()  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, point_reads: bool = True) -> None:
        self.store = LakeStore.open(path)
        self.engine = Engine(self.store, threads=threads, point_reads=point_reads)

    @property
    def path(self) -> Path:
        return self.store.root

    @property
    def build(self) -> str:
        return self.store.build

    def __repr__(self) -> str:
        """``<genolake.Lake 'path' GRCh37: 3 institutions (east, north, south), 300 samples, 4,683 variants,
        aggregated, not annotated>``: what a notebook user checks first. Counts come from the small tables and the
        files' own counts (no scan of the genotypes)."""
        eng = self.engine
        cat = eng.catalog
        insts = cat.institutions
        try:
            samples = int(eng.rows("SELECT count(*) FROM (SELECT DISTINCT institution, sample_id FROM samples)")[0][0])
            sites = int(eng.rows("SELECT count(*) FROM (SELECT DISTINCT contig, pos, ref, alt FROM variant_files)")[0][0])
        except Exception:  # a closed connection: the path is still worth showing
            return f"<genolake.Lake {str(self.path)!r} (closed)>"
        if "allele_frequencies" not in cat.tables:
            agg = "not aggregated"
        else:
            agg = "aggregated" if cat.frequencies_current else "aggregated before the last ingest (run aggregate)"
        ann = "annotated" if "annotations" in cat.tables else "not annotated"
        shown = ", ".join(insts[:5]) + (", ..." if len(insts) > 5 else "")
        return (f"<genolake.Lake {_shown_path(self.path)!r} {self.build}: {len(insts)} institution"
                f"{'s' if len(insts) != 1 else ''}" + (f" ({shown})" if insts else "")
                + f", {samples:,} samples, {sites:,} variants, {agg}, {ann}>")

    def refresh(self) -> None:
        """Pick up commits made since the lake was opened."""
        self.engine.refresh()

    def sql(self, text: str, params: list[Any] | dict[str, Any] | None = None, *,
            timeout: float | None = None, memory_limit: int | None = None) -> pa.Table:
        """Run a read-only SQL query over the views (see docs/SCHEMA.md) and return Arrow.

        The query runs in a sandbox that can read the views and write nothing (docs/SECURITY.md), and is
        stopped after ``timeout`` seconds (default 300) or when it needs more than ``memory_limit`` bytes
        (default a quarter of RAM)."""
        return self.engine.user_sql(text, params, timeout=timeout, memory_limit=memory_limit)

    def variant(self, id: str) -> dict[str, Any]:  # noqa: A002 - the documented API name
        """One variant: ``{"variant": {...}, "frequencies": [...], "phenotypes": [...], "annotations": {...}}``.

        ``frequencies`` has the joint cohort first (``scope: "joint"``) then each institution, each with
        ``ac``, ``an``, ``af`` (AC / AN, None if AN is 0), ``nhomalt`` (diploid hom-alt samples) and ``nhemi``
        (haploid carriers). They come from ``allele_frequencies`` (stratum ``all``) when it covers the variant,
        else from the lake. ``phenotypes`` has, per categorical phenotype value, the samples counted at the site,
        ``carriers`` and ``ac``/``an``/``af``/``nhomalt``/``nhemi`` of those samples. ``annotations`` holds the
        variant's ``annotations`` row, if the lake is annotated. ``id`` is ``CONTIG-POS-REF-ALT`` (``-``, ``:``
        or ``_`` between the parts) or an rsID.
        """
        from genolake.query.variant import variant_report

        return variant_report(self, id)

    def region(
        self,
        region: str | Region,
        *,
        max_af: float | None = None,
        min_ac: int | None = None,
        institution: str | None = None,
        where: str | Condition | None = None,
        clinvar: str | list[str] | None = None,
        consequence: str | list[str] | None = None,
        max_external_af: float | None = None,
    ) -> pa.Table:
        """Variants in ``region`` (``chr20:1000000-2000000``, 1-based inclusive) with joint counts, by position.

        See :mod:`genolake.query.region` for the columns and what ``where`` adds. ``clinvar``, ``consequence``
        and ``max_external_af`` filter on the annotations (as `genolake query gene` does).
        """
        from genolake.query.region import region_table

        return region_table(self, region, max_af=max_af, min_ac=min_ac, institution=institution, where=where,
                            clinvar=clinvar, consequence=consequence, max_external_af=max_external_af)

    def carriers(self, id: str, *, where: str | Condition | None = None) -> pa.Table:  # noqa: A002
        """Samples carrying the variant's allele: institution, pseudonymised sample_id, genotype fields and the
        phenotype columns, optionally only those matching ``where`` (e.g. ``"case_status = 'case'"``)."""
        from genolake.query.variant import carriers_table

        return carriers_table(self, id, where=where)

    def assoc(
        self,
        phenotype: str,
        *,
        case: str | None = None,
        region: str | Region | None = None,
        gene: str | None = None,
        min_ac: int | None = None,
        burden: bool = False,
        control: str | None = None,
        max_af: float | None = None,
        test: str = "fisher",
        covariates: str | list[str] | None = None,
        weights: str | None = None,
        firth_mac: int = 20,
        firth_p: float = 0.05,
        progress: Callable[..., None] | None = None,
    ) -> pa.Table:
        """Association tests sorted by p with BH q-values: Fisher's exact per variant (odds ratio with 95% CI;
        the default), ``test="logistic"`` or ``"linear"`` with ``covariates`` (e.g. ``"age,sex,pc1,pc2"``), or
        one burden test with ``burden=True`` (``weights="madsen-browning"``). See :mod:`genolake.query.assoc`."""
        from genolake.query.assoc import assoc_table

        return assoc_table(self, phenotype, case=case, control=control, region=region, gene=gene, min_ac=min_ac,
                           max_af=max_af, burden=burden, test=test, covariates=covariates, weights=weights,
                           firth_mac=firth_mac, firth_p=firth_p, progress=progress)

    def run(self, path: str | Path, params: dict[str, str] | None = None, *,
            timeout: float | None = None, memory_limit: int | None = None) -> pa.Table:
        """Run a catalogue query (``queries/NAME.sql``, or just ``NAME``) with its parameters, typed per its header,
        in the SQL sandbox with the limits of :meth:`sql`."""
        from genolake.query.catalogue import run_query

        return run_query(self, path, params or {}, timeout=timeout, memory_limit=memory_limit)

    def info(self) -> dict[str, Any]:
        """Institutions, files, samples, variants, calls, build and bytes on disk."""
        from genolake.query.info import lake_info

        return lake_info(self)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
