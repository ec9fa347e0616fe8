"""genolake's answers under the policy: the ``genolake query ... --format json`` objects with disclosure control.

Every count leaves through :func:`genolake.disclosure.protect`. A withheld count is ``null`` and named in the row's
``suppressed`` list; a frequency computed from a withheld count is ``null`` too. The answer's ``disclosure``
object says what was applied (``min_count``, the requester's tier, how many cells were withheld, why).
"""

from __future__ import annotations

from typing import Any

from genolake.disclosure import REASON, REASON_TEXT, Protection, Relation, af_shown, protect
from genolake.policy import Principal

FREQ_METRICS = ("ac", "an", "nhomalt", "nhemi")
STRATUM_METRICS = ("samples", "carriers", "ac", "an", "nhomalt", "nhemi")
REM = "__no_value__"


def report_cells(report: dict[str, Any]) -> tuple[dict[Any, int | None], list[Relation], set[Any]]:
    """Cells, relations and hidden cells of a ``variant_report``: the joint cohort = the institutions; for each
    categorical phenotype, the cohort = its values + the samples without a value (hidden); within a phenotype
    value, ``ac = carriers + nhomalt``."""
    values: dict[Any, int | None] = {}
    rels: list[Relation] = []
    hidden: set[Any] = set()
    freqs = report.get("frequencies") or []
    scopes = [f["scope"] for f in freqs]
    for f in freqs:
        for m in FREQ_METRICS:
            values[(("scope", f["scope"]), m)] = f.get(m)
    insts = [s for s in scopes if s != "joint"]
    if "joint" in scopes and insts:
        for m in FREQ_METRICS:
            rels.append(Relation((("scope", "joint"), m), tuple((("scope", s), m) for s in insts)))
    by_pheno: dict[str, list[dict[str, Any]]] = {}
    for row in report.get("phenotypes") or []:
        by_pheno.setdefault(row["phenotype"], []).append(row)
        g = ("pheno", row["phenotype"], row["value"])
        for m in STRATUM_METRICS:
            values[(g, m)] = row.get(m)
        rels.append(Relation((g, "ac"), ((g, "carriers"), (g, "nhomalt"))))
    if "joint" in scopes:
        for name, rows in by_pheno.items():
            rem = ("pheno", name, REM)
            for m in FREQ_METRICS:
                joint = values.get((("scope", "joint"), m))
                if joint is None:
                    continue
                values[(rem, m)] = max(int(joint) - sum(int(r.get(m) or 0) for r in rows), 0)
                hidden.add((rem, m))
                rels.append(Relation((("scope", "joint"), m),
                                     (*((("pheno", name, r["value"]), m) for r in rows), (rem, m))))
    return values, rels, hidden


def protect_report(report: dict[str, Any], *, min_count: int, principal: Principal) -> dict[str, Any]:
    """The variant report with withheld counts as null (a member's own institution is shown exactly)."""
    values, rels, hidden = report_cells(report)
    known = set()
    if principal.tier == "member" and principal.institution:
        known = {(("scope", principal.institution), m) for m in FREQ_METRICS}
    p = protect(values, rels, min_count=min_count, known=known, hidden=hidden)
    out = dict(report)
    out["frequencies"] = [_row(f, ("scope", f["scope"]), FREQ_METRICS, p) for f in report.get("frequencies") or []]
    out["phenotypes"] = [_row(r, ("pheno", r["phenotype"], r["value"]), STRATUM_METRICS, p)
                         for r in report.get("phenotypes") or []]
    out["disclosure"] = disclosure_note(p, principal)
    return out


def _row(row: dict[str, Any], group: Any, metrics: tuple[str, ...], p: Protection) -> dict[str, Any]:
    new = dict(row)
    gone = [m for m in metrics if (group, m) in p.suppressed]
    for m in gone:
        new[m] = None
    if "af" in new and not af_shown(p, group):
        new["af"] = None
        if "af" not in gone:
            gone.append("af")
    new["suppressed"] = gone
    return new


def cell_name(key: Any) -> str:
    """``north.ac``, ``joint.nhomalt``, ``sex=female.an``: what the audit log records of a withheld cell."""
    group, metric = key
    if isinstance(group, tuple):
        group = f"{group[1]}={group[2]}" if group[0] == "pheno" else str(group[-1])
    return f"{group}.{metric}"


def disclosure_note(p: Protection, principal: Principal) -> dict[str, Any]:
    return {"min_count": p.min_count, "tier": principal.tier, "withheld": len(p.suppressed),
            "cells": sorted(cell_name(k) for k in p.suppressed), "reason": REASON, "rule": REASON_TEXT}


def protect_rows(rows: list[dict[str, Any]], *, min_count: int, principal: Principal,
                 metrics: tuple[str, ...] = FREQ_METRICS) -> tuple[list[dict[str, Any]], int]:
    """Rows of one cohort each (region or gene answers): each row's counts protected on their own."""
    out = []
    withheld = 0
    for r in rows:
        vals = {("row", m): r.get(m) for m in metrics if isinstance(r.get(m), int)}
        # `samples`-like link: where_samples is a count of people matching the filter
        p = protect(vals, [], min_count=min_count)
        new = _row(r, "row", tuple(m for m in metrics if m in r), p)
        withheld += len(p.suppressed)
        out.append(new)
    return out, withheld
