"""`genolake release`: a sites-only VCF (and a Parquet twin) of ``allele_frequencies`` under the policy.

Fields follow gnomAD's naming: ``AC_joint``, ``AN_joint``, ``AF_joint``, ``nhomalt_joint``, ``nhemi_joint``,
``faf95_joint``, ``grpmax_joint``, ``AF_grpmax_joint`` for the joint cohort; ``AC_<institution>`` ... for each
institution; ``AC_<column>_<value>`` ... for each stratum of the last ``genolake aggregate --by`` (joint cohort).
Institution x stratum cells are not released: crossed, they make two-way tables whose small cells need linear
programmes per variant to protect (too slow for a whole-genome release) and they are the cells most often small. Every INFO field is declared
(``Number=A``: records are the lake's split, biallelic alleles). ``adj:`` strata are not released.

Disclosure control is :func:`genolake.disclosure.protect`, the function `genolake serve` uses, applied to each
variant's cells (AC/AN/nhomalt/nhemi of the joint cohort, each institution and each joint stratum, with the
relations: the joint cohort is the sum of the institutions; a column's values plus the samples without a value
make up the joint cohort). A withheld value is written as ``.``; an AF, faf95 or grpmax computed from one is withheld too. The
header's ``##genolake_policy`` line says what was applied.

The VCF is written to a temporary file next to the output, bgzipped, indexed (tabix) and renamed into place: no
partial output is ever left behind.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from genolake import __version__
from genolake.disclosure import Protection, Relation, protect
from genolake.errors import LakeStateError
from genolake.policy import Policy
from genolake.vcfout.common import fmt_value, info_key

log = logging.getLogger(__name__)

METRICS = ("ac", "an", "nhomalt", "nhemi")
_FIELD_OF = {"ac": "AC", "an": "AN", "af": "AF", "nhomalt": "nhomalt", "nhemi": "nhemi"}
_DESC = {
    "ac": "Alternate allele count",
    "an": "Total number of alleles counted (allele number)",
    "af": "Alternate allele frequency (AC / AN)",
    "nhomalt": "Number of diploid samples homozygous for the alternate allele",
    "nhemi": "Number of haploid samples carrying the alternate allele (hemizygous)",
}
COUNTING_RULE = ("AC = sum of stored alt allele counts; AN = alleles counted: samples whose file lists the site add "
                 "their called alleles (diploid 0/0 implied: 2), samples of --absent-as-ref files (or inside "
                 "--callable-regions) add their ploidy at absent sites; nhomalt = diploid hom-alt samples; nhemi = "
                 "haploid carriers (docs/SCHEMA.md, genolake/compute/frequencies.py)")
BATCH = 50_000
def field_id(*parts: str) -> str:
    """An INFO key from name parts (``sex=female`` -> ``sex_female``), valid per VCF 4.3 (``[A-Za-z_][0-9A-Za-z_.]*``)."""
    return info_key("_".join(parts))


def _contig_key(c: str) -> tuple[int, str]:
    b = c.removeprefix("chr")
    if b.isdigit():
        return (int(b), "")
    return ({"X": 23, "Y": 24, "M": 25, "MT": 25}.get(b, 100), b)


class Layout:
    """The columns of the release: (scope, stratum) groups and their INFO fields."""

    def __init__(self, institutions: list[str], strata: list[str]) -> None:
        self.institutions = institutions
        self.strata = strata  # COLUMN=value, sorted
        self.columns: dict[str, list[str]] = {}
        for s in strata:
            col, _, _v = s.partition("=")
            self.columns.setdefault(col, []).append(s)
        self.scopes = ["joint", *institutions]
        self.fields: list[tuple[str, str, str, str, str]] = []  # (id, metric, scope, stratum, description)
        groups = [("joint", "all"), *((i, "all") for i in institutions), *(("joint", st) for st in strata)]
        for scope, stratum in groups:
            if True:
                for m in ("ac", "an", "af", "nhomalt", "nhemi"):
                    parts = [_FIELD_OF[m]]
                    if scope != "joint" or stratum == "all":
                        parts.append(scope)
                    if stratum != "all":
                        parts.append(stratum)
                    who = "the joint cohort (every institution)" if scope == "joint" else f"institution {scope}"
                    what = f"{who}" + (f", samples with {stratum}" if stratum != "all" else "")
                    self.fields.append((field_id(*parts), m, scope, stratum, f"{_DESC[m]} in {what}"))
        self.extra = [("faf95_joint", "Float", "Filtering allele frequency (95% CI upper bound, Whiffin et al. 2017) "
                                               "of the joint cohort"),
                      ("grpmax_joint", "String", "Stratum (COLUMN=value of --faf-groups) with the highest AF"),
                      ("AF_grpmax_joint", "Float", "AF of grpmax_joint"),
                      ("withheld", "Integer", "Number of values of this record withheld by disclosure control")]

    def relations(self) -> tuple[list[Relation], list[Any]]:
        rels, hidden = [], []
        for m in METRICS:
            rels.append(Relation((("joint", "all"), m), tuple(((i, "all"), m) for i in self.institutions)))
        for scope in ["joint"]:
            for col, values in self.columns.items():
                for m in METRICS:
                    rem = ((scope, f"{col}=__no_value__"), m)
                    hidden.append(rem)
                    rels.append(Relation(((scope, "all"), m), (*(((scope, v), m) for v in values), rem)))
        return rels, hidden


def release(lake: str | Path, policy: Policy, output: str | Path, *, parquet: str | Path | None = None) -> dict[str, Any]:
    """Write the sites VCF (bgzipped + tabix index) and optionally the Parquet twin; returns a summary.

    Examples
    --------
    >>> release("lake", Policy.load("policy.toml"), "sites.vcf.gz", parquet="sites.parquet")  # doctest: +SKIP
    {'vcf': 'sites.vcf.gz', 'records': 1234, 'fields': 45, 'withheld': 310, 'min_count': 20, ...}
    """
    import pysam

    from genolake.query.lake import Lake

    out = Path(output)
    if not str(out).endswith(".vcf.gz"):
        raise LakeStateError(f"{out}: the release is a bgzipped VCF: name it .vcf.gz")
    lk = Lake(lake)
    eng = lk.engine
    if "allele_frequencies" not in eng.catalog.tables:
        raise LakeStateError("the lake has no allele_frequencies: run `genolake aggregate` first")
    if not eng.catalog.frequencies_current:
        raise LakeStateError("allele_frequencies is older than the last ingest: run `genolake aggregate` again "
                             "before releasing")
    institutions = eng.catalog.institutions
    strata = [r[0] for r in eng.rows("SELECT DISTINCT stratum FROM allele_frequencies WHERE stratum <> 'all' "
                                     "AND stratum NOT LIKE 'adj:%' ORDER BY 1")]
    layout = Layout(institutions, strata)
    rels, hidden = layout.relations()
    from genolake.serve.service import lake_version as version_of  # no web imports in that module

    lake_version = version_of(lk.path)

    @lru_cache(maxsize=200_000)
    def decide(cells: tuple[tuple[Any, int], ...]) -> Protection:
        return protect(dict(cells), rels, min_count=policy.min_count, hidden=hidden)

    tmpdir = out.parent if str(out.parent) else Path(".")
    fd, plain_name = tempfile.mkstemp(prefix=".genolake-release-", suffix=".vcf", dir=tmpdir)
    plain = Path(plain_name)
    gz = plain.with_suffix(".vcf.gz")
    pq_tmp = None
    n = withheld = 0
    try:
        import pyarrow as pa

        columns: dict[str, list[Any]] = {k: [] for k in ("contig", "pos", "ref", "alt")}
        for fid, *_rest in layout.fields:
            columns[fid] = []
        for fid, _t, _d in layout.extra:
            columns[fid] = []
        with os.fdopen(fd, "w") as fh:
            fh.write(_header(layout, lk, lake_version, policy))
            sql = ("SELECT contig, pos, ref, alt, scope, stratum, ac, an, nhomalt, nhemi, faf95, grpmax, grpmax_af "
                   "FROM allele_frequencies WHERE stratum NOT LIKE 'adj:%' ORDER BY contig, pos, ref, alt")
            contigs = sorted({r[0] for r in eng.rows("SELECT DISTINCT contig FROM allele_frequencies")},
                             key=_contig_key)
            for contig in contigs:
                cur = eng.con.execute(sql.replace("WHERE", "WHERE contig = $c AND"), {"c": contig})
                for key, rows in _variants_from_cursor(cur):
                    rec, w = _record(key, rows, layout, decide, hidden)
                    withheld += w
                    n += 1
                    info = ";".join(f"{k}={fmt_value(v)}" for k, v in rec.items() if v is not None)
                    fh.write(f"{key[0]}\t{key[1]}\t.\t{key[2]}\t{key[3]}\t.\t.\t{info or '.'}\n")
                    if parquet is not None:
                        for c, v in zip(("contig", "pos", "ref", "alt"), key, strict=True):
                            columns[c].append(v)
                        for fid in columns:
                            if fid not in ("contig", "pos", "ref", "alt"):
                                columns[fid].append(rec.get(fid))
        pysam.tabix_compress(str(plain), str(gz), force=True)
        pysam.tabix_index(str(gz), preset="vcf", force=True)
        if parquet is not None:
            import pyarrow.parquet as pq

            pq_path = Path(parquet)
            pq_tmp = pq_path.with_name(f".{pq_path.name}.tmp")
            types = {fid: (pa.int64() if m in ("ac", "an", "nhomalt", "nhemi") else pa.float64())
                     for fid, m, *_r in layout.fields}
            types.update({"faf95_joint": pa.float64(), "grpmax_joint": pa.string(), "AF_grpmax_joint": pa.float64(),
                          "withheld": pa.int64(), "contig": pa.string(), "pos": pa.int32(), "ref": pa.string(),
                          "alt": pa.string()})
            table = pa.table({k: pa.array(v, type=types[k]) for k, v in columns.items()})
            table = table.replace_schema_metadata({"genolake_policy": _policy_line(policy),
                                                   "genolake_lake_version": lake_version})
            pq.write_table(table, pq_tmp)
            os.replace(pq_tmp, pq_path)
        os.replace(gz, out)
        os.replace(str(gz) + ".tbi", str(out) + ".tbi")
    finally:
        for p in (plain, gz, Path(str(gz) + ".tbi"), pq_tmp):
            if p is not None and p.exists():
                p.unlink()
    return {"vcf": str(out), "records": n, "fields": len(layout.fields) + len(layout.extra), "withheld": withheld,
            "min_count": policy.min_count, "parquet": str(parquet) if parquet else None,
            "lake_version": lake_version}


def _variants_from_cursor(cur: Any) -> Iterator[tuple[tuple[str, int, str, str], list[dict[str, Any]]]]:
    import warnings

    fn = getattr(cur, "to_arrow_reader", None) or cur.fetch_record_batch  # duckdb >= 1.4 / before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "an extra copy of the rows": one batch at a time
        reader = fn(BATCH)
    key: tuple[str, int, str, str] | None = None
    rows: list[dict[str, Any]] = []
    for batch in reader:
        for r in batch.to_pylist():
            k = (r["contig"], r["pos"], r["ref"], r["alt"])
            if k != key:
                if key is not None:
                    yield key, rows
                key, rows = k, []
            rows.append(r)
    if key is not None:
        yield key, rows


def _record(key: tuple[str, int, str, str], rows: list[dict[str, Any]], layout: Layout, decide: Any,
            hidden: list[Any]) -> tuple[dict[str, Any], int]:
    """INFO values of one variant after disclosure control, and how many values were withheld."""
    got = {(r["scope"], r["stratum"]): r for r in rows}
    values: dict[Any, int] = {}
    for scope in layout.scopes:
        for stratum in ["all", *layout.strata] if scope == "joint" else ["all"]:
            r = got.get((scope, stratum))
            for m in METRICS:
                values[((scope, stratum), m)] = int(r[m]) if r is not None and r[m] is not None else 0
        if scope != "joint":
            continue
        for col, vals in layout.columns.items():
            for m in METRICS:
                total = values[((scope, "all"), m)]
                values[((scope, f"{col}=__no_value__"), m)] = max(total - sum(values[((scope, v), m)] for v in vals), 0)
    p: Protection = decide(tuple(sorted(values.items(), key=lambda kv: repr(kv[0]))))
    rec: dict[str, Any] = {}
    withheld = 0
    for fid, m, scope, stratum, _d in layout.fields:
        g = (scope, stratum)
        if m == "af":
            ac, an = values[(g, "ac")], values[(g, "an")]
            shown = p.shown((g, "ac")) and p.shown((g, "an"))
            rec[fid] = (ac / an if an else None) if shown else None
            if not shown:
                withheld += 1
            continue
        if (g, m) in p.suppressed:
            rec[fid] = None
            withheld += 1
        else:
            rec[fid] = values[(g, m)]
    joint = got.get(("joint", "all"))
    joint_ok = p.shown((("joint", "all"), "ac")) and p.shown((("joint", "all"), "an"))
    faf = joint.get("faf95") if joint else None
    rec["faf95_joint"] = faf if joint_ok and faf is not None and not math.isnan(faf) else None
    gm = joint.get("grpmax") if joint else None
    gm_ok = gm is not None and p.shown((("joint", gm), "ac")) and p.shown((("joint", gm), "an"))
    rec["grpmax_joint"] = gm if gm_ok else None
    rec["AF_grpmax_joint"] = joint.get("grpmax_af") if gm_ok and joint else None
    if faf is not None and not joint_ok:
        withheld += 1
    if gm is not None and not gm_ok:
        withheld += 2
    rec["withheld"] = withheld
    return rec, withheld


def _policy_line(policy: Policy) -> str:
    return (f"min_count={policy.min_count};counts from 1 to min_count-1 (AN: 1 to 2*min_count-1) withheld with "
            f"their complements (genolake.disclosure.protect);policy_sha256={policy.digest}")


def _header(layout: Layout, lk: Any, lake_version: str, policy: Policy) -> str:
    lines = [
        "##fileformat=VCFv4.3",
        f"##fileDate={datetime.now(UTC).strftime('%Y%m%d')}",
        f"##source=genolake {__version__} release",
        f"##reference={lk.build}",
        f"##genolake_lake_version={lake_version}",
        f'##genolake_counting_rule="{COUNTING_RULE}"',
        f'##genolake_policy="{_policy_line(policy)}"',
    ]
    contigs = [r[0] for r in lk.engine.rows("SELECT DISTINCT contig FROM allele_frequencies")]
    for c in sorted(contigs, key=_contig_key):
        lines.append(f"##contig=<ID={c}>")
    for fid, m, _s, _st, desc in layout.fields:
        typ = "Float" if m == "af" else "Integer"
        lines.append(f'##INFO=<ID={fid},Number=A,Type={typ},Description="{desc} (genolake lake {lake_version}; '
                     f'withheld values are missing)">')
    for fid, typ, desc in layout.extra:
        number = "1" if fid == "withheld" else "A"
        lines.append(f'##INFO=<ID={fid},Number={number},Type={typ},Description="{desc}">')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    return "\n".join(lines) + "\n"
