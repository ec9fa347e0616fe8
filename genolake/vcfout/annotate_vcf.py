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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from genolake.contigs import detect_build, to_style
from genolake.errors import BadInputFileError, BuildMismatchError, UserInputError
from genolake.ingest.normalise import is_symbolic, left_align, trim
from genolake.store import delta_version
from genolake.vcfout.common import (
    COUNTING_RULE,
    atomic_output,
    finish,
    fmt_value,
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
# values of one group at one allele: ac, an, nhomalt, nhemi, faf95, grpmax (None = missing)
Values = tuple[int | None, int | None, int | None, int | None, float | None, str | None]


@dataclass(frozen=True)
class Group:
    """Samples a set of fields counts: ``scope`` (``joint`` or an institution) x ``stratum`` (``all`` or
    ``COLUMN=value``)."""

    scope: str
    stratum: str

    def suffix(self) -> str:
        parts = [] if self.scope == "joint" else [self.scope]
        if self.stratum != "all":
            parts.append(self.stratum.replace("=", "_"))
        return "".join("_" + p for p in parts)

    def label(self) -> str:
        who = "joint cohort" if self.scope == "joint" else f"institution {self.scope}"
        return who if self.stratum == "all" else f"{who}, samples with {self.stratum}"


@dataclass
class AnnotateReport:
    """What :func:`annotate_vcf` wrote."""

    output: Path
    n_records: int = 0
    n_alleles: int = 0
    n_found: int = 0  # alleles the lake has seen
    n_absent: int = 0  # alleles the lake has not seen that got an AN from the absent-site rules
    source: str = "lake"  # "allele_frequencies" or "lake"
    info_fields: list[str] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


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


class _Normaliser:
    """Split alleles to the lake's key: trimmed, and left-aligned when a reference FASTA is given (as ingest)."""

    def __init__(self, reference: Path | None, path: str) -> None:
        self.path = path
        self.fasta: Any = None
        self.by_bare: dict[str, str] = {}
        if reference is not None:
            import pysam

            if not Path(reference).exists():
                raise UserInputError(f"--reference {reference}: no such file")
            try:
                self.fasta = pysam.FastaFile(str(reference))
            except (OSError, ValueError) as exc:
                raise UserInputError(f"--reference {reference}: not a readable (indexed) FASTA: {exc}") from None
            from genolake.contigs import bare

            names = set(self.fasta.references)
            self.by_bare = {bare(n): n for n in names}
            self.names = names

    def key(self, chrom: str, pos: int, ref: str, alt: str, rec_no: int) -> tuple[int, str, str]:
        if self.fasta is None and len(ref) == 1 and len(alt) == 1:
            return pos, ref, alt
        if is_symbolic(alt):
            return pos, ref, alt
        if self.fasta is None:
            if len(ref) == 1 and len(alt) == 1:
                return pos, ref, alt
            return trim(pos, ref, alt)
        from genolake.contigs import bare

        name = chrom if chrom in self.names else self.by_bare.get(bare(chrom))
        if name is None:
            return trim(pos, ref, alt)
        fasta = self.fasta
        got = str(fasta.fetch(name, pos - 1, pos - 1 + len(ref))).upper()
        if got != ref:
            raise BadInputFileError(self.path, f"REF {ref} does not match the reference FASTA ({got})",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        return left_align(pos, ref, alt, lambda s, e: str(fasta.fetch(name, s, e)))


class _Lookup:
    """The lake's values for the alleles of one chunk (one contig, a position range)."""

    def __init__(self, eng: Engine, groups: list[Group], use_af: bool, want_faf: bool) -> None:
        self.eng = eng
        self.want_faf = want_faf
        self.groups = groups
        self.use_af = use_af
        self._fill_contig: str | None = None
        self._fill: list[tuple[str, str, str, dict[Group, int]]] = []  # file, institution, mode, ploidy sums
        self._strata_cols = sorted({g.stratum.split("=", 1)[0] for g in groups if g.stratum != "all"})

    # ------------------------------------------------------------------ seen alleles
    def seen(self, contig: str, keys: list[tuple[int, str, str]]) -> dict[tuple[int, str, str], dict[Group, Values]]:
        """Values of every group at each allele of ``keys`` the lake has seen (absent from the dict: unseen)."""
        if not keys:
            return {}
        eng = self.eng
        uniq = list(set(keys))
        # lists, not tuples: pyarrow converts a tuple of ints element by element (100x slower)
        pos = np.fromiter((k[0] for k in uniq), dtype=np.int32, count=len(uniq))
        tbl = pa.table({"pos": pa.array(pos), "ref": pa.array([k[1] for k in uniq], pa.string()),
                        "alt": pa.array([k[2] for k in uniq], pa.string())})
        lo, hi = int(pos.min()), int(pos.max())
        eng.con.register("_gl_vcf_keys", tbl)
        try:
            if self.use_af:
                return self._from_af(contig, lo, hi)
            return self._from_lake(contig, lo, hi)
        finally:
            eng.con.unregister("_gl_vcf_keys")

    def _from_af(self, contig: str, lo: int, hi: int) -> dict[tuple[int, str, str], dict[Group, Values]]:
        eng = self.eng
        src = eng.scan("allele_frequencies", contig=contig, start=lo, end=hi,
                       columns=["contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an", "nhomalt", "nhemi",
                                "faf95", "grpmax"])
        scopes = sorted({g.scope for g in self.groups})
        strata = sorted({g.stratum for g in self.groups} | {"all"})
        rows = eng.rows(f"""
            SELECT a.pos, a.ref, a.alt, a.scope, a.stratum, a.ac, a.an, a.nhomalt, a.nhemi, a.faf95, a.grpmax
            FROM {src} AS a JOIN _gl_vcf_keys k ON a.pos = k.pos AND a.ref = k.ref AND a.alt = k.alt
            WHERE a.contig = $contig AND a.pos BETWEEN $lo AND $hi
              AND list_contains($scopes, a.scope) AND list_contains($strata, a.stratum)""",
                        {"contig": contig, "lo": lo, "hi": hi, "scopes": scopes, "strata": strata})
        out: dict[tuple[int, str, str], dict[Group, Values]] = {}
        for pos, ref, alt, scope, stratum, ac, an, nhomalt, nhemi, faf95, grpmax in rows:
            faf_v = None if faf95 is None or faf95 != faf95 else float(faf95)
            out.setdefault((int(pos), ref, alt), {})[Group(scope, stratum)] = (
                int(ac), int(an), int(nhomalt), int(nhemi), faf_v, grpmax)
        return out

    def _from_lake(self, contig: str, lo: int, hi: int) -> dict[tuple[int, str, str], dict[Group, Values]]:
        from genolake.query.counts import group_ctes, joint_ctes
        from genolake.query.engine import quote_ident
        from genolake.query.ids import Region

        eng = self.eng
        region = Region(contig, lo, hi)
        out: dict[tuple[int, str, str], dict[Group, Values]] = {}
        scopes = ["joint", *sorted({g.scope for g in self.groups} - {"joint"})]  # joint always: it defines "seen"
        for scope in scopes:
            inst = None if scope == "joint" else scope
            params: dict[str, Any] = {}
            ctes = joint_ctes(eng, region, inst, params)
            sql_parts = ["""SELECT j.pos, j.ref, j.alt, 'all' AS g, j.ac, j.an, j.nhomalt, j.nhemi
                            FROM joint j JOIN _gl_vcf_keys k ON j.pos = k.pos AND j.ref = k.ref AND j.alt = k.alt"""]
            strata = sorted({g.stratum for g in self.groups if g.scope == scope and g.stratum != "all"})
            if strata:
                sel = []
                for i, st in enumerate(strata):
                    col, value = st.split("=", 1)
                    params[f"gl_sname{i}"], params[f"gl_sval{i}"] = st, value
                    inst_term = "AND institution = $gl_inst" if inst is not None else ""
                    sel.append(f"SELECT DISTINCT institution, sample_id, $gl_sname{i} AS g FROM phenotypes "
                               f"WHERE {quote_ident(col)} = $gl_sval{i} {inst_term}")
                if inst is not None:
                    params["gl_inst"] = inst
                ctes += "," + group_ctes(eng, region, inst, " UNION ALL ".join(sel), params)
                sql_parts.append("""SELECT g.pos, g.ref, g.alt, g.g, g.ac, g.an, g.nhomalt, g.nhemi
                                    FROM gcounts g JOIN _gl_vcf_keys k ON g.pos = k.pos AND g.ref = k.ref
                                    AND g.alt = k.alt""")
            rows = eng.rows(f"WITH {ctes} " + " UNION ALL ".join(sql_parts), params)
            for pos, ref, alt, stratum, ac, an, nhomalt, nhemi in rows:
                key = (int(pos), ref, alt)
                if scope != "joint" and key not in out:
                    continue  # cannot happen (a site of an institution is a site of the lake); kept safe
                out.setdefault(key, {})[Group(scope, stratum)] = (int(ac), int(an), int(nhomalt), int(nhemi),
                                                                  None, None)
        if self.want_faf:
            from genolake.compute.frequencies import faf

            todo = [(vals, g, v) for vals in out.values() for g, v in vals.items() if g.scope == "joint" and v[1]]
            if todo:  # one vectorised call (scipy's gammaincinv per allele would dominate the run)
                ffs = faf(np.array([t[2][0] for t in todo]), np.array([t[2][1] for t in todo]))
                for (vals, g, v), x in zip(todo, ffs.tolist(), strict=True):
                    vals[g] = (v[0], v[1], v[2], v[3], float(x), None)
        return out

    # ------------------------------------------------------------------ absent-site AN
    def _load_fill(self, contig: str) -> None:
        if self._fill_contig == contig:
            return
        eng = self.eng
        cat = eng.catalog
        files = cat.absent_counting(contig)
        self._fill = []
        self._fill_contig = contig
        if not files:
            return
        if any(f.absent_mode == "callable" for f in files):
            eng.callable_regions()
        from genolake.query.engine import quote_ident

        cols = "".join(f", ph.{quote_ident(c)}" for c in self._strata_cols)
        join = ("LEFT JOIN phenotypes ph ON ph.institution = p.institution AND ph.sample_id = p.sample_id"
                if self._strata_cols else "")
        rows = eng.rows(f"SELECT p.file_id, p.ploidy {cols} FROM ploidy p {join} "
                        "WHERE p.contig = $contig AND list_contains($fids, p.file_id)",
                        {"contig": contig, "fids": [f.file_id for f in files]})
        sums: dict[str, dict[Group, int]] = {f.file_id: {} for f in files}
        inst_of = {f.file_id: f.institution for f in files}
        for fid, ploidy, *values in rows:
            inst = inst_of[fid]
            pheno = dict(zip(self._strata_cols, values, strict=True))
            acc = sums[fid]
            for g in self.groups:
                if g.scope != "joint" and g.scope != inst:
                    continue
                if g.stratum != "all":
                    col, value = g.stratum.split("=", 1)
                    if pheno.get(col) != value:
                        continue
                acc[g] = acc.get(g, 0) + int(ploidy)
        self._fill = [(f.file_id, f.institution, f.absent_mode, sums[f.file_id]) for f in files]

    def fill_files(self, contig: str) -> list[tuple[str, str, str, dict[Group, int]]]:
        """Files whose samples count at alleles absent from them on ``contig`` (with their ploidy sums)."""
        self._load_fill(contig)
        return self._fill

    def absent_an(self, contig: str, pos: int, group: Group) -> int | None:
        """AN of ``group`` at an allele no file of the scope lists: the ploidy of the samples of absent-as-ref
        files and of callable files covering ``pos``; None if no such file of the scope counts there."""
        self._load_fill(contig)
        total: int | None = None
        cat = self.eng.catalog
        for fid, inst, mode, sums in self._fill:
            if group.scope != "joint" and group.scope != inst:
                continue
            if mode == "ref" or cat.in_callable(fid, contig, pos):
                total = (total or 0) + sums.get(group, 0)
        return total


def _af(ac: int | None, an: int | None) -> float | None:
    return ac / an if ac is not None and an else None


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
        normaliser = _Normaliser(Path(reference) if reference else None, path)
        lookup = _Lookup(eng, groups, use_af, "faf95" in names)
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
                    writer = _ChunkWriter(sink, lookup, columns, report, declared & {c[0] for c in columns})
                    fmt = sniff_format(path)
                    records = (_htslib_records(reader, path, htslib_error) if fmt == "bcf"
                               else _text_records(path, fmt))
                    _stream(records, path, len(reader.samples), style, normaliser, writer, chunk_records, progress)
            finally:
                reader.close()
            finish(dest)
    finally:
        eng.con.close()
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


class _ChunkWriter:
    """Buffers the records of one chunk, looks their alleles up, writes them with the new INFO fields.

    Each distinct allele's values are formatted once; alleles the lake has not seen share their strings by the
    tuple of absent-site ANs (usually one or two per contig)."""

    def __init__(self, sink: Any, lookup: _Lookup, columns: list[tuple[str, str, Group]], report: AnnotateReport,
                 ours: set[str]) -> None:
        self.sink = sink
        self.lookup = lookup
        self.columns = columns
        self.report = report
        self.ours = ours
        self.contig = ""
        self.records: list[tuple[list[str], list[tuple[int, str, str]]]] = []
        self.groups = list(dict.fromkeys(c[2] for c in columns))
        self.found: set[tuple[int, str, str]] = set()
        self.absent_known: set[tuple[int, str, str]] = set()

    def _absent(self, contig: str, pos: int) -> tuple[int | None, ...]:
        return tuple(self.lookup.absent_an(contig, pos, g) for g in self.groups)

    def _strings(self, contig: str, keys: set[tuple[int, str, str]]) -> dict[tuple[int, str, str], tuple[list[str], str]]:
        """Per allele: the formatted value of every column (``.`` where missing) and the INFO text of a record
        with this one allele."""
        seen = self.lookup.seen(contig, list(keys))
        cols = self.columns
        gi = {g: i for i, g in enumerate(self.groups)}
        self.found = set(seen)
        self.absent_known = set()
        out: dict[tuple[int, str, str], tuple[list[str], str]] = {}
        unseen_cache: dict[tuple[int | None, ...], tuple[list[str], str]] = {}
        template = ";".join(f"{c[0]}={{}}" for c in cols)
        has_fill = bool(self.lookup.fill_files(contig))
        for k in keys:
            vals = seen.get(k)
            if vals is None:
                absent = self._absent(contig, k[0]) if has_fill else (None,) * len(self.groups)
                got = unseen_cache.get(absent)
                if got is None:
                    vs = [_value(f, _unseen(absent[gi[g]])) for _key, f, g in cols]
                    got = unseen_cache[absent] = (vs, template.format(*vs))
                if any(a is not None for a in absent):
                    self.absent_known.add(k)
                out[k] = got
                continue
            full: list[Values] = []
            absent_t: tuple[int | None, ...] | None = None
            for g in self.groups:
                v = vals.get(g)
                if v is None:  # no row for the group: none of its samples' files lists the allele
                    if absent_t is None:
                        absent_t = self._absent(contig, k[0]) if has_fill else (None,) * len(self.groups)
                    an = absent_t[gi[g]] or 0
                    v = (0, an, 0, 0, 0.0 if an else None, None)
                full.append(v)
            vs = [_value(f, full[gi[g]]) for _key, f, g in cols]
            out[k] = (vs, template.format(*vs))
        return out

    def flush(self) -> None:
        if not self.records:
            return
        contig = self.contig
        all_keys = [k for _fields, ks in self.records for k in ks]
        n_alleles = len(all_keys)
        strings = self._strings(contig, set(all_keys))
        found, absent_known = self.found, self.absent_known
        rep = self.report
        rep.n_found += sum(map(found.__contains__, all_keys)) if found else 0
        rep.n_absent += sum(map(absent_known.__contains__, all_keys)) if absent_known else 0
        names = [c[0] for c in self.columns]
        strip = self.ours  # INFO keys of ours the input already declared: replaced, not repeated
        out: list[str] = []
        for fields, ks in self.records:
            if not ks:
                out.append("\t".join(fields) + "\n")
                continue
            if len(ks) == 1:
                add = strings[ks[0]][1]
            else:
                per = [strings[k][0] for k in ks]
                add = ";".join(f"{n}={','.join(p[i] for p in per)}" for i, n in enumerate(names))
            info = fields[7]
            if info == "." or not info:
                fields[7] = add
            else:
                if strip:
                    info = ";".join(i for i in info.split(";") if i.split("=", 1)[0] not in strip) or "."
                fields[7] = add if info == "." else f"{info};{add}"
            out.append("\t".join(fields) + "\n")
        rep.n_records += len(self.records)
        rep.n_alleles += n_alleles
        self.sink.write("".join(out).encode())
        self.records = []


def _unseen(an: int | None) -> Values:
    if an is None:
        return (None, None, None, None, None, None)
    return (0, an, 0, 0, 0.0 if an else None, None)


def _value(f: str, v: Values) -> str:
    ac, an, nhomalt, nhemi, faf95, grpmax = v
    if f == "ac":
        return fmt_value(ac)
    if f == "an":
        return fmt_value(an)
    if f == "af":
        return fmt_value(_af(ac, an))
    if f == "nhomalt":
        return fmt_value(nhomalt)
    if f == "nhemi":
        return fmt_value(nhemi)
    if f == "faf95":
        return fmt_value(faf95)
    return fmt_value(grpmax)


def _htslib_records(reader: Any, path: str, htslib_error: Callable[[], str | None]) -> Iterator[tuple[int, list[str]]]:
    """Records of a BCF (or any file htslib reads) as VCF text fields, checked by htslib as they are read."""
    records = iter(reader)
    rec_no = 0
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except Exception as exc:  # cyvcf2 raises a bare Exception on a record htslib cannot parse
            detail = htslib_error() or str(exc)
            raise BadInputFileError(path, f"cannot parse record: {_clean(detail)}", record=f"record {rec_no + 1}") from None
        rec_no += 1
        err = htslib_error()
        if err is not None:  # do not touch a record htslib failed to parse
            raise BadInputFileError(path, f"cannot parse record: {_clean(err)}", record=f"record {rec_no}")
        yield rec_no, str(rec).rstrip("\n").split("\t", 8)


def _text_records(path: str, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """Records of a VCF or (b)gzipped VCF as the text fields they were written with (kept byte for byte)."""
    import gzip
    import zlib

    opener: Any = gzip.open if fmt in ("vcf.gz", "vcf.gzip") else open
    rec_no = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            for line in fh:
                if line.startswith("#"):
                    continue
                rec_no += 1
                yield rec_no, line.rstrip("\r\n").split("\t", 8)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
        raise BadInputFileError(path, f"cannot read: {exc}", record=f"after record {rec_no}") from None


def _stream(records: Iterator[tuple[int, list[str]]], path: str, n_samples: int, style: str,
            normaliser: _Normaliser, writer: _ChunkWriter, chunk_records: int,
            progress: Callable[[int, int], None] | None) -> None:
    """Check every record, split and normalise its alleles, hand them to ``writer`` in chunks of one contig."""
    cur_chrom: str | None = None
    contig = ""
    done: set[str] = set()
    last = 0
    rec_no = 0
    width = n_samples + 1  # FORMAT + samples, in the 9th field
    pending = writer.records
    key = normaliser.key
    for rec_no, fields in records:
        if len(fields) < 8 or not fields[0]:
            raise BadInputFileError(path, "malformed data line (fewer than 8 tab-separated columns)",
                                    record=_after(rec_no, cur_chrom, last))
        chrom = fields[0]
        try:
            pos = int(fields[1])
        except ValueError:
            raise BadInputFileError(path, f"invalid POS {fields[1]!r}", record=_after(rec_no, cur_chrom, last)) from None
        if pos < 1:
            raise BadInputFileError(path, f"invalid POS {pos}", record=_after(rec_no, cur_chrom, last))
        if n_samples and (len(fields) < 9 or fields[8].count("\t") + 1 != width):
            got = fields[8].count("\t") if len(fields) == 9 else 0
            raise BadInputFileError(path, f"{got} sample columns where the header names {n_samples}",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        if chrom != cur_chrom:
            writer.flush()
            pending = writer.records
            if chrom in done:
                raise BadInputFileError(path, f"records of contig {chrom} are not contiguous (sort the file with "
                                        "`bcftools sort`)", record=f"record {rec_no} ({chrom}:{pos})")
            if cur_chrom is not None:
                done.add(cur_chrom)
            cur_chrom = chrom
            contig = to_style(chrom, style)
        elif pos < last:
            raise BadInputFileError(path, f"position {pos} comes after {last} (sort the file with `bcftools sort`)",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        elif len(pending) >= chunk_records:
            writer.flush()
            pending = writer.records
        last = pos
        raw_ref = fields[3]
        ref = raw_ref.upper()
        if not ref or ref.strip("ACGTN"):
            raise BadInputFileError(path, f"invalid REF {raw_ref!r} (only A, C, G, T, N allowed)",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        keys = []
        if fields[4] != ".":
            for a in fields[4].split(","):
                alt = a.upper()
                if not alt or alt == ref or (alt.strip("ACGTN") and not is_symbolic(alt)):
                    raise BadInputFileError(path, f"invalid ALT allele {a!r}", record=f"record {rec_no} ({chrom}:{pos})")
                keys.append((pos, ref, alt) if len(ref) == 1 and len(alt) == 1 and normaliser.fasta is None
                            else key(chrom, pos, ref, alt, rec_no))
        writer.contig = contig
        pending.append((fields, keys))
        if progress is not None and not rec_no % 10_000:
            progress(rec_no, 0)
    writer.flush()
    if progress is not None:
        progress(rec_no, 1)


def _clean(msg: str) -> str:
    import re

    return re.sub(r"^\[[EW]::[^\]]*\]\s*", "", msg).strip()


def _after(rec_no: int, chrom: str | None, pos: int) -> str:
    return f"record {rec_no}" + (f" (after {chrom}:{pos})" if chrom else "")
