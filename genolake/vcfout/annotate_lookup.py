"""The lake's values at the alleles of one chunk of `genolake annotate-vcf` (one contig, a position range):
from ``allele_frequencies`` or by the counting rule of :mod:`genolake.query.counts`, and the AN of the samples
that count at an allele the lake has not seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from genolake.query.engine import Engine

Key = tuple[int, str, str]  # (pos, REF, ALT) of one split, normalised allele: the lake's key

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
class Seen:
    """The lake's values at the alleles of a look-up it has seen: one row per allele and group (column lists)."""

    key: list[int]  # index of the allele in those looked up
    group: list[int]  # index of the group in the look-up's groups (-1: a group not asked for)
    ac: list[int]
    an: list[int]
    nhomalt: list[int]
    nhemi: list[int]
    faf95: list[float | None]
    grpmax: list[str | None]


class Lookup:
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
    def seen(self, contig: str, pos: list[int], ref: list[str], alt: list[str]) -> Seen:
        """The rows of every group at the alleles (``pos``, ``ref``, ``alt``: the lake's keys, repeats allowed)
        the lake has seen."""
        if not pos:
            return Seen([], [], [], [], [], [], [], [])
        eng = self.eng
        pos_a = np.array(pos, dtype=np.int32)
        tbl = pa.Table.from_arrays([_int32_array(np.arange(len(pos))), _int32_array(pos_a), _string_array(ref),
                                    _string_array(alt)], names=["i", "pos", "ref", "alt"])
        lo, hi = int(pos_a.min()), int(pos_a.max())
        eng.register("_gl_vcf_keys", tbl)
        try:
            if self.use_af:
                return self._from_af(contig, lo, hi)
            return self._rows(self._from_lake(contig, lo, hi), list(zip(pos, ref, alt, strict=True)))
        finally:
            eng.unregister("_gl_vcf_keys")

    def _from_af(self, contig: str, lo: int, hi: int) -> Seen:
        eng = self.eng
        src = eng.scan("allele_frequencies", contig=contig, start=lo, end=hi,
                       columns=["contig", "pos", "ref", "alt", "scope", "stratum", "ac", "an", "nhomalt", "nhemi",
                                "faf95", "grpmax"])
        scopes = sorted({g.scope for g in self.groups})
        strata = sorted({g.stratum for g in self.groups} | {"all"})
        tbl = eng.query(f"""
            SELECT k.i, a.scope, a.stratum, a.ac, a.an, a.nhomalt, a.nhemi, a.faf95, a.grpmax
            FROM {src} AS a JOIN _gl_vcf_keys k ON a.pos = k.pos AND a.ref = k.ref AND a.alt = k.alt
            WHERE a.contig = $contig AND a.pos BETWEEN $lo AND $hi
              AND list_contains($scopes, a.scope) AND list_contains($strata, a.stratum)""",
                        {"contig": contig, "lo": lo, "hi": hi, "scopes": scopes, "strata": strata})
        col = {name: tbl.column(name).to_pylist() for name in tbl.column_names}
        index = {(g.scope, g.stratum): i for i, g in enumerate(self.groups)}
        faf95 = [None if x is None or x != x else float(x) for x in col["faf95"]]
        ac, an, nhomalt, nhemi = (list(map(int, col[name])) for name in ("ac", "an", "nhomalt", "nhemi"))
        return Seen(col["i"], [index.get(sg, -1) for sg in zip(col["scope"], col["stratum"], strict=True)],
                    ac, an, nhomalt, nhemi, faf95, col["grpmax"])

    def _rows(self, found: dict[Key, dict[Group, Values]], keys: list[Key]) -> Seen:
        """``found`` (allele -> group -> values) as the rows of a :class:`Seen` of the alleles ``keys``."""
        at: dict[Key, list[int]] = {}
        for i, k in enumerate(keys):
            at.setdefault(k, []).append(i)
        index = {g: i for i, g in enumerate(self.groups)}
        rows = [(i, index.get(g, -1), *v) for k, vals in found.items() for g, v in vals.items() for i in at[k]]
        if not rows:
            return Seen([], [], [], [], [], [], [], [])
        return Seen(*map(list, zip(*rows, strict=True)))  # type: ignore[arg-type]

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


def _int32_array(values: np.ndarray) -> pa.Array:
    """An Arrow int32 array of ``values`` made from its buffer (``pa.array`` would import pandas: 0.3 s)."""
    data = np.ascontiguousarray(values, dtype=np.int32)
    return pa.Array.from_buffers(pa.int32(), len(data), [None, pa.py_buffer(data)])


def _string_array(values: list[str]) -> pa.Array:
    """An Arrow string array of ``values`` made from its buffers (see :func:`_int32_array`)."""
    text = "".join(values)
    if text.isascii():
        blob, lengths = text.encode(), np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    else:
        encoded = [v.encode() for v in values]
        blob, lengths = b"".join(encoded), np.fromiter(map(len, encoded), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(blob)])
