"""One variant: frequencies per institution and joint, carriers by phenotype, annotations; its carriers.

Point queries read only the Parquet files of the variant's contig and DuckDB skips every row group whose
``pos`` statistics exclude the position, so their cost does not grow with the number of sites or samples
beyond the one row group read.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from genolake.errors import UserInputError
from genolake.genotypes import carries_sql
from genolake.query.engine import quote_ident
from genolake.query.ids import VariantKey, is_rsid, parse_variant
from genolake.query.site_summary import SITE_COLUMNS, allele_rows, variant_summary
from genolake.query.site_summary import frequency_row as _freq
from genolake.schema import ID_PHENOTYPES, MAX_BREAKDOWN_VALUES

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from genolake.query.lake import Lake
    from genolake.query.where import Condition
else:  # imported on first use: the cold `genolake query variant` needs no pyarrow (genolake.lazy)
    from genolake.lazy import LazyModule

    pa = LazyModule("pyarrow")

log = logging.getLogger(__name__)

# categorical phenotypes that hold pseudonymised IDs: no per-value breakdown
_CARRIER_COLUMNS = frozenset({"gt", "alt_count", "ploidy", "phased", "gq", "dp", "ad_ref", "ad_alt"})
_KEY_WHERE = "contig = $contig AND pos = $pos AND ref = $ref AND alt = $alt"


def _key_params(key: VariantKey) -> dict[str, Any]:
    return {"contig": key.contig, "pos": key.pos, "ref": key.ref, "alt": key.alt}


def resolve(lake: Lake, text: str) -> VariantKey:
    """A variant ID or rsID as the lake's key; an rsID matching several alleles is refused with the list."""
    if not is_rsid(text):
        return parse_variant(text, lake.store.contig_style)
    rsid = text.strip().lower()
    eng = lake.engine
    rows = eng.rows(
        "SELECT DISTINCT contig, pos, ref, alt FROM variant_files "
        "WHERE lower(id) = $id OR list_contains(string_split(lower(id), ';'), $id) ORDER BY ALL",
        {"id": rsid},
    )
    if not rows and "annotations" in eng.catalog.tables:
        try:
            from genolake.query import genes

            rows = [tuple(r) for r in genes.variants_by_rsid(lake, rsid)]
        except ImportError:
            rows = []
        except Exception as exc:  # annotations of another shape
            log.info("rsID lookup in annotations failed: %s", exc)
    if not rows:
        raise UserInputError(f"{text.strip()} is not in the lake (looked up in variants.id"
                             + (" and annotations.rsid" if "annotations" in eng.catalog.tables else "")
                             + "); give the variant as CONTIG-POS-REF-ALT")
    if len(rows) > 1:
        listed = ", ".join(str(VariantKey(*r)) for r in rows[:10])
        raise UserInputError(f"{text.strip()} names {len(rows)} alleles ({listed}); give one as CONTIG-POS-REF-ALT")
    c, p, r, a = rows[0]
    return VariantKey(c, int(p), r, a)


def site_rows(lake: Lake, key: VariantKey) -> tuple[list[tuple[Any, ...]], bool]:
    """The `variants` rows of the site, one per file listing it, and whether the position holds no other
    allele in the lake (then `calls` at the position need no REF/ALT filter: those columns are not read)."""

    found = lake.engine.point_rows(
        "variants", contig=key.contig, pos=key.pos,
        columns=[*SITE_COLUMNS, "ref", "alt"])
    rows = allele_rows(found, key)
    return rows, len(found) == len(rows)


def counting_absent_files(lake: Lake, key: VariantKey, present: set[str]) -> list[str]:
    """Files that do not list the site but whose samples count there (absent-as-ref, or callable region)."""
    eng = lake.engine
    out = []
    for f in eng.catalog.absent_counting(key.contig):
        if f.file_id in present:
            continue
        if f.absent_mode == "ref":
            out.append(f.file_id)
        elif f.absent_mode == "callable":
            eng.callable_regions()
            if eng.catalog.in_callable(f.file_id, key.contig, key.pos):
                out.append(f.file_id)
    return out


def live_frequencies(lake: Lake, key: VariantKey, rows: list[tuple[Any, ...]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per-institution and joint counts from the lake; also the counting absent files."""
    eng = lake.engine
    per: dict[str, list[int]] = {inst: [0, 0, 0, 0] for inst in eng.catalog.institutions}
    present = set()
    for fid, inst, ac, an, nhomalt, nhemi, *_rest in rows:
        present.add(fid)
        acc = per.setdefault(inst, [0, 0, 0, 0])
        acc[0] += ac
        acc[1] += an
        acc[2] += nhomalt
        acc[3] += nhemi
    fill = counting_absent_files(lake, key, present)
    if fill:
        sums = eng.ploidy_sums()
        for fid in fill:
            s, _n = sums.get((fid, key.contig), (0, 0))
            per[eng.catalog.files[fid].institution][1] += s
    joint = [sum(v[i] for v in per.values()) for i in range(4)]
    freqs = [_freq("joint", *joint)] + [_freq(inst, *per[inst]) for inst in sorted(per)]
    return freqs, fill


def precomputed_frequencies(lake: Lake, key: VariantKey) -> list[dict[str, Any]] | None:
    """Frequencies from `allele_frequencies` (stratum 'all') if that table was written after the last ingest
    and has the variant for every institution of the lake and the joint cohort; else None (then they are
    computed from the lake)."""
    eng = lake.engine
    if "allele_frequencies" not in eng.catalog.tables or not eng.catalog.frequencies_current:
        return None
    try:
        rows = eng.point_rows("allele_frequencies", contig=key.contig, pos=key.pos,
                              columns=["scope", "ac", "an", "nhomalt", "nhemi"],
                              equal={"ref": key.ref, "alt": key.alt}, fixed={"stratum": "all"})
    except Exception as exc:  # a table of another version/shape: fall back to the lake
        log.info("allele_frequencies not usable: %s", exc)
        return None
    got = {r[0]: r for r in rows}
    scopes = ["joint", *eng.catalog.institutions]
    if not all(s in got for s in scopes):
        return None
    return [_freq(s, *(int(x or 0) for x in got[s][1:])) for s in scopes]


def _minimal(key: VariantKey) -> VariantKey:
    """The allele trimmed as at ingest (common suffix, then common prefix; one base kept), without left-alignment."""
    from genolake.ingest.normalise import trim

    pos, ref, alt = trim(key.pos, key.ref, key.alt)
    return VariantKey(key.contig, pos, ref, alt)


def variants_near(lake: Lake, key: VariantKey) -> list[str]:
    """What the lake holds where ``key`` would be: its minimal form if that is in the lake, then every allele at
    the position (and at the minimal form's position). For "not in the lake" messages."""
    minimal = _minimal(key)
    found: list[str] = []
    for pos in dict.fromkeys([minimal.pos, key.pos]):
        rows = lake.engine.point_rows("variants", contig=key.contig, pos=pos, columns=["ref", "alt"])
        found += [str(VariantKey(key.contig, pos, r, a)) for r, a in sorted(set(rows))]
    found = list(dict.fromkeys(found))
    if str(minimal) in found and minimal != key:
        found.remove(str(minimal))
        found.insert(0, str(minimal))
    return [f for f in found if f != str(key)]


def not_observed_message(lake: Lake, key: VariantKey) -> str:
    """``X is not in the lake`` with the variants at its position, if any."""
    near = variants_near(lake, key)
    minimal = _minimal(key)
    msg = f"{key} is not in the lake (no ingested file lists it)"
    from genolake.query.region import lake_contigs

    contigs = lake_contigs(lake)
    if contigs and key.contig not in contigs:
        return msg + f"; the lake has no contig {key.contig!r}, its contigs are: " + ", ".join(contigs[:30])
    if near and near[0] == str(minimal) and minimal != key:
        msg += f"; in its minimal form it is {minimal}, which is in the lake"
        near = near[1:]
    if near:
        msg += "; at that position the lake has " + ", ".join(near[:10]) + (" ..." if len(near) > 10 else "")
    return msg


def variant_report(lake: Lake, text: str) -> dict[str, Any]:
    """The ``genolake query variant`` object: variant, frequencies, phenotypes, annotations."""
    key = resolve(lake, text)
    rows, only_allele = site_rows(lake, key)
    freqs, fill = live_frequencies(lake, key, rows)
    pre = precomputed_frequencies(lake, key) if rows else None
    if pre is not None:
        freqs = pre
    variant = variant_summary(key, rows, precomputed=pre is not None)
    present = sorted({r[0] for r in rows})
    return {
        "variant": variant,
        "frequencies": freqs,
        "phenotypes": phenotype_breakdown(lake, key, present, fill, only_allele=only_allele),
        "annotations": annotations_of(lake, key),
    }


def breakdown_names(lake: Lake) -> list[str]:
    """Categorical phenotypes shown per value (not ID columns, at most MAX_BREAKDOWN_VALUES values)."""
    eng = lake.engine
    cat = eng.catalog
    cached = getattr(cat, "_breakdown", None)
    if cached is not None:
        return list(cached)
    names = [n for n, k in cat.phenotypes.items() if k == "categorical" and n not in ID_PHENOTYPES]
    out: list[str] = []
    if names:
        counts = dict(eng.rows(
            "SELECT name, count(DISTINCT value_str) FROM phenotypes_long WHERE list_contains($names, name) "
            "GROUP BY name", {"names": names}))
        out = [n for n in names if 0 < counts.get(n, 0) <= MAX_BREAKDOWN_VALUES]
    cat._breakdown = out  # type: ignore[attr-defined]
    return out


def phenotype_breakdown(lake: Lake, key: VariantKey, present: list[str], fill: list[str], *,
                        only_allele: bool = False) -> list[dict[str, Any]]:
    """Per categorical phenotype and value: samples counted at the site, carriers, AC, AN, AF, nhomalt, nhemi."""
    names = breakdown_names(lake)
    if not names or not (present or fill):
        return []
    eng = lake.engine

    # only one allele at the position: no REF/ALT filter, so those columns are not read
    equal = {} if only_allele else {"ref": key.ref, "alt": key.alt}
    from genolake.query.strata import SampleIndex, count_site, count_site_packed

    idx = getattr(eng.catalog, "_sample_index", None)
    if idx is None:
        idx = SampleIndex.build(eng, names)
        eng.catalog._sample_index = idx  # type: ignore[attr-defined]
    # the site's packed codes with the positions of their nonzero bytes (its stored calls: the point reader keeps
    # them per cached row group, so the usual site is counted without a scan of its row), straight to counts per
    # phenotype value: no pseudonyms, no calls table, no SQL expansion of calls. Other sites (another ploidy, a
    # file with two rows) decode their calls (`call_values_of`) and count them by `count_site`.
    packed = eng.point_rows("genotypes", contig=key.contig, pos=key.pos, equal=equal,
                            columns=["file_id", "gt", "gt_symbols"], nonzero=("gt",))
    fast = count_site_packed(eng, idx, key.contig, present, fill, [r[0] for r in packed], [r[1] for r in packed],
                             [r[2] for r in packed])
    if fast is not None:
        return fast
    site = eng.point_rows("genotypes", contig=key.contig, pos=key.pos, equal=equal,
                          columns=["file_id", "gt", "gt_symbols", "other_gt"])
    file_ids = [r[0] for r in site]
    from genolake.genotypes import call_values_of

    got = call_values_of([r[1] for r in site], [r[2] for r in site], [r[3] for r in site])
    return count_site(eng, idx, key.contig, present, fill, file_ids, got.row, got.col, got.ploidy,
                      got.called, got.alt_count)


def annotations_of(lake: Lake, key: VariantKey) -> dict[str, Any]:
    """Columns of the variant's `annotations` rows (one row: a flat dict; several: ``{"records": [...]}``)."""
    eng = lake.engine
    if "annotations" not in eng.catalog.tables:
        return {}
    try:
        from genolake.query import genes

        return genes.annotation_of(lake, key.contig, key.pos, key.ref, key.alt) or {}
    except ImportError:
        pass
    try:
        t = eng.query(f"SELECT * FROM annotations WHERE {_KEY_WHERE}", _key_params(key))
    except Exception as exc:  # annotations of another shape
        log.info("annotations not usable: %s", exc)
        return {}
    drop = {"contig", "pos", "ref", "alt"}
    recs = [{k: v for k, v in r.items() if k not in drop} for r in t.to_pylist()]
    if not recs:
        return {}
    return recs[0] if len(recs) == 1 else {"records": recs}


def where_columns(lake: Lake) -> dict[str, str]:
    """Columns a ``--where`` condition may name: the phenotypes (by kind) and ``institution``."""
    cols = dict(lake.engine.catalog.phenotypes)
    cols["institution"] = "categorical"
    return cols


def _categorical_tests(tree: Any) -> list[tuple[str, list[Any]]]:
    """(column, values) of every ``col = 'x'`` and ``col IN (...)`` of a ``--where`` tree (not negated ones)."""
    out: list[tuple[str, list[Any]]] = []
    op = tree[0]
    if op in ("or", "and"):
        for x in tree[1]:
            out += _categorical_tests(x)
    elif op == "cmp" and tree[2] == "=":
        out.append((tree[1], [tree[3]]))
    elif op == "in" and not tree[3]:
        out.append((tree[1], list(tree[2])))
    elif op == "contains" and not tree[3]:
        out.append((tree[1], [tree[2]]))
    return out


def warn_unmatched_values(lake: Lake, cond: Condition) -> None:
    """Warn (log, shown on stderr by the CLI) when a categorical ``=`` / ``IN`` names no value any sample has,
    with the values that exist: ``population = 'Fin'`` when the values are ``FIN`` can only match nothing."""
    eng = lake.engine
    kinds = where_columns(lake)
    for col, wanted in _categorical_tests(cond.tree):
        kind = kinds.get(col)
        if kind not in ("categorical", "list"):
            continue
        if col == "institution":
            have = list(eng.catalog.institutions)
        elif kind == "list":  # CONTAINS 'HP:0001250': the codes any sample has
            have = [r[0] for r in eng.rows(
                "SELECT DISTINCT code FROM (SELECT unnest(value_list) AS code FROM phenotypes_long "
                "WHERE name = $name) WHERE code IS NOT NULL ORDER BY 1", {"name": col})]
        else:
            have = [r[0] for r in eng.rows(
                "SELECT DISTINCT value_str FROM phenotypes_long WHERE name = $name AND value_str IS NOT NULL "
                "ORDER BY 1", {"name": col})]
        if any(w in have for w in wanted):
            continue
        listed = ", ".join(repr(h) for h in have[:20]) + (f" (and {len(have) - 20} more)" if len(have) > 20 else "")
        shown = " or ".join(repr(w) for w in wanted)
        if col in ID_PHENOTYPES:
            listed = f"{len(have)} pseudonymised IDs"
        verb = "CONTAINS" if kind == "list" else "="
        log.warning("--where: no sample has %s %s %s, so that comparison matches no sample; the values of %s are: %s",
                    col, verb, shown, col, listed or "none")


def compile_where(lake: Lake, where: str | Condition | None, *, pheno_alias: str, inst_expr: str,
                  params: dict[str, Any]) -> str:
    """SQL for a ``--where`` condition over the wide `phenotypes` view aliased ``pheno_alias``."""
    from genolake.query.where import Condition, parse_where

    if where is None:
        return "TRUE"
    cols = where_columns(lake)
    cond = where if isinstance(where, Condition) else parse_where(where, cols)
    unknown = sorted(cond.columns - set(cols))
    if unknown:  # a Condition parsed against other columns
        raise UserInputError(f"--where: unknown column {unknown[0]!r}; known columns: {', '.join(sorted(cols))}")
    warn_unmatched_values(lake, cond)
    mapping = {c: (inst_expr if c == "institution" else f"{pheno_alias}.{quote_ident(c)}") for c in cols}
    sql, wparams = cond.to_sql(mapping, prefix="w")
    params.update(wparams)
    return sql


def carriers_table(lake: Lake, text: str | VariantKey, *, where: str | Condition | None = None) -> pa.Table:
    """Samples carrying the allele (:func:`genolake.genotypes.carries`) with their genotype and phenotype columns."""
    key = text if isinstance(text, VariantKey) else resolve(lake, text)
    eng = lake.engine
    params: dict[str, Any] = {}
    cond = compile_where(lake, where, pheno_alias="p", inst_expr="c.institution", params=params)
    pheno_cols = "".join(
        f", p.{quote_ident(n)}" + (f" AS {quote_ident('phenotype_' + n)}" if n in _CARRIER_COLUMNS else "")
        for n in eng.catalog.phenotypes)
    if eng.point_reads:
        cols = ["institution", "sample_id", "gt", "alt_count", "ploidy", "phased", "gq", "dp", "ad_ref", "ad_alt"]
        if where is None:  # no condition: the join is done in Arrow (a DuckDB query costs more than the join)
            site = eng.point_carriers(key.contig, key.pos, equal={"ref": key.ref, "alt": key.alt},
                                      columns=[*cols, "file_id"], column_index=True)
            return _join_phenotypes(eng, site, cols)
        site = eng.point_carriers(key.contig, key.pos, equal={"ref": key.ref, "alt": key.alt}, columns=cols)
        # the site's few rows are handed to DuckDB as an Arrow table, joined to the phenotypes there
        eng.register("_gl_site_calls", site)
        src, site_filter = "_gl_site_calls", "TRUE"
    else:
        src = eng.scan("calls", contig=key.contig, start=key.pos, end=key.pos)
        site_filter = f"c.contig = $contig AND c.pos = $pos AND c.ref = $ref AND c.alt = $alt AND {carries_sql('c')}"
        params.update(_key_params(key))
    try:
        return eng.query(f"""
        SELECT c.institution, c.sample_id, c.gt, c.alt_count, c.ploidy, c.phased, c.gq, c.dp, c.ad_ref, c.ad_alt
               {pheno_cols}
        FROM {src} AS c LEFT JOIN phenotypes p ON p.institution = c.institution AND p.sample_id = c.sample_id
        WHERE {site_filter} AND {cond}
        ORDER BY c.institution, c.sample_id""", params)
    finally:
        if eng.point_reads:
            eng.unregister("_gl_site_calls")


def _phenotypes_indexed(eng: Any) -> tuple[pa.Table, dict[tuple[str, str], int]]:
    """The phenotype columns (renamed as carriers lists them) and (institution, sample_id) -> their row; read once
    per lake version."""
    cat = eng.catalog
    cached = cat.pheno_arrow
    if cached is None:
        pheno = eng.query("SELECT * FROM phenotypes")
        names = [("phenotype_" + n) if n in _CARRIER_COLUMNS else n for n in pheno.column_names[2:]]
        index = {k: i for i, k in enumerate(zip(pheno.column("institution").to_pylist(),
                                                pheno.column("sample_id").to_pylist(), strict=True))}
        cached = (pheno.select(pheno.column_names[2:]).rename_columns(names), index)
        cat.pheno_arrow = cached
    return cached  # type: ignore[no-any-return]


def _phenotype_rows_by_column(eng: Any) -> dict[str, np.ndarray]:
    """Per committed file, the phenotype row (:func:`_phenotypes_indexed`) of the sample in each column (-1:
    nobody, or no phenotypes); made once per lake version from the file's pseudonyms by column
    (:meth:`Engine.file_pseudonyms`, which the carriers' expansion reads too)."""
    import numpy as np

    cat = eng.catalog
    if cat.pheno_by_column is None:
        _pheno, index = _phenotypes_indexed(eng)
        cat.pheno_by_column = {
            f: np.array([-1 if sid is None else index.get((info.institution, sid), -1)
                         for sid in eng.file_pseudonyms(f).to_pylist()], dtype=np.int64)
            for f, info in cat.files.items()}
    return cat.pheno_by_column  # type: ignore[no-any-return]


def _join_phenotypes(eng: Any, site: pa.Table, columns: list[str] | None = None) -> pa.Table:
    """``site`` (institution, sample_id, genotype columns) left-joined to the phenotypes, sorted by
    institution and sample; the same columns as the SQL join in :func:`carriers_table`. The phenotypes are read
    once per lake version, with an index (institution, sample_id) -> row. The point reader lists carriers in that
    order already (:func:`genotypes.expand` ``by_sample``) and, with their ``file_id`` and ``column_index``, their
    rows are looked up per file in one array (:func:`_phenotype_rows_by_column`); others are sorted here by their
    keys in Python (code point order: DuckDB's and Arrow's byte order of UTF-8). ``columns``: the site columns
    returned (default: all)."""
    import pyarrow as pa  # this module's ``pa`` is lazy (an attribute read costs ~1 us): bound once here

    pheno, index = _phenotypes_indexed(eng)
    if "column_index" in site.column_names and "file_id" in site.column_names:
        import numpy as np

        by_col = _phenotype_rows_by_column(eng)
        col = np.asarray(site.column("column_index").to_numpy(), dtype=np.int64)
        fid = site.column("file_id").combine_chunks().dictionary_encode()
        codes = np.asarray(fid.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        found = np.full(len(col), -1, dtype=np.int64)
        for j, f in enumerate(fid.dictionary.to_pylist()):
            arr = by_col.get(f)
            at = np.flatnonzero(codes == j)
            if arr is not None and at.size:
                c = col[at]
                ok = c < len(arr)
                found[at[ok]] = arr[c[ok]]
        site = site.select(columns or [c for c in site.column_names if c not in ("file_id", "column_index")])
        if not pheno.num_columns:
            return site
        taken = pheno.take(pa.array(found, pa.int64(), mask=found < 0))
        return pa.Table.from_arrays(site.columns + taken.columns, names=site.column_names + taken.column_names)
    if columns is not None:
        site = site.select(columns)
    keys = list(zip(site.column("institution").to_pylist(), site.column("sample_id").to_pylist(), strict=True))
    if all(a <= b for a, b in pairwise(keys)):  # the point reader lists them so
        order = range(len(keys))
    else:
        order = sorted(range(len(keys)), key=keys.__getitem__)  # type: ignore[assignment]  # stable
        site = site.take(pa.array(order, pa.int64()))
    if not pheno.num_columns:
        return site
    rows = pa.array([index.get(keys[i]) for i in order], pa.int64())
    taken = pheno.take(rows)  # a null index gives a row of nulls: a sample without phenotypes
    return pa.Table.from_arrays(site.columns + taken.columns, names=site.column_names + taken.column_names)
