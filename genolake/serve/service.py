"""What the server does for each request, with no HTTP in it: open lake, refresh, queries under the policy.

Every method runs on the server's one lake thread (DuckDB connections are not shared between threads); the
app (:mod:`genolake.serve.app`) hands requests to it and bounds their time.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genolake.disclosure import Relation, protect
from genolake.errors import UserInputError
from genolake.policy import Policy, Principal
from genolake.serve import beacon as bc
from genolake.serve.answers import disclosure_note, protect_report, protect_rows
from genolake.store import lake_stamp

log = logging.getLogger(__name__)

SOURCE = "genolake"
MAX_REGION_ROWS = 10_000
CACHE_SIZE = 20_000  # answers kept per lake version


def lake_version(root: str | Path) -> str:
    """The lake version: each table's newest Delta commit (``files@3,calls@3,...``)."""
    return ",".join(f"{n}@{v}" for n, v in lake_stamp(root))


@dataclass
class Outcome:
    """A response body plus what the audit log records about it."""

    body: Any
    status: int = 200
    results: int = 0
    suppressed: int = 0
    granularity: str | None = None
    withheld: list[str] = field(default_factory=list)  # names of withheld cells (north.ac, ...), for the audit
    headers: dict[str, str] = field(default_factory=dict)


class Forbidden(UserInputError):
    def __init__(self, message: str, code: int = 403) -> None:
        super().__init__(message)
        self.code = code


class Service:
    """The lake and the policy behind the HTTP routes."""

    def __init__(self, lake: str | Path, policy: Policy, *, beacon_id: str | None = None,
                 refresh_seconds: float = 0.5) -> None:
        from genolake.query.lake import Lake

        self.lake = Lake(lake)
        self.policy = policy
        self.refresh_seconds = refresh_seconds
        self._stamp = self._lake_stamp()
        self._checked = time.monotonic()
        self.beacon_id = beacon_id or f"org.genolake.{self.lake.store.config.get('lake_id', 'lake')}"
        self._terms: list[dict[str, Any]] | None = None
        # answers of this lake version (cleared when the lake changes): raw reports and protected ones
        self._reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._protected: OrderedDict[tuple[str, str, str | None], dict[str, Any]] = OrderedDict()
        self._freqs: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._alleles: OrderedDict[tuple[str, int], list[tuple[str, int, str, str]]] = OrderedDict()

    # ------------------------------------------------------------------ lake versions
    def _lake_stamp(self) -> tuple[tuple[str, int], ...]:
        return lake_stamp(self.lake.path)

    def version(self) -> str:
        """The lake version: each table's newest Delta commit (``files@3,calls@3,...``)."""
        return ",".join(f"{n}@{v}" for n, v in self._stamp)

    def maybe_refresh(self) -> bool:
        """Pick up new lake commits (checked at most every ``refresh_seconds``)."""
        now = time.monotonic()
        if now - self._checked < self.refresh_seconds:
            return False
        self._checked = now
        stamp = self._lake_stamp()
        if stamp == self._stamp:
            return False
        self.lake.refresh()
        self._stamp = stamp
        self._terms = None
        self._reports.clear()
        self._protected.clear()
        self._freqs.clear()
        self._alleles.clear()
        log.info("lake changed: now at %s", self.version())
        return True

    def interrupt(self) -> None:
        try:
            self.lake.engine.interrupt()
        except Exception:  # pragma: no cover - best effort
            pass

    # ------------------------------------------------------------------ cached answers
    def report(self, variant: str) -> dict[str, Any]:
        """``Lake.variant`` (the `query variant` object), cached for this lake version."""
        got = self._reports.get(variant)
        if got is None:
            got = self._reports[variant] = self.lake.variant(variant)
            if len(self._reports) > CACHE_SIZE:
                self._reports.popitem(last=False)
        return got

    def protected(self, variant: str, principal: Principal) -> dict[str, Any]:
        """The report under the policy for this principal's tier (and institution), cached."""
        key = (variant, principal.tier, principal.institution)
        got = self._protected.get(key)
        if got is None:
            got = protect_report(self.report(variant), min_count=self.policy.min_count, principal=principal)
            self._protected[key] = got
            if len(self._protected) > CACHE_SIZE:
                self._protected.popitem(last=False)
        return got

    def frequencies(self, variant: str) -> list[dict[str, Any]]:
        """Joint and per-institution counts only (what a boolean answer needs), cached."""
        got = self._freqs.get(variant)
        if got is None:
            full = self._reports.get(variant)
            if full is not None:
                got = full["frequencies"]
            else:
                from genolake.query.variant import live_frequencies, precomputed_frequencies, resolve, site_rows

                key = resolve(self.lake, variant)
                rows, _only = site_rows(self.lake, key)
                got, _fill = live_frequencies(self.lake, key, rows)
                pre = precomputed_frequencies(self.lake, key) if rows else None
                got = pre if pre is not None else got
            self._freqs[variant] = got
            if len(self._freqs) > CACHE_SIZE:
                self._freqs.popitem(last=False)
        return got

    # ------------------------------------------------------------------ informational
    @property
    def build(self) -> str:
        return self.lake.build

    def filtering_terms(self) -> list[dict[str, Any]]:
        """The categorical phenotype values (``sex=female``) and numeric phenotypes usable as filters."""
        if self._terms is None:
            eng = self.lake.engine
            terms: list[dict[str, Any]] = []
            from genolake.schema import ID_PHENOTYPES

            if "phenotypes_long" in eng.views:
                rows = eng.rows("SELECT name, kind, value_str FROM phenotypes_long "
                                "WHERE kind IN ('categorical', 'numeric') GROUP BY ALL ORDER BY ALL")
                numeric = sorted({r[0] for r in rows if r[1] == "numeric"})
                for name, kind, value in rows:
                    if kind == "categorical" and value is not None and name not in ID_PHENOTYPES:
                        terms.append({"type": "custom", "id": f"{name}={value}", "label": f"{name} = {value}",
                                      "scopes": ["genomicVariation"]})
                for name in numeric:
                    terms.append({"type": "alphanumeric", "id": name, "label": f"{name} (numeric phenotype)",
                                  "scopes": ["genomicVariation"]})
            self._terms = terms
        return self._terms

    # ------------------------------------------------------------------ g_variants
    def allowed(self, principal: Principal) -> str:
        return "record" if principal.counts else "boolean"

    def _condition(self, filters: list[dict[str, Any]]) -> tuple[str | None, str]:
        """A ``--where`` condition for Beacon filters (values checked against the filtering terms, so no text
        of the request becomes part of the condition) and a label for the stratum."""
        if not filters:
            return None, ""
        terms = {t["id"]: t for t in self.filtering_terms()}
        numeric = {t["id"] for t in terms.values() if t["type"] == "alphanumeric"}
        parts, labels = [], []
        for f in filters:
            fid = str(f["id"]).strip()
            op = f.get("operator")
            value = f.get("value")
            if value is None and op is None:
                key = fid.replace(":", "=", 1) if "=" not in fid else fid
                if key not in terms:
                    known = ", ".join(sorted(terms)[:20]) or "none (no phenotypes loaded)"
                    raise bc.BeaconError(f"unknown filter {fid!r}; filtering terms: {known}")
                name, _, val = key.partition("=")
                parts.append(f"\"{name}\" = '{val.replace(chr(39), chr(39) * 2)}'")
                labels.append(key)
                continue
            if fid in numeric:
                if op not in bc._OPERATORS:
                    raise bc.BeaconError(f"filter {fid}: operator must be one of =, !, <, >, <=, >=")
                try:
                    num = float(value)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise bc.BeaconError(f"filter {fid}: value must be a number, not {value!r}") from None
                parts.append(f"\"{fid}\" {bc._OPERATORS[op]} {num!r}")
                labels.append(f"{fid}{bc._OPERATORS[op]}{num:g}")
                continue
            key = f"{fid}={value}"
            if op not in (None, "=") or key not in terms:
                raise bc.BeaconError(f"unknown filter {fid!r} {op or '='} {value!r}; see /api/filtering_terms")
            parts.append(f"\"{fid}\" = '{str(value).replace(chr(39), chr(39) * 2)}'")
            labels.append(key)
        return " AND ".join(parts), "&".join(labels)

    def _keys(self, q: bc.VariantQuery) -> list[tuple[str, int, str, str]]:
        """The lake's alleles matching the query's position(s), bases and type, in position order."""
        from genolake.contigs import to_style

        if not q.reference_name:
            raise bc.BeaconError("referenceName is required (with start, and end or alternateBases)")
        if not q.start:
            raise bc.BeaconError("start is required (0-based)")
        contig = to_style(q.reference_name.removeprefix("refseq:"), self.lake.store.contig_style)
        eng = self.lake.engine
        known = {c for f in eng.catalog.files.values() for c in f.contigs}
        if known and contig not in known:
            shown = ", ".join(sorted(known)[:30])
            raise bc.BeaconError(f"referenceName {q.reference_name!r} is not a contig of this Beacon ({shown})")
        if not q.end:
            if len(q.start) != 1:
                raise bc.BeaconError("a sequence query takes one start; give end for a range query")
            if q.alternate_bases is None:
                raise bc.BeaconError("a sequence query (start without end) needs alternateBases")
            pos = q.start[0] + 1
            keys = self._alleles.get((contig, pos))
            if keys is None:
                rows = eng.point_rows("variants", contig=contig, pos=pos, columns=["ref", "alt"])
                keys = self._alleles[(contig, pos)] = sorted({(contig, pos, r, a) for r, a in rows})
                if len(self._alleles) > CACHE_SIZE:
                    self._alleles.popitem(last=False)
        else:
            lo = q.start[0] + 1
            hi = q.end[-1]
            if hi < lo:
                raise bc.BeaconError(f"end ({hi}) must be greater than start ({lo - 1})")
            if hi - lo + 1 > bc.MAX_RANGE:
                raise bc.BeaconError(f"the range spans {hi - lo + 1:,} bases; at most {bc.MAX_RANGE:,} per query")
            from genolake.query.ids import Region

            t = self.lake.region(Region(contig, lo, hi))
            keys = list(zip(t.column("contig").to_pylist(), t.column("pos").to_pylist(),
                            t.column("ref").to_pylist(), t.column("alt").to_pylist(), strict=True))
        return [k for k in keys
                if bc.bases_match(q.reference_bases, k[2]) and bc.bases_match(q.alternate_bases, k[3])
                and bc.type_matches(q.variant_type, k[2], k[3])]

    def g_variants(self, q: bc.VariantQuery, principal: Principal, *, requested: str) -> Outcome:
        bc.check_assembly(q, self.build)
        allowed = self.allowed(principal)
        order = bc.GRANULARITIES
        granted = order[min(order.index(requested), order.index(allowed))]
        keys = self._keys(q)
        cond, label = self._condition(q.filters)
        if cond is not None:
            return self._g_variants_filtered(q, principal, keys, cond, label, granted, requested)
        meta = bc.response_meta(self.beacon_id, q, granted, requested)
        if granted != "record":
            if len(keys) > 1:
                hits = self._region_hits(keys, q)
            else:
                hits = [(c, p, r, a) for c, p, r, a in keys
                        if (self.frequencies(f"{c}-{p}-{r}-{a}")[0]["ac"] or 0) > 0]
            body: dict[str, Any] = {"meta": meta, "responseSummary": {"exists": bool(hits)}}
            if granted == "count":
                body["responseSummary"]["numTotalResults"] = len(hits)
            return Outcome(body, results=len(hits), granularity=granted)
        # record granularity: one result set per scope (joint, then each institution)
        page = keys[q.skip:q.skip + q.limit]
        sets: dict[str, dict[str, Any]] = {}
        withheld = 0
        cells: list[str] = []
        total_hits = 0
        version = self.version()
        for c, p, r, a in page:
            rep = self.protected(f"{c}-{p}-{r}-{a}", principal)
            withheld += rep["disclosure"]["withheld"]
            cells.extend(f"{c}-{p}-{r}-{a}:{x}" for x in rep["disclosure"]["cells"])
            for f in rep["frequencies"]:
                s = sets.setdefault(f["scope"], {"id": f["scope"], "setType": "dataset", "exists": False,
                                                 "resultsCount": 0, "results": []})
                hit = (f["ac"] is None) or f["ac"] > 0  # withheld = from 1 up (or a complement)
                if not hit:
                    continue
                s["exists"] = True
                s["resultsCount"] += 1
                pops = [f] + ([{"scope": f"{ph['phenotype']}={ph['value']}", **ph} for ph in rep["phenotypes"]]
                              if f["scope"] == "joint" else [])
                s["results"].append(self._record(c, p, r, a, pops, version))
        total_hits = len(self._region_hits(keys, q)) if len(keys) > len(page) else \
            sets.get("joint", {}).get("resultsCount", 0)
        out_sets = [s for s in sets.values() if _include(q.include, s["exists"])]
        for s in out_sets:
            s["info"] = {"disclosure": {"min_count": self.policy.min_count, "tier": principal.tier}}
        body = {
            "meta": meta,
            "responseSummary": {"exists": total_hits > 0, "numTotalResults": total_hits},
            "response": {"resultSets": out_sets},
            "info": {"lakeVersion": version, "disclosure": {"min_count": self.policy.min_count,
                                                           "tier": principal.tier, "withheld": withheld}},
        }
        return Outcome(body, results=total_hits, suppressed=withheld, granularity=granted, withheld=cells)

    def _region_hits(self, keys: list[tuple[str, int, str, str]], q: bc.VariantQuery) -> list[Any]:
        """Keys with joint AC > 0 (one region query over the span of the keys)."""
        if not keys:
            return []
        from genolake.query.ids import Region

        want = set(keys)
        t = self.lake.region(Region(keys[0][0], min(k[1] for k in keys), max(k[1] for k in keys)), min_ac=1)
        return [k for k in zip(t.column("contig").to_pylist(), t.column("pos").to_pylist(),
                               t.column("ref").to_pylist(), t.column("alt").to_pylist(), strict=True) if k in want]

    def _g_variants_filtered(self, q: bc.VariantQuery, principal: Principal, keys: list[Any], cond: str,
                             label: str, granted: str, requested: str) -> Outcome:
        """Counts of the samples matching the filters, one result set (the joint cohort's stratum). The joint
        counts are taken as known to the requester (another query gives them), so the stratum is withheld when
        the rest of the cohort is a small group (joint minus stratum)."""
        meta = bc.response_meta(self.beacon_id, q, granted, requested)
        if not keys:
            rows: list[dict[str, Any]] = []
        else:
            from genolake.query.ids import Region

            want = set(keys)
            t = self.lake.region(Region(keys[0][0], min(k[1] for k in keys), max(k[1] for k in keys)), where=cond)
            rows = [r for r in t.to_pylist() if (r["contig"], r["pos"], r["ref"], r["alt"]) in want]
        hits = [r for r in rows if r["where_ac"] > 0]
        if granted != "record":
            body: dict[str, Any] = {"meta": meta, "responseSummary": {"exists": bool(hits)}}
            if granted == "count":
                body["responseSummary"]["numTotalResults"] = len(hits)
            return Outcome(body, results=len(hits), granularity=granted)
        version = self.version()
        results, withheld = [], 0
        for r in hits[q.skip:q.skip + q.limit]:
            s, j, c = "stratum", "joint", "rest"
            values = {(s, "ac"): r["where_ac"], (s, "an"): r["where_an"], (s, "samples"): r["where_samples"],
                      (s, "carriers"): r["where_carriers"], (j, "ac"): r["ac"], (j, "an"): r["an"],
                      (c, "ac"): r["ac"] - r["where_ac"], (c, "an"): r["an"] - r["where_an"]}
            rels = [Relation((j, m), ((s, m), (c, m))) for m in ("ac", "an")]
            p = protect(values, rels, min_count=self.policy.min_count, known=[(j, "ac"), (j, "an")],
                        hidden=[(c, "ac"), (c, "an")])
            withheld += len(p.suppressed)
            pop = {"scope": f"joint|{label}", "ac": p.value((s, "ac"), values), "an": p.value((s, "an"), values),
                   "nhomalt": None, "nhemi": None,
                   "af": r["where_af"] if p.shown((s, "ac")) and p.shown((s, "an")) else None,
                   "suppressed": sorted(m for (g, m) in p.suppressed if g == s)}
            results.append(self._record(r["contig"], r["pos"], r["ref"], r["alt"], [pop], version))
        rs = {"id": f"joint|{label}", "setType": "dataset", "exists": bool(hits), "resultsCount": len(hits),
              "results": results, "info": {"filters": label}}
        body = {"meta": meta, "responseSummary": {"exists": bool(hits), "numTotalResults": len(hits)},
                "response": {"resultSets": [rs] if _include(q.include, bool(hits)) else []},
                "info": {"lakeVersion": version, "disclosure": {"min_count": self.policy.min_count,
                                                               "tier": principal.tier, "withheld": withheld}}}
        return Outcome(body, results=len(hits), suppressed=withheld, granularity=granted)

    def _record(self, contig: str, pos: int, ref: str, alt: str, pops: list[dict[str, Any]],
                version: str) -> dict[str, Any]:
        freqs, withheld = [], []
        for f in pops:
            gone = list(f.get("suppressed", []))
            if f.get("af") is None:
                withheld.append({"population": f["scope"], "withheld": gone or ["af"]})
                continue
            pf = {"population": f["scope"], "alleleFrequency": f["af"], "alleleCount": f["ac"],
                  "alleleNumber": f["an"], "alleleCountHomozygous": f.get("nhomalt"),
                  "alleleCountHemizygous": f.get("nhemi")}
            if gone:
                pf["withheld"] = gone
            freqs.append(pf)
        rec: dict[str, Any] = {
            "variantInternalId": f"{contig}-{pos}-{ref}-{alt}",
            "variation": bc.legacy_variation(contig, pos, ref, alt, self.build),
        }
        if freqs:
            rec["frequencyInPopulations"] = [{"source": SOURCE, "sourceReference": f"genolake lake {self.beacon_id}",
                                              "version": version, "frequencies": freqs}]
        if withheld:
            rec["info"] = {"withheldPopulations": withheld}
        return rec

    # ------------------------------------------------------------------ genolake /v1
    def _need_counts(self, principal: Principal) -> None:
        if not principal.counts:
            raise Forbidden("this endpoint answers with counts: send Authorization: Bearer <token> of a "
                            "registered or member account", 401)

    def v1_variant(self, variant: str, principal: Principal) -> Outcome:
        self._need_counts(principal)
        rep = dict(self.protected(variant, principal))
        rep["variant"] = dict(rep["variant"], lake_version=self.version())
        return Outcome(rep, results=1 if rep["variant"].get("observed") else 0,
                       suppressed=rep["disclosure"]["withheld"], granularity="record",
                       withheld=list(rep["disclosure"]["cells"]))

    def v1_region(self, region: str, principal: Principal) -> Outcome:
        self._need_counts(principal)
        from genolake.query.region import as_region

        reg = as_region(self.lake, region)
        if reg.end - reg.start + 1 > bc.MAX_RANGE:
            raise bc.BeaconError(f"the region spans {reg.end - reg.start + 1:,} bases; at most {bc.MAX_RANGE:,}")
        rows = self.lake.region(reg).slice(0, MAX_REGION_ROWS).to_pylist()
        out, withheld = protect_rows(rows, min_count=self.policy.min_count, principal=principal)
        return Outcome(out, results=len(out), suppressed=withheld, granularity="record",
                       headers=_note_header(self.policy.min_count, principal, withheld))

    def v1_gene(self, symbol: str, principal: Principal) -> Outcome:
        self._need_counts(principal)
        from genolake.query.genes import gene_variants

        rows = gene_variants(self.lake, symbol).slice(0, MAX_REGION_ROWS).to_pylist()
        out, withheld = protect_rows(rows, min_count=self.policy.min_count, principal=principal, metrics=("ac",))
        return Outcome(out, results=len(out), suppressed=withheld, granularity="record",
                       headers=_note_header(self.policy.min_count, principal, withheld))

    def v1_carriers(self, variant: str, principal: Principal) -> Outcome:
        """Sample-level rows: members only, and only their own institution's."""
        if principal.tier != "member" or not principal.institution:
            if not principal.counts:
                raise Forbidden("carriers are sample-level rows: send the Bearer token of a member account", 401)
            raise Forbidden("carriers are sample-level rows, for members of an institution only (their own "
                            "institution's samples)")
        import pyarrow.compute as pc

        t = self.lake.carriers(variant)
        t = t.filter(pc.equal(t.column("institution"), principal.institution))
        rows = t.to_pylist()
        return Outcome(rows, results=len(rows), granularity="record",
                       headers={"X-Genolake-Rows": f"institution={principal.institution}"})


def _include(mode: str, exists: bool) -> bool:
    return mode == "ALL" or (mode == "HIT" and exists) or (mode == "MISS" and not exists)


def _note_header(min_count: int, principal: Principal, withheld: int) -> dict[str, str]:
    from genolake.disclosure import REASON

    return {"X-Genolake-Disclosure": f"min_count={min_count}; tier={principal.tier}; withheld={withheld}; "
                                     f"reason={REASON}"}


__all__ = ["Forbidden", "Outcome", "Service", "disclosure_note"]
