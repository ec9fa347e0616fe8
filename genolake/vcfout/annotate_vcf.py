"""`genolake annotate-vcf`: a VCF (any samples, or sites only) annotated with the lake's allele frequencies.

Every input record is written back unchanged except for new ``Number=A`` INFO fields (``GL_AC``, ``GL_AN``,
``GL_AF``, ... for the joint cohort; ``GL_AC_<institution>``, ``GL_AC_<column>_<value>``, ... on request). Each
alternate allele is matched after the normalisation ingest applies (split, trimmed, left-aligned with
``--reference``), so a non-minimal ``A>AT`` written as ``AC>ATC`` still finds its lake allele.

Values come from ``allele_frequencies`` when ``genolake aggregate`` wrote it after the last ingest and it holds
every requested stratum (as ``genolake query variant`` decides), else from the lake by the counting rule of
:mod:`genolake.query.counts` (the same SQL as ``genolake query region``). An allele the lake has never seen gets
AC 0 and the AN of the samples that count at an absent site (``--absent-as-ref`` files, and ``--callable-regions``
files inside their regions); with no such file the lake does not know the AN and the values are missing (``.``).

The input is read once, in chunks of at most ``chunk_records`` records of one contig; each chunk's alleles are
looked up in the lake over the chunk's position range only, so memory does not grow with the input. The output is
bgzipped and tabix-indexed, written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genolake.contigs import detect_build
from genolake.errors import BadInputFileError, BuildMismatchError, UserInputError
from genolake.store import delta_version
from genolake.vcfout.annotate_lookup import Group, Lookup
from genolake.vcfout.annotate_read import htslib_records, text_blocks
from genolake.vcfout.annotate_stream import Checker, Normaliser, stream
from genolake.vcfout.annotate_write import AnnotateReport, ChunkWriter
from genolake.vcfout.common import (
    COUNTING_RULE,
    atomic_output,
    finish,
    header_value,
    info_key,
)

if TYPE_CHECKING:
    from genolake.query.engine import Engine

log = logging.getLogger(__name__)

FIELDS = ("ac", "an", "af", "nhomalt", "nhemi", "faf95", "grpmax")
DEFAULT_FIELDS = ("ac", "an", "af")
_KEY = {"ac": "AC", "an": "AN", "af": "AF", "nhomalt": "nhomalt", "nhemi": "nhemi", "faf95": "faf95",
        "grpmax": "grpmax"}
_TYPE = {"ac": "Integer", "an": "Integer", "af": "Float", "nhomalt": "Integer", "nhemi": "Integer",
         "faf95": "Float", "grpmax": "String"}
_WHAT = {
    "ac": "Alternate allele count",
    "an": "Allele number (counted non-missing alleles at this split allele's site)",
    "af": "Alternate allele frequency AC/AN",
    "nhomalt": "Diploid samples homozygous for the allele",
    "nhemi": "Haploid samples carrying the allele (hemizygous)",
    "faf95": "Filtering allele frequency (95% CI, Whiffin et al. 2017)",
    "grpmax": "Group with the highest AF among --faf-groups strata (from genolake aggregate)",
}
_JOINT_ONLY = {"faf95"}  # allele_frequencies has faf95 on the joint scope only
_JOINT_ALL_ONLY = {"grpmax"}  # ... and grpmax on the joint `all` rows only
def parse_fields(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``ac,an,af`` (or a list of such) as a tuple of known field names, in the order given."""
    if text is None:
        return DEFAULT_FIELDS
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for name in item.split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in FIELDS:
                raise UserInputError(f"--fields: unknown field {name!r}; known fields: {', '.join(FIELDS)}")
            if name not in out:
                out.append(name)
    if not out:
        raise UserInputError(f"--fields is empty; give some of: {', '.join(FIELDS)}")
    return tuple(out)


def _groups(eng: Engine, scopes: Sequence[str], strata: Sequence[str]) -> list[Group]:
    insts = eng.catalog.institutions
    chosen: list[str] = []
    for s in scopes or ["joint"]:
        for name in (["joint", *insts] if s == "all" else [s]):
            if name != "joint" and name not in insts:
                raise UserInputError(f"--scope: unknown institution {name!r}; the lake has: "
                                     f"{', '.join(insts) or 'none'} (or use joint / all)")
            if name not in chosen:
                chosen.append(name)
    parsed = ["all"]
    for st in strata:
        col, sep, value = st.partition("=")
        col, value = col.strip().lower(), value.strip()
        if not sep or not col or not value:
            raise UserInputError(f"--stratum {st!r}: use COLUMN=value, e.g. sex=female")
        kinds = eng.catalog.phenotypes
        if kinds.get(col) != "categorical":
            cats = sorted(n for n, k in kinds.items() if k == "categorical")
            raise UserInputError(f"--stratum {st!r}: {col!r} is not a categorical phenotype of the lake; "
                                 f"categorical phenotypes: {', '.join(cats) or 'none (load some with genolake phenotypes load)'}")
        from genolake.query.engine import quote_ident

        values = sorted(str(r[0]) for r in eng.rows(
            f"SELECT DISTINCT {quote_ident(col)} FROM phenotypes WHERE {quote_ident(col)} IS NOT NULL"))
        if value not in values:
            raise UserInputError(f"--stratum {st!r}: no sample has {col} = {value!r}, so every count would be "
                                 f"empty; values of {col}: {', '.join(values[:30])}")
        label = f"{col}={value}"
        if label not in parsed:
            parsed.append(label)
    return [Group(sc, st) for sc in chosen for st in parsed]


def _check_build(path: str, lines: list[str], lake_build: str) -> None:
    build = detect_build(lines, path)
    if build is not None and build != lake_build:
        raise BuildMismatchError(f"{path}: the VCF is {build} (from its header) but the lake is {lake_build}; "
                                 f"lift it over to {lake_build} first")


def annotate_vcf(
    lake: Path | str,
    vcf: Path | str,
    out: Path | str,
    *,
    fields: Sequence[str] | str | None = None,
    scopes: Sequence[str] = ("joint",),
    strata: Sequence[str] = (),
    prefix: str = "GL_",
    reference: Path | str | None = None,
    chunk_records: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> AnnotateReport:
    """Write ``vcf`` to ``out`` (bgzipped, tabix-indexed) with the lake's frequencies as ``Number=A`` INFO fields.

    Parameters
    ----------
    lake
        The lake folder.
    vcf
        The VCF, bgzipped VCF or BCF to annotate (any number of samples, or none).
    out
        The output, ``.vcf.gz``; written under a temporary name and renamed when complete.
    fields
        Among ``ac, an, af, nhomalt, nhemi, faf95, grpmax`` (default ``ac, an, af``); ``faf95`` is written for
        the joint scope and ``grpmax`` for the joint ``all`` group only, as ``genolake aggregate`` computes them.
    scopes
        ``joint`` (default), institution names, or ``all`` (joint and every institution).
    strata
        ``COLUMN=value`` of categorical phenotypes (``sex=female``): the same fields for those samples.
    prefix
        Prefix of the INFO keys (``GL_AC``, ``GL_AC_north``, ``GL_AC_sex_female``).
    reference
        FASTA to left-align indels before matching (give the one the lake was ingested with).
    chunk_records
        Records per lake look-up (one contig per chunk): bounds memory.

    Examples
    --------
    >>> annotate_vcf("lake", "patient.vcf.gz", "patient.gl.vcf.gz", fields="ac,an,af,nhomalt")  # doctest: +SKIP
    AnnotateReport(output=PosixPath('patient.gl.vcf.gz'), n_records=98123, ...)
    """
    from genolake.ingest.reader import htslib_error, htslib_messages, open_vcf, sniff_format
    from genolake.query.engine import Engine
    from genolake.store import LakeStore

    t0 = time.perf_counter()
    names = parse_fields(fields)
    if not prefix or info_key(prefix) != prefix:
        raise UserInputError(f"--prefix {prefix!r}: use letters, digits and _ (an INFO key prefix such as GL_)")
    path = str(vcf)
    if not Path(path).exists():
        raise BadInputFileError(path, "no such file")
    store = LakeStore.open(lake)
    eng = Engine(store, threads=2)
    report = AnnotateReport(Path(out))
    try:
        groups = _groups(eng, list(scopes), list(strata))
        use_af, why = _frequencies_usable(eng, groups)
        if "grpmax" in names and not use_af:
            raise UserInputError(f"--fields grpmax needs allele_frequencies from `genolake aggregate --faf-groups` "
                                 f"run after the last ingest ({why})")
        report.source = "allele_frequencies" if use_af else "lake"
        if use_af:
            note = _dedupe_note(eng)
            if note:
                report.source += f" ({note})"
                report.warnings.append(note)
        columns = _columns(names, groups, prefix)
        report.info_fields = [c[0] for c in columns]
        normaliser = Normaliser(Path(reference) if reference else None, path)
        lookup = Lookup(eng, groups, use_af, "faf95" in names)
        style = store.contig_style
        lake_version = _lake_version(store, use_af)
        with atomic_output(out, allowed=("vcf.gz",)) as dest, htslib_messages():
            reader = open_vcf(path)
            try:
                header = _header(reader.raw_header, path, store, columns, lake_version, report.source,
                                 normaliser.fasta is not None)
                import pysam

                with pysam.BGZFile(str(dest.tmp), "wb", None) as sink:
                    sink.write(header.encode())
                    declared = {ln[11:].split(",", 1)[0] for ln in reader.raw_header.split("\n")
                                if ln.startswith("##INFO=<ID=")}
                    writer = ChunkWriter(sink, lookup, columns, report, declared & {c[0] for c in columns})
                    fmt = sniff_format(path)
                    blocks = (htslib_records(reader, path, htslib_error) if fmt == "bcf"
                              else text_blocks(path, fmt))
                    checker = Checker(path, len(reader.samples), style, normaliser, writer, chunk_records)
                    stream(blocks, checker, progress)
            finally:
                reader.close()
            finish(dest)
    finally:
        eng.close()
    report.seconds = time.perf_counter() - t0
    return report


def _frequencies_usable(eng: Engine, groups: list[Group]) -> tuple[bool, str]:
    """Whether ``allele_frequencies`` is current and holds every requested stratum (else: why not)."""
    cat = eng.catalog
    if "allele_frequencies" not in cat.tables or not cat.table_paths("allele_frequencies"):
        return False, "genolake aggregate has not run"
    if not cat.frequencies_current:
        return False, "files were ingested after the last genolake aggregate"
    wanted = {g.stratum for g in groups}
    if wanted != {"all"}:
        have = {r[0] for r in eng.rows("SELECT DISTINCT stratum FROM allele_frequencies")}
        missing = sorted(wanted - have)
        if missing:
            return False, f"the last genolake aggregate has no stratum {', '.join(missing)}"
    return True, ""


def _dedupe_note(eng: Engine) -> str | None:
    """What ``aggregate --dedupe`` left out of the current ``allele_frequencies`` (from ``aggregate_runs``)."""
    if "aggregate_runs" not in eng.catalog.tables:
        return None
    try:
        rows = eng.rows("SELECT deduplicated, dropped FROM aggregate_runs")
    except Exception as exc:  # a table of another shape: say nothing
        log.info("aggregate_runs not readable: %s", exc)
        return None
    if not rows or not rows[0][0] or not rows[0][1]:
        return None
    return (f"deduplicated by genolake aggregate --dedupe: {int(rows[0][1])} duplicate copies left out; the AN of "
            "alleles the lake has not seen still counts every copy")


def _columns(names: tuple[str, ...], groups: list[Group], prefix: str) -> list[tuple[str, str, Group]]:
    """(INFO key, field, group) for every field and group, in a stable order; keys checked unique."""
    cols: list[tuple[str, str, Group]] = []
    seen: dict[str, tuple[str, Group]] = {}
    for g in groups:
        for f in names:
            if f in _JOINT_ONLY and g.scope != "joint":
                continue
            if f in _JOINT_ALL_ONLY and (g.scope != "joint" or g.stratum != "all"):
                continue
            key = info_key(prefix + _KEY[f] + g.suffix())
            if key in seen:
                raise UserInputError(f"INFO key {key} would be written for two groups ({seen[key][1].label()} and "
                                     f"{g.label()}); choose another --prefix or fewer strata")
            seen[key] = (f, g)
            cols.append((key, f, g))
    return cols


def _lake_version(store: Any, use_af: bool) -> str:
    files_v = delta_version(store.root / "files")
    text = f"files table version {files_v}"
    if use_af:
        text += f", allele_frequencies version {delta_version(store.root / 'allele_frequencies')}"
    return text


def _header(raw: str, path: str, store: Any, columns: list[tuple[str, str, Group]], version: str, source: str,
            left_aligned: bool) -> str:
    lines = raw.rstrip("\n").split("\n")
    if not lines or not lines[-1].startswith("#CHROM"):
        raise BadInputFileError(path, "missing #CHROM header line")
    _check_build(path, lines, store.build)
    ours = {c[0] for c in columns}
    kept = [ln for ln in lines[:-1]
            if not (ln.startswith("##INFO=<ID=") and ln[11:].split(",", 1)[0] in ours)
            and not ln.startswith("##genolake_annotate=")]
    lake_name = f"{store.root.name} (lake_id {store.config.get('lake_id')}, {store.build})"
    from genolake import __version__

    new = [
        "##genolake_annotate=<Lake=" + header_value(lake_name) + ",Version=" + header_value(version)
        + ",Source=" + header_value(source) + ",Matching=" + header_value(
            "alleles split, trimmed" + (" and left-aligned against --reference" if left_aligned else "")
            + " as at ingest") + ",Rule=" + header_value(COUNTING_RULE)
        + ",genolake=" + header_value(__version__) + ">"
    ]
    for key, f, g in columns:
        desc = (f"{_WHAT[f]} in the genolake lake {lake_name}, {version}, {g.label()}. {COUNTING_RULE}; an allele the "
                "lake has not seen has AC 0 and the AN of absent-site samples where the lake knows it, else '.'")
        new.append(f"##INFO=<ID={key},Number=A,Type={_TYPE[f]},Description={header_value(desc)}>")
    return "\n".join(kept + new + [lines[-1]]) + "\n"
