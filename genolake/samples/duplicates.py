"""`genolake samples duplicates`: the same person (or first-degree relatives) across and within institutions.

Pseudonyms differ per institution by design, so duplicates are found from the genotypes, the way KING
(Manichaikul et al. 2010, Bioinformatics 26:2867) and somalier do:

1. **sites**: biallelic autosomal SNVs whose FILTER is PASS (or missing), with pooled allele frequency between
   ``min_af`` and ``1 - min_af`` among the files that list them, and whose genotype is known (under the lake's
   counting rule) for at least 95% of the people; at most ``max_sites`` of them, spread evenly along the genome;
2. **dosage matrix** (people x sites, int8): 0 where the person's file lists the site without a stored call
   (implied 0/0) or counts the absent site as reference (``--absent-as-ref``, inside ``--callable-regions``),
   the stored call's alt count for fully called diploid calls, -1 (missing) otherwise. A person is one
   (institution, pseudonym), whatever number of files (one per contig, ...) holds them;
3. **KING-robust kinship** of every pair on the sites both have called, from one dense matrix product and sparse
   corrections for the missing genotypes::

       kinship = 1/2 - sum (g_i - g_j)^2 / (2 (het_i + het_j))

   (het counted on the pair's jointly called sites); this equals ``(N_hethet - 2 N_ibs0) / (het_i + het_j)``,
   plink2's ``--make-king`` statistic. Duplicates and monozygotic twins have about 0.5, first-degree relatives
   (parent-child, full siblings) about 0.25, unrelated people about 0;
4. the pairs above the cut-off get their pair statistics: ``sites`` (jointly called), ``discordance`` (share
   of those sites with different genotypes; near 0 for a duplicate) and ``ibs0`` (sites where one is 0/0 and the
   other 1/1; about 0 for parent-child, not for siblings).

Classification: ``duplicate`` needs KING's cut-off (kinship above 0.354 = 2^-1.5) *and* a discordance of at most
``max_discordance`` (default 0.05): within a short region (a gene panel, one small chromosome segment) linkage
disequilibrium inflates kinship, and unrelated people can pass 0.354, but not with near-identical genotypes.
With ``relatives``, any other pair above 0.177 (2^-2.5) is ``first-degree``. When the sites span less than
:data:`MIN_SPAN_MB` of genome the report carries a warning that kinship of relatives is unreliable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from genolake.errors import UserInputError

log = logging.getLogger(__name__)

DUPLICATE_KINSHIP = 2 ** -1.5  # 0.354: KING's lower bound for duplicates / MZ twins
FIRST_DEGREE_KINSHIP = 2 ** -2.5  # 0.177: KING's lower bound for first-degree relatives
DUPLICATE_MAX_DISCORDANCE = 0.05  # a duplicate's genotypes differ at no more than 5% of the compared sites
MIN_SPAN_MB = 100.0  # below this genome span of the sites, kinship of relatives is not to be trusted (LD)
MIN_KNOWN = 0.95  # share of people whose genotype must be known at a selected site
DEFAULT_MIN_SITES = 500
DEFAULT_MAX_SITES = 5000
DEFAULT_MIN_AF = 0.05

PAIR_SCHEMA = pa.schema([
    ("institution_1", pa.string()), ("sample_1", pa.string()),
    ("institution_2", pa.string()), ("sample_2", pa.string()),
    ("relationship", pa.string()), ("kinship", pa.float64()), ("sites", pa.int64()),
    ("discordance", pa.float64()), ("ibs0", pa.int64()),
])


@dataclass
class DosageMatrix:
    """Genotypes of every person of the lake at the selected sites."""

    people: pa.Table  # institution, sample_id (row order of `dosage`)
    sites: pa.Table  # contig, pos, ref, alt (column order of `dosage`)
    dosage: np.ndarray  # int8 (people x sites): alt allele count 0/1/2, -1 missing


@dataclass
class DuplicateReport:
    """Result of :func:`find_duplicates`."""

    pairs: pa.Table  # PAIR_SCHEMA, the first of each pair being the one ingested first (see `keep_rank`)
    people: int = 0
    sites: int = 0
    pairs_compared: int = 0
    pairs_too_few_sites: int = 0
    span_mb: float = 0.0
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    rank: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)  # keep_rank of the lake the pairs were found in


def _autosome(contig: str) -> bool:
    c = contig[3:] if contig.lower().startswith("chr") else contig
    return c.isdigit()


def select_sites(eng: Any, people: int, *, min_af: float = DEFAULT_MIN_AF,
                 max_sites: int = DEFAULT_MAX_SITES) -> pa.Table:
    """Common, well-called biallelic autosomal SNVs (columns contig, pos, ref, alt, files), spread evenly."""
    if "variant_files" not in eng.views or people == 0:
        return pa.table({"contig": pa.array([], pa.string())})
    t = eng.query(
        """SELECT contig, pos, ref, alt, list(file_id ORDER BY file_id) AS files,
                  CAST(sum(ac) AS BIGINT) AS ac, CAST(sum(an) AS BIGINT) AS an,
                  CAST(sum(n_called) AS BIGINT) AS n_called
           FROM variant_files
           WHERE length(ref) = 1 AND length(alt) = 1 AND n_alleles = 2
             AND (filters IS NULL OR filters = 'PASS')
           GROUP BY contig, pos, ref, alt
           HAVING sum(an) > 0 AND sum(ac) BETWEEN $lo * sum(an) AND $hi * sum(an)
           ORDER BY contig, pos, ref, alt""",
        {"lo": min_af, "hi": 1.0 - min_af})
    if t.num_rows == 0:
        return t
    contigs = t["contig"].to_pylist()
    keep = np.array([_autosome(c) for c in contigs], dtype=bool)
    # people whose genotype is known there: called samples of the listing files + samples of files counting
    # absent sites as reference on the contig (callable regions are not looked at here: conservative)
    fill: dict[str, int] = {}
    fill_files: dict[str, set[str]] = {}
    for f in eng.catalog.files.values():
        if f.absent_mode == "ref":
            for c in f.contigs:
                fill[c] = fill.get(c, 0) + f.n_samples
                fill_files.setdefault(c, set()).add(f.file_id)
    n_files = {fid: f.n_samples for fid, f in eng.catalog.files.items()}
    known = np.asarray(t["n_called"].to_numpy(), dtype=np.int64).copy()
    if fill:
        for i, (c, fids) in enumerate(zip(contigs, t["files"].to_pylist(), strict=True)):
            extra = fill_files.get(c)
            if extra:
                known[i] += sum(n_files[x] for x in extra if x not in fids)
    score = known / max(people, 1)
    good = keep & (score >= MIN_KNOWN)
    idx = np.flatnonzero(good)
    if idx.size < max_sites:  # not enough well-called sites: take the best-known of the rest too
        rest = np.flatnonzero(keep & ~good)
        rest = rest[np.argsort(-score[rest], kind="stable")][: max_sites - idx.size]
        idx = np.sort(np.concatenate([idx, rest[score[rest] > 0]]))
    if idx.size > max_sites:  # spread evenly along the genome (sites close together are in LD)
        idx = idx[np.unique(np.linspace(0, idx.size - 1, max_sites).round().astype(np.int64))]
    return t.take(pa.array(idx)).select(["contig", "pos", "ref", "alt", "files"])


def dosage_matrix(lake: Path | str | Any, *, min_af: float = DEFAULT_MIN_AF,
                  max_sites: int = DEFAULT_MAX_SITES) -> DosageMatrix:
    """Build the people x sites dosage matrix of :func:`select_sites` under the lake's counting rule."""
    from genolake.query.engine import Engine
    from genolake.store import LakeStore

    store = lake if isinstance(lake, LakeStore) else LakeStore.open(lake)
    eng = Engine(store, threads=None, point_reads=False)
    try:
        return _dosage(eng, min_af=min_af, max_sites=max_sites)
    finally:
        eng.con.close()


def _dosage(eng: Any, *, min_af: float, max_sites: int) -> DosageMatrix:
    cat = eng.catalog
    if "samples" not in eng.views or not cat.files:
        empty = pa.table({"institution": pa.array([], pa.string()), "sample_id": pa.array([], pa.string())})
        return DosageMatrix(empty, pa.table({"contig": pa.array([], pa.string())}), np.zeros((0, 0), np.int8))
    samples = eng.query("SELECT institution, sample_id, file_id FROM samples ORDER BY institution, sample_id")
    from genolake.schema import people as people_of

    people = people_of(samples)
    n = people.num_rows
    sites = select_sites(eng, n, min_af=min_af, max_sites=max_sites)
    m = sites.num_rows
    dosage = np.full((n, m), -1, dtype=np.int8)
    if m == 0:
        return DosageMatrix(people, sites, dosage)
    pindex = {(i, s): k for k, (i, s) in enumerate(zip(people["institution"].to_pylist(),
                                                        people["sample_id"].to_pylist(), strict=True))}
    by_file: dict[str, list[int]] = {}
    for i, s, f in zip(samples["institution"].to_pylist(), samples["sample_id"].to_pylist(),
                       samples["file_id"].to_pylist(), strict=True):
        by_file.setdefault(f, []).append(pindex[(i, s)])
    site_contig = np.asarray(sites["contig"].to_pylist(), dtype=object)
    site_pos = sites["pos"].to_numpy()
    site_files = sites["files"].to_pylist()
    regions = eng.callable_regions() if any(f.absent_mode == "callable" for f in cat.files.values()) else {}
    # implied 0/0: the file lists the site, or counts it absent as reference; a file speaks only for its contigs
    for fid, info in cat.files.items():
        rows = np.asarray(by_file.get(fid, []), dtype=np.int64)
        if rows.size == 0:
            continue
        on = np.isin(site_contig, list(info.contigs))
        listed = np.fromiter((fid in fs for fs in site_files), dtype=bool, count=m)
        zero = on & listed
        if info.absent_mode == "ref":
            zero = on
        elif info.absent_mode == "callable":
            inside = np.fromiter((cat.in_callable(fid, c, int(p)) if (fid, c) in regions else False
                                  for c, p in zip(site_contig, site_pos, strict=True)), dtype=bool, count=m)
            zero = zero | (on & inside)
        cols = np.flatnonzero(zero)
        if cols.size:
            dosage[np.ix_(rows, cols)] = 0
    # stored calls: the alt count of fully called diploid calls, else missing
    eng.con.register("_dup_sites", pa.table({
        "contig": sites["contig"], "pos": sites["pos"], "ref": sites["ref"], "alt": sites["alt"],
        "sidx": pa.array(np.arange(m, dtype=np.int32))}))
    eng.con.register("_dup_people", people.append_column("pidx", pa.array(np.arange(n, dtype=np.int32))))
    contigs = sorted(set(site_contig.tolist()))
    parts = []
    for contig in contigs:
        lo = int(site_pos[site_contig == contig].min())
        hi = int(site_pos[site_contig == contig].max())
        src = eng.scan("calls", contig=contig, start=lo, end=hi,
                       columns=["institution", "sample_id", "contig", "pos", "ref", "alt", "ploidy", "called",
                                "alt_count"])
        parts.append(eng.query(
            f"""SELECT p.pidx, s.sidx,
                       CAST(CASE WHEN c.ploidy = 2 AND c.called = 2 THEN c.alt_count ELSE -1 END AS TINYINT) AS d
                FROM {src} AS c
                JOIN _dup_sites s ON s.contig = c.contig AND s.pos = c.pos AND s.ref = c.ref AND s.alt = c.alt
                JOIN _dup_people p ON p.institution = c.institution AND p.sample_id = c.sample_id
                WHERE c.contig = $contig AND c.pos BETWEEN $lo AND $hi""",
            {"contig": contig, "lo": lo, "hi": hi}))
    eng.con.unregister("_dup_sites")
    eng.con.unregister("_dup_people")
    for part in parts:
        if part.num_rows:
            dosage[part["pidx"].to_numpy(), part["sidx"].to_numpy()] = part["d"].to_numpy()
    return DosageMatrix(people, sites.select(["contig", "pos", "ref", "alt"]), dosage)


def king_robust(dosage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KING-robust kinship and jointly called site counts of every pair of rows of a dosage matrix.

    ``dosage`` is people x sites (0/1/2, -1 missing). Returns ``(kinship, sites)``, both people x people;
    kinship (float32) is NaN where the pair has no heterozygous site. One dense float32 product (exact: every
    sum is an integer below 2^24) plus sparse products for the missing genotypes.

    Examples
    --------
    >>> d = np.array([[0, 1, 2, 1], [0, 1, 2, 1], [2, 1, 0, 1]], dtype=np.int8)
    >>> k, s = king_robust(d)
    >>> float(k[0, 1]), int(s[0, 1]), float(k[0, 2])
    (0.5, 4, -0.5)
    """
    import scipy.sparse as sp

    if dosage.shape[1] >= 2**22:
        raise UserInputError("too many sites for an exact float32 product; lower --max-sites")
    n, m = dosage.shape
    miss = dosage < 0
    g = np.where(miss, 0, dosage).astype(np.float32)
    het = (g == 1).astype(np.float32)
    sq = g * g
    # every sum below is an integer < 2^24, so float32 holds it exactly; in place to spare n x n temporaries
    d2 = g @ g.T  # sum (g_i - g_j)^2 over jointly called sites = sq_i + sq_j - 2 g_i.g_j - (missing terms)
    d2 *= -2.0
    d2 += sq.sum(axis=1)[:, None]
    d2 += sq.sum(axis=1)[None, :]
    hets = np.empty((n, n), np.float32)
    hets[:] = het.sum(axis=1)[:, None]
    hets += het.sum(axis=1)[None, :]
    n_miss = miss.sum(axis=1).astype(np.int32)
    sites = np.full((n, n), m, dtype=np.int32)
    sites -= n_miss[:, None]
    sites -= n_miss[None, :]
    if miss.any():
        # [j, i] = sum over the sites j misses of i's term: what i's sums must lose when paired with j
        ms = sp.csr_matrix(miss.astype(np.float32))
        for terms, acc in ((sq, d2), (het, hets)):
            lost = np.asarray(ms @ terms.T)
            acc -= lost
            acc -= lost.T
        sites += np.asarray((ms @ ms.T).todense(), dtype=np.int32)
    kin = np.full((n, n), np.nan, dtype=np.float32)
    np.divide(d2, hets, out=kin, where=hets > 0)
    kin *= -0.5
    kin += 0.5
    return kin, sites


def keep_rank(lake: Path | str | Any) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(institution, pseudonym) -> sort key: the copy with the smallest key is kept by ``aggregate --dedupe``.

    The documented rule: the institution ingested first (its earliest committed file) wins; within one
    institution, the person whose first file was ingested first; then institution name and pseudonym.
    """
    from genolake.store import LakeStore

    store = lake if isinstance(lake, LakeStore) else LakeStore.open(lake)
    files = store.read_table("files", columns=["file_id", "institution", "ingested_at"])
    samples = store.read_table("samples", columns=["institution", "sample_id", "file_id"])
    when = dict(zip(files["file_id"].to_pylist(), files["ingested_at"].to_pylist(), strict=True))
    inst_first: dict[str, Any] = {}
    for inst, t in zip(files["institution"].to_pylist(), files["ingested_at"].to_pylist(), strict=True):
        inst_first[inst] = min(inst_first.get(inst, t), t)
    out: dict[tuple[str, str], tuple[Any, ...]] = {}
    for inst, sid, fid in zip(samples["institution"].to_pylist(), samples["sample_id"].to_pylist(),
                              samples["file_id"].to_pylist(), strict=True):
        t = when.get(fid)
        if t is None:
            continue
        key = (inst, sid)
        prev = out.get(key)
        first = t if prev is None else min(prev[2], t)
        out[key] = (inst_first[inst], inst, first, sid)
    return out


def find_duplicates(lake: Path | str | Any, *, min_sites: int = DEFAULT_MIN_SITES, relatives: bool = False,
                    min_af: float = DEFAULT_MIN_AF, max_sites: int = DEFAULT_MAX_SITES,
                    max_discordance: float = DUPLICATE_MAX_DISCORDANCE) -> DuplicateReport:
    """Pairs of people whose genotypes are the same person (and, with ``relatives``, first-degree relatives).

    Parameters
    ----------
    lake
        The lake folder (or an open ``LakeStore``).
    min_sites
        A pair is compared only on at least this many sites both have called; the selected sites must number
        at least this many, else :class:`~genolake.errors.UserInputError`.
    relatives
        Also report first-degree relatives (kinship in (0.177, 0.354]).
    min_af
        Sites with pooled allele frequency in [min_af, 1 - min_af] are used.
    max_sites
        At most this many sites (spread evenly along the genome).
    max_discordance
        A duplicate's genotypes differ at no more than this share of the compared sites.

    Returns
    -------
    DuplicateReport
        ``pairs`` has :data:`PAIR_SCHEMA` columns, one row per pair, highest kinship first; the first person
        of each pair is the one ``aggregate --dedupe`` keeps (:func:`keep_rank`). Only pseudonyms, never raw IDs.

    Examples
    --------
    >>> find_duplicates("lake", relatives=True).pairs.to_pylist()  # doctest: +SKIP
    [{'institution_1': 'north', 'sample_1': '3f0c...', 'institution_2': 'east', ..., 'kinship': 0.4991, ...}]
    """
    import time

    from genolake.store import LakeStore

    if min_sites < 1:
        raise UserInputError("--min-sites must be at least 1")
    if not 0 < min_af < 0.5:
        raise UserInputError("--min-af must be between 0 and 0.5")
    store = lake if isinstance(lake, LakeStore) else LakeStore.open(lake)
    t0 = time.perf_counter()
    dm = dosage_matrix(store, min_af=min_af, max_sites=max(max_sites, min_sites))
    t1 = time.perf_counter()
    n, m = dm.dosage.shape
    report = DuplicateReport(pairs=PAIR_SCHEMA.empty_table(), people=n, sites=m)
    report.seconds["matrix"] = t1 - t0
    if n < 2:
        return report
    if m < min_sites:
        raise UserInputError(
            f"only {m} common, well-called biallelic autosomal SNVs are in the lake (at allele frequency "
            f"{min_af:g}-{1 - min_af:g}); lower --min-sites (now {min_sites}) to compare on fewer sites")
    contig_arr = np.asarray(dm.sites["contig"].to_pylist(), dtype=object)
    pos_arr = dm.sites["pos"].to_numpy()
    report.span_mb = float(sum(int(pos_arr[contig_arr == c].max()) - int(pos_arr[contig_arr == c].min())
                               for c in set(contig_arr.tolist()))) / 1e6
    if report.span_mb < MIN_SPAN_MB:
        report.warnings.append(
            f"the {m:,} sites span only {report.span_mb:.1f} Mb of genome: linkage disequilibrium inflates kinship "
            "there, so first-degree calls are unreliable (duplicates are also required to have near-identical "
            "genotypes)")
    kin, sites = king_robust(dm.dosage)
    t2 = time.perf_counter()
    report.seconds["kinship"] = t2 - t1
    iu, ju = np.triu_indices(n, k=1)
    enough = sites[iu, ju] >= min_sites
    report.pairs_compared = int(enough.sum())
    report.pairs_too_few_sites = int((~enough).sum())
    cut = FIRST_DEGREE_KINSHIP if relatives else DUPLICATE_KINSHIP
    cand = enough & (np.nan_to_num(kin[iu, ju], nan=-1.0) > cut)  # the kinship above is exact, not a screen
    ci, cj = iu[cand], ju[cand]
    rows = _pair_stats(dm.dosage, ci, cj)
    k = kin[ci, cj]
    disc = np.array([r[1] for r in rows], dtype=np.float64)
    is_dup = (k > DUPLICATE_KINSHIP) & (disc <= max_discordance)
    report_mask = is_dup | ((k > FIRST_DEGREE_KINSHIP) if relatives else np.zeros(k.size, dtype=bool))
    rank = keep_rank(store)
    report.rank = rank
    insts = dm.people["institution"].to_pylist()
    sids = dm.people["sample_id"].to_pylist()
    out: list[dict[str, Any]] = []
    for a, b, kk, dup, (ns, dd, ibs0) in zip(ci[report_mask], cj[report_mask], k[report_mask], is_dup[report_mask],
                                             [r for r, keep in zip(rows, report_mask, strict=True) if keep],
                                             strict=True):
        pa_, pb = (insts[a], sids[a]), (insts[b], sids[b])
        ra, rb = rank.get(pa_), rank.get(pb)
        if ra is not None and rb is not None and rb < ra:
            pa_, pb = pb, pa_
        out.append({
            "institution_1": pa_[0], "sample_1": pa_[1], "institution_2": pb[0], "sample_2": pb[1],
            "relationship": "duplicate" if dup else "first-degree",
            "kinship": round(float(kk), 4), "sites": ns, "discordance": round(dd, 4), "ibs0": ibs0,
        })
    out.sort(key=lambda r: (-r["kinship"], r["institution_1"], r["sample_1"], r["institution_2"], r["sample_2"]))
    report.pairs = pa.Table.from_pylist(out, schema=PAIR_SCHEMA)
    report.seconds["pairs"] = time.perf_counter() - t2
    log.info("duplicates: %d people, %d sites, %d pairs reported in %.2f s", n, m, len(out),
             sum(report.seconds.values()))
    return report


def _pair_stats(dosage: np.ndarray, ci: np.ndarray, cj: np.ndarray) -> list[tuple[int, float, int]]:
    """(jointly called sites, discordance, ibs0 sites) of each pair (exact, vectorised over sites)."""
    out = []
    step = 256
    for s in range(0, ci.size, step):
        a = dosage[ci[s:s + step]]
        b = dosage[cj[s:s + step]]
        both = (a >= 0) & (b >= 0)
        nb = both.sum(axis=1)
        diff = (a != b) & both
        ibs0 = (np.abs(a.astype(np.int16) - b) == 2) & both
        for x, y, z in zip(nb.tolist(), diff.sum(axis=1).tolist(), ibs0.sum(axis=1).tolist(), strict=True):
            out.append((int(x), (y / x) if x else float("nan"), int(z)))
    return out


def duplicate_groups(pairs: pa.Table, rank: dict[tuple[str, str], tuple[Any, ...]]) -> list[list[tuple[str, str]]]:
    """Groups of people joined by ``duplicate`` pairs (transitively), each sorted by :func:`keep_rank`."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r in pairs.to_pylist():
        if r["relationship"] != "duplicate":
            continue
        a, b = find((r["institution_1"], r["sample_1"])), find((r["institution_2"], r["sample_2"]))
        if a != b:
            parent[b] = a
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g, key=lambda p: rank[p]) for g in groups.values()), key=lambda g: g[0])


def duplicate_copies(lake: Path | str | Any, *, min_sites: int = DEFAULT_MIN_SITES
                     ) -> tuple[frozenset[tuple[str, str]], int]:
    """The copies ``aggregate --dedupe`` leaves out, and the number of duplicated persons.

    Every group of people joined by duplicate pairs keeps its first member by :func:`keep_rank` (the copy of
    the institution ingested first); the others are returned. A lake whose people share too few sites to be
    compared cannot be deduplicated and raises :class:`~genolake.errors.UserInputError`.
    """
    from genolake.store import LakeStore

    store = lake if isinstance(lake, LakeStore) else LakeStore.open(lake)
    try:
        rep = find_duplicates(store, min_sites=min_sites)
    except UserInputError as exc:
        raise UserInputError(f"--dedupe: {str(exc).replace('--min-sites', '--dedupe-min-sites')}") from None
    groups = duplicate_groups(rep.pairs, rep.rank)
    drop = frozenset(p for g in groups for p in g[1:])
    log.info("dedupe: %d duplicated persons, %d copies left out", len(groups), len(drop))
    return drop, len(groups)
