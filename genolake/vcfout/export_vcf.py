"""`genolake export vcf`: the lake's genotypes back to a bgzipped VCF or BCF, one column per sample.

Records are the lake's split, normalised alleles as stored (one biallelic record per alternate allele, as
``bcftools norm -m-`` writes them; the header says so). Each sample's genotype at a record follows the counting
rule (docs/SCHEMA.md):

- a stored call (every genotype but diploid 0/0) is written as stored, phase included, with GQ, DP and AD
  (``ad_ref,ad_alt``) where they were stored;
- a sample whose file lists the site and has no stored call there is ``0/0`` (hom-ref calls are not stored, so
  neither is their phase or their GQ/DP/AD);
- a sample whose file does not list the site is hom-ref of its ploidy on the contig (``0/0``, or ``0`` for a
  haploid chrX) when the file was ingested ``--absent-as-ref``, or with ``--callable-regions`` and the site lies in
  one of them; otherwise missing (``./.``, or ``.`` for a haploid sample): the file does not speak for the site.

Columns are the lake's pseudonyms; ``reveal`` (raw IDs, or a VCF whose samples are the raw IDs) lets the key
holder of an institution see its own samples' raw IDs: they are pseudonymised with the lake key as ingest does
and mapped back. Regions are read one contig window at a time (a window holds a bounded number of genotypes), so
memory does not grow with the export. The file is written under a temporary name, indexed (tabix / CSI) and renamed
when complete.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from genolake.contigs import parse_region, to_style
from genolake.errors import BadInputFileError, UserInputError
from genolake.store import delta_version
from genolake.vcfout.common import atomic_output, finish, header_value

if TYPE_CHECKING:
    from genolake.query.engine import Engine

log = logging.getLogger(__name__)

CELLS_PER_WINDOW = 4_000_000  # genotypes built in memory at once (sites x samples)
FORMAT = "GT:GQ:DP:AD"
RECORDS_NOTE = ("biallelic records as stored: one record per split, normalised (trimmed"
                "{aligned}) alternate allele, genotypes recoded per allele as bcftools norm -m- does; "
                "multi-allelic input records are not re-joined")


@dataclass
class ExportReport:
    """What :func:`export_vcf` wrote."""

    output: Path
    n_records: int = 0
    n_samples: int = 0
    n_revealed: int = 0
    n_genotypes_stored: int = 0
    seconds: float = 0.0


@dataclass
class _Sample:
    institution: str
    sample_id: str
    name: str  # column name: the pseudonym, or the raw ID when revealed


def _contig_key(contig: str) -> tuple[int, int, str]:
    b = contig[3:] if contig.lower().startswith("chr") else contig
    if b.isdigit():
        return (0, int(b), "")
    order = {"X": 1, "Y": 2, "M": 3, "MT": 3}
    return (1, order.get(b.upper(), 9), b)


def _read_ids(path: Path, what: str) -> list[tuple[int, str]]:
    """IDs one per line (first whitespace-separated word; blank and ``#`` lines skipped), with line numbers."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserInputError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((i, s.split()[0]))
    if not out:
        raise UserInputError(f"{what} {path}: no sample IDs in the file")
    return out


def _regions(eng: Engine, style: str, regions: list[str], bed: Path | None,
             contigs: list[str], institution: str | None = None) -> list[tuple[str, int, int]]:
    """Merged (contig, start, end) regions, 1-based inclusive, in contig order; the whole of every contig
    of the selection if none is given."""
    wanted: list[tuple[str, int, int]] = []
    for r in regions:
        wanted.append(parse_region(r, style))
    if bed is not None:
        try:
            lines = bed.read_text().splitlines()
        except OSError as exc:
            raise UserInputError(f"-R {bed}: cannot read: {exc.strerror or exc}") from None
        for i, line in enumerate(lines, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            f = line.split("\t") if "\t" in line else line.split()
            try:
                start0, end = int(f[1]), int(f[2])
            except (IndexError, ValueError):
                raise BadInputFileError(str(bed), "a BED line needs CHROM, START and END (0-based, half-open)",
                                        record=f"line {i}") from None
            if start0 < 0 or end <= start0:
                raise BadInputFileError(str(bed), f"invalid interval {start0}-{end}", record=f"line {i}")
            wanted.append((to_style(f[0], style), start0 + 1, end))
        if not wanted:
            raise UserInputError(f"-R {bed}: no intervals in the file")
    if not wanted:
        return [(c, 1, 2**31 - 1) for c in contigs]
    unknown = sorted({c for c, _s, _e in wanted if c not in contigs})
    if unknown:
        raise UserInputError(f"region contig {unknown[0]} has no data in the lake"
                             + (f" for institution {institution}" if institution else "")
                             + f"; contigs with data: {', '.join(contigs) or 'none'}")
    merged: list[tuple[str, int, int]] = []
    for c, s, e in sorted(wanted, key=lambda r: (_contig_key(r[0]), r[1], r[2])):
        if merged and merged[-1][0] == c and s <= merged[-1][2] + 1:
            merged[-1] = (c, merged[-1][1], max(merged[-1][2], e))
        else:
            merged.append((c, s, e))
    return merged


def _select_samples(eng: Engine, store: Any, institution: str | None, samples_file: Path | None,
                    reveal: Path | None) -> tuple[list[_Sample], int]:
    """The output columns: every sample of the selection (institution, then file ingest order, then column), or
    those named in ``samples_file``; raw IDs for the ones ``reveal`` names."""
    rows = eng.rows("""SELECT s.institution, s.sample_id, s.file_id, s.column_index, f.ingested_at
                       FROM samples s JOIN files f USING (file_id)
                       ORDER BY s.institution, f.ingested_at, s.file_id, s.column_index""")
    seen: dict[tuple[str, str], int] = {}
    ordered: list[tuple[str, str]] = []
    for inst, sid, _fid, _col, _at in rows:
        if institution is not None and inst != institution:
            continue
        if (inst, sid) not in seen:
            seen[(inst, sid)] = len(ordered)
            ordered.append((inst, sid))
    raw_of: dict[tuple[str, str], str] = {}
    if reveal is not None:
        if institution is None:
            raise UserInputError("--reveal needs --institution: raw IDs are revealed for one institution, the key "
                                 "holder's own")
        from genolake.samples.lookup import pseudonym_map

        pmap = pseudonym_map(store, institution, reveal)  # raw IDs pseudonymised with the key, as at ingest
        ids = list(pmap.values())
        raw_of = {(institution, p): raw for p, raw in pmap.items() if (institution, p) in seen}
        if not raw_of:
            raise UserInputError(f"--reveal {reveal}: none of its {len(ids)} IDs is a sample of institution "
                                 f"{institution} in this lake (another institution's IDs, or another lake's key?)")
    if samples_file is not None:
        by_name = {sid: k for k, _i in seen.items() for sid in [k[1]]}
        by_name.update({raw: k for k, raw in raw_of.items()})
        picked: list[tuple[str, str]] = []
        bad: list[int] = []
        for line_no, name in _read_ids(samples_file, "--samples"):
            k = by_name.get(name)
            if k is None:
                bad.append(line_no)
            elif k not in picked:
                picked.append(k)
        if bad:
            raise UserInputError(f"--samples {samples_file}: {len(bad)} ID(s) are not samples of the lake"
                                 + (f" in institution {institution}" if institution else "")
                                 + f" (first at line {bad[0]}); give pseudonyms, or raw IDs with --reveal")
        ordered = picked
    out = [_Sample(i, s, raw_of.get((i, s), s)) for i, s in ordered]
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise UserInputError("two output columns would have the same name (a revealed raw ID equals a pseudonym?)")
    return out, len(raw_of)


class _ContigState:
    """Per contig: which output columns each file holds, and the hom-ref / missing genotype of each column."""

    def __init__(self, eng: Engine, contig: str, samples: list[_Sample]) -> None:
        cat = eng.catalog
        self.contig = contig
        col_of = {(s.institution, s.sample_id): j for j, s in enumerate(samples)}
        members: dict[str, list[int]] = {}
        for fid, inst, sid in eng.rows("SELECT file_id, institution, sample_id FROM samples"):
            j = col_of.get((inst, sid))
            if j is not None and fid in cat.files and contig in cat.files[fid].contigs:
                members.setdefault(fid, []).append(j)
        self.file_cols = {f: np.array(sorted(set(js)), dtype=np.int64) for f, js in members.items()}
        ploidy = np.full(len(samples), 2, dtype=np.int64)
        for fid, inst, sid, p in eng.rows("SELECT file_id, institution, sample_id, ploidy FROM ploidy "
                                          "WHERE contig = $c", {"c": contig}):
            j = col_of.get((inst, sid))
            if j is not None and fid in self.file_cols:
                ploidy[j] = int(p)
        self.missing = np.array(["/".join(["."] * max(int(p), 1)) for p in ploidy], dtype=object)
        self.homref = np.array(["/".join(["0"] * max(int(p), 1)) for p in ploidy], dtype=object)
        self.fill = [(f.file_id, f.absent_mode) for f in cat.absent_counting(contig) if f.file_id in self.file_cols]
        if any(m == "callable" for _f, m in self.fill):
            eng.callable_regions()


def export_vcf(
    lake: Path | str,
    out: Path | str,
    *,
    institution: str | None = None,
    regions: list[str] | None = None,
    regions_file: Path | str | None = None,
    samples_file: Path | str | None = None,
    reveal: Path | str | None = None,
    cells_per_window: int = CELLS_PER_WINDOW,
) -> ExportReport:
    """Write the lake's genotypes (one column per sample) to ``out`` (``.vcf.gz`` or ``.bcf``), indexed.

    Parameters
    ----------
    lake
        The lake folder.
    out
        ``OUT.vcf.gz`` (tabix index) or ``OUT.bcf`` (CSI index).
    institution
        Only this institution's samples and sites.
    regions, regions_file
        Regions ``CONTIG[:START-END]`` (1-based, inclusive) or a BED file; default: every contig.
    samples_file
        Sample IDs, one per line (pseudonyms, or raw IDs named by ``reveal``): only these columns, in this order.
    reveal
        Raw IDs (one per line) or a VCF/BCF whose samples are the raw IDs, of ``institution``'s own samples;
        needs the lake key. Those columns are named by raw ID.

    Examples
    --------
    >>> export_vcf("lake", "north.bcf", institution="north", regions=["chr20:1-2000000"])  # doctest: +SKIP
    ExportReport(output=PosixPath('north.bcf'), n_records=5210, n_samples=40, ...)
    """
    from genolake.query.engine import Engine
    from genolake.store import LakeStore

    t0 = time.perf_counter()
    store = LakeStore.open(lake)
    eng = Engine(store, threads=2)
    report = ExportReport(Path(out))
    try:
        cat = eng.catalog
        if institution is not None and institution not in cat.institutions:
            raise UserInputError(f"unknown institution {institution!r}; the lake has: "
                                 f"{', '.join(cat.institutions) or 'none'}")
        if not cat.files:
            raise UserInputError(f"the lake {store.root} holds no ingested files: nothing to export")
        contigs = sorted({c for f in cat.files.values() if institution in (None, f.institution) for c in f.contigs},
                         key=_contig_key)
        regs = _regions(eng, store.contig_style, list(regions or []),
                        Path(regions_file) if regions_file else None, contigs, institution)
        samples, n_revealed = _select_samples(eng, store, institution,
                                              Path(samples_file) if samples_file else None,
                                              Path(reveal) if reveal else None)
        report.n_samples, report.n_revealed = len(samples), n_revealed
        with atomic_output(out) as dest:
            vcf_tmp = dest.tmp if dest.kind == "vcf.gz" else Path(str(dest.tmp) + ".vcf.gz")
            try:
                _write(eng, store, vcf_tmp, regs, samples, institution, report, cells_per_window)
                if dest.kind == "bcf":
                    from pysam import bcftools

                    bcftools.view("--no-version", "-Ob", "-o", str(dest.tmp), str(vcf_tmp),
                                        catch_stdout=False)
            finally:
                if vcf_tmp != dest.tmp and vcf_tmp.exists():
                    vcf_tmp.unlink()
            finish(dest)
    finally:
        eng.con.close()
    report.seconds = time.perf_counter() - t0
    return report


def _write(eng: Engine, store: Any, path: Path, regs: list[tuple[str, int, int]], samples: list[_Sample],
           institution: str | None, report: ExportReport, cells_per_window: int) -> None:
    import pysam

    filters = _filters(eng, regs, institution)
    header = _header(store, regs, samples, filters, institution, report.n_revealed)
    with pysam.BGZFile(str(path), "wb", None) as sink:
        sink.write(header.encode())
        state: _ContigState | None = None
        for contig, start, end in regs:
            if state is None or state.contig != contig:
                state = _ContigState(eng, contig, samples)
            src = eng.scan("variants", contig=contig, institution=institution, start=start, end=end,
                           columns=["institution", "contig", "pos"])
            params: dict[str, Any] = {"c": contig, "s": start, "e": end}
            inst_term = ""
            if institution is not None:
                params["i"] = institution
                inst_term = "AND institution = $i"
            lo, hi, n = eng.rows(f"SELECT min(pos), max(pos), count(*) FROM {src} WHERE contig = $c "
                                 f"AND pos BETWEEN $s AND $e {inst_term}", params)[0]
            if not n:
                continue
            windows = max(1, math.ceil(int(n) * max(len(samples), 1) / cells_per_window))
            step = max(1, math.ceil((int(hi) - int(lo) + 1) / windows))
            w0 = int(lo)
            while w0 <= int(hi):
                w1 = min(w0 + step - 1, int(hi))
                _window(eng, sink, state, contig, w0, w1, samples, institution, report)
                w0 = w1 + 1


def _filters(eng: Engine, regs: list[tuple[str, int, int]], institution: str | None) -> list[str]:
    """Every FILTER name of the exported records (declared in the header, as BCF needs)."""
    names: set[str] = set()
    for contig in dict.fromkeys(c for c, _s, _e in regs):
        src = eng.scan("variants", contig=contig, institution=institution, columns=["institution", "filters"])
        params: dict[str, Any] = {}
        term = "TRUE"
        if institution is not None:
            params["i"] = institution
            term = "institution = $i"
        for (f,) in eng.rows(f"SELECT DISTINCT filters FROM {src} WHERE filters IS NOT NULL AND {term}", params):
            names.update(x for x in str(f).split(";") if x)
    names.discard("PASS")
    return sorted(names)


def _header(store: Any, regs: list[tuple[str, int, int]], samples: list[_Sample], filters: list[str],
            institution: str | None, n_revealed: int) -> str:
    from genolake import __version__

    aligned = _left_aligned(store)
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        *(f'##FILTER=<ID={f},Description="FILTER {f} of the ingested VCF">' for f in filters),
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype for this split allele (the record\'s ALT is 1, '
        'every other allele 0). Hom-ref calls are not stored in the lake: 0/0 (unphased, no GQ/DP/AD) where the '
        "sample's file lists the site, hom-ref of the sample's ploidy where its file counts absent sites as "
        "reference (--absent-as-ref, --callable-regions), missing where its file does not speak for the site\">",
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality, as ingested">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth, as ingested">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths of REF and this ALT, as ingested">',
        "##genolake_export=<Lake=" + header_value(f"{store.root.name} (lake_id {store.config.get('lake_id')})")
        + ",Build=" + header_value(store.build)
        + ",Version=" + header_value(f"files table version {delta_version(store.root / 'files')}")
        + ",Institution=" + header_value(institution or "all")
        + ",Records=" + header_value(RECORDS_NOTE.format(aligned=", left-aligned" if aligned else ""))
        + ",Samples=" + header_value("keyed pseudonyms of the lake" + (
            f"; {n_revealed} raw IDs revealed by the key holder of {institution}" if n_revealed else ""))
        + ",genolake=" + header_value(__version__) + ">",
        f"##reference={store.build}",
        *(f"##contig=<ID={c}>" for c in dict.fromkeys(c for c, _s, _e in regs)),
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
                  + [s.name for s in samples]),
    ]
    return "\n".join(lines) + "\n"


def _left_aligned(store: Any) -> bool:
    try:
        t = store.read_table("files", columns=["left_aligned"])
        return any(bool(x) for x in t.column("left_aligned").to_pylist())
    except Exception:  # an older files table: say nothing about alignment
        return False


_ID_OK = re.compile(r"^[^\s;]+(;[^\s;]+)*$")


def _qual(q: Any) -> str:
    if q is None or q != q:
        return "."
    q = float(q)
    return str(int(q)) if q.is_integer() else f"{q:g}"


def _window(eng: Engine, sink: Any, state: _ContigState, contig: str, start: int, end: int, samples: list[_Sample],
            institution: str | None, report: ExportReport) -> None:
    """Write the records of [start, end] on ``contig``."""
    cat = eng.catalog
    params: dict[str, Any] = {"c": contig, "s": start, "e": end}
    inst_term = ""
    if institution is not None:
        params["i"] = institution
        inst_term = "AND institution = $i"
    vsrc = eng.scan("variants", contig=contig, institution=institution, start=start, end=end,
                    columns=["institution", "file_id", "contig", "pos", "ref", "alt", "id", "qual", "filters"])
    sites = eng.rows(f"""
        SELECT pos, ref, alt, list(DISTINCT file_id), max(id), max(qual), max(filters)
        FROM {vsrc} WHERE contig = $c AND pos BETWEEN $s AND $e {inst_term}
        GROUP BY pos, ref, alt ORDER BY pos, ref, alt""", params)
    if not sites:
        return
    n = len(samples)
    m = np.empty((len(sites), n), dtype=object)
    m[:] = state.missing[np.newaxis, :] if n else None
    # files that count absent sites as hom-ref, then files listing the site (implied 0/0), then stored calls
    for fid, mode in state.fill:
        cols = state.file_cols[fid]
        for i, site in enumerate(sites):
            if fid not in site[3] and (mode == "ref" or cat.in_callable(fid, contig, int(site[0]))):
                m[i, cols] = state.homref[cols]
    for i, site in enumerate(sites):
        for fid in site[3]:
            listed = state.file_cols.get(fid)
            if listed is not None:
                m[i, listed] = "0/0"
    if n:
        _stored_calls(eng, m, sites, samples, contig, start, end, institution, params, report)
    lines = []
    for i, (pos, ref, alt, _files, vid, qual, filt) in enumerate(sites):
        fixed = [contig, str(pos), vid if vid and _ID_OK.match(vid) else ".", ref, alt, _qual(qual), filt or ".",
                 ".", FORMAT]
        lines.append("\t".join(fixed + m[i].tolist()) + "\n")
    report.n_records += len(sites)
    sink.write("".join(lines).encode())


def _stored_calls(eng: Engine, m: np.ndarray, sites: list[tuple[Any, ...]], samples: list[_Sample], contig: str,
                  start: int, end: int, institution: str | None, params: dict[str, Any],
                  report: ExportReport) -> None:
    """Fill ``m`` (sites x samples) with the stored calls of the window, FORMAT fields joined."""
    site_tbl = pa.table({"pos": pa.array([s[0] for s in sites], pa.int32()),
                         "ref": pa.array([s[1] for s in sites], pa.string()),
                         "alt": pa.array([s[2] for s in sites], pa.string()),
                         "i": pa.array(np.arange(len(sites), dtype=np.int64))})
    col_tbl = pa.table({"institution": pa.array([s.institution for s in samples], pa.string()),
                        "sample_id": pa.array([s.sample_id for s in samples], pa.string()),
                        "j": pa.array(np.arange(len(samples), dtype=np.int64))})
    # the window's genotypes rows, expanded by the numpy codec (DuckDB's SQL expansion of the `calls` view grew
    # past 15 GB of memory on 1,000 samples x 73k sites)
    from genolake.genotypes import expand

    gsrc = eng.scan("genotypes", contig=contig, institution=institution, start=start, end=end)
    inst_term = "AND c.institution = $i" if institution is not None else ""
    rows = eng.query(f"""SELECT institution, contig, pos, ref, alt, file_id, gt, gt_symbols, other_gt, gq, dp, ad_ref,
                                ad_alt FROM {gsrc} AS c WHERE c.contig = $c AND c.pos BETWEEN $s AND $e {inst_term}""",
                     params)
    calls = expand(rows, eng.file_pseudonyms, ["institution", "contig", "pos", "ref", "alt", "sample_id", "gt", "gq",
                                               "dp", "ad_ref", "ad_alt"])
    csrc = "_gl_exp_calls"
    eng.register("_gl_exp_calls", calls)
    eng.register("_gl_exp_sites", site_tbl)
    eng.register("_gl_exp_cols", col_tbl)
    try:
        got = eng.query(f"""
            SELECT st.i, co.j,
                   CASE WHEN c.gq IS NULL AND c.dp IS NULL AND c.ad_ref IS NULL AND c.ad_alt IS NULL THEN c.gt
                        ELSE c.gt || ':' || coalesce(CAST(c.gq AS VARCHAR), '.') || ':'
                             || coalesce(CAST(c.dp AS VARCHAR), '.') || ':'
                             || CASE WHEN c.ad_ref IS NULL AND c.ad_alt IS NULL THEN '.'
                                     ELSE coalesce(CAST(c.ad_ref AS VARCHAR), '.') || ','
                                          || coalesce(CAST(c.ad_alt AS VARCHAR), '.') END
                   END AS v
            FROM {csrc} AS c
            JOIN _gl_exp_sites st ON st.pos = c.pos AND st.ref = c.ref AND st.alt = c.alt
            JOIN _gl_exp_cols co ON co.institution = c.institution AND co.sample_id = c.sample_id
            WHERE c.contig = $c AND c.pos BETWEEN $s AND $e {inst_term}""", params)
    finally:
        eng.unregister("_gl_exp_sites")
        eng.unregister("_gl_exp_cols")
        eng.unregister("_gl_exp_calls")
    if got.num_rows:
        i = got.column("i").to_numpy()
        j = got.column("j").to_numpy()
        m[i, j] = np.array(got.column("v").to_pylist(), dtype=object)
        report.n_genotypes_stored += got.num_rows
