"""Statistical disclosure control for counts that leave the lake: one pure function for every output.

An answer (a Beacon response, a ``/v1`` JSON object, a row of the release sites VCF) is described as a set of
**cells** -- one count each, keyed ``(group, metric)`` (``("joint", "ac")``, ``("north", "nhomalt")``,
``("sex=female", "an")``) -- and the additive **relations** that hold between them and that a reader knows
(``total = part + part + ...``: the joint cohort is the sum of the institutions, a phenotype's values plus the
samples without a value make up the cohort, ``ac = carriers + nhomalt`` within a group).

:func:`protect` decides which cells must not be shown:

1. *primary*: a count from 1 to ``min_count - 1`` (allele numbers: 1 to ``2 * min_count - 1``, the alleles
   of fewer than ``min_count`` diploid people); ``an`` and ``samples`` of a group are withheld together;
2. *complementary*: cells whose value could be recovered from what is shown are withheld as well, until

   - no relation has exactly one unshown cell holding a small count (it would be the total minus the others),
   - no relation with a shown total leaves a derivable sum of unshown parts from 1 to the threshold
     (the count of a small group of people),
   - no unshown small count is fixed by the relations taken together (linear algebra over all of them:
     its coordinate vanishes on the null space of the unshown cells' constraint matrix).

   An unshown count of ``min_count`` or more may be derivable (a hidden remainder, a complement): it is not
   itself protected, only used to protect the small ones.

Cells the requester already knows (``known``: a member's own institution) are shown and treated as published.
Cells that are never shown (``hidden``: e.g. the samples without a value of a phenotype) take part in the
relations as unknowns and are protected like the others.

Zero counts are shown (All of Us permits 0). Frequencies are not cells: a frequency is withheld when any count
it is computed from is (:func:`af_shown`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[Any, str]  # (group, metric)

#: Metrics that count alleles rather than people: their threshold is doubled (diploid people).
ALLELE_NUMBER_METRICS = frozenset({"an"})
#: ``lo <= hi`` within every group, known to any reader.
BOUNDS = (("nhomalt", "carriers"), ("carriers", "samples"), ("ac", "an"), ("nhemi", "carriers"))
REASON = "disclosure-control"
REASON_TEXT = ("withheld by disclosure control: a count from 1 to min_count-1, or a count from which one "
               "could be recovered by subtraction")


@dataclass(frozen=True)
class Relation:
    """``total = sum(parts)``, known to every reader of the answer."""

    total: Key
    parts: tuple[Key, ...]

    @property
    def cells(self) -> tuple[Key, ...]:
        return (self.total, *self.parts)


@dataclass
class Protection:
    """The outcome of :func:`protect`: cells to withhold (``suppressed``) and why."""

    suppressed: set[Key] = field(default_factory=set)
    primary: set[Key] = field(default_factory=set)
    min_count: int = 0

    def shown(self, key: Key) -> bool:
        return key not in self.suppressed

    def value(self, key: Key, values: Mapping[Key, Any]) -> int | None:
        """The value to print: ``None`` if withheld."""
        return None if key in self.suppressed else values.get(key)


def threshold(metric: str, min_count: int) -> int:
    """Smallest count of ``metric`` that may be shown (besides 0)."""
    return 2 * min_count if metric in ALLELE_NUMBER_METRICS else min_count


def protect(
    values: Mapping[Key, Any],
    relations: Iterable[Relation],
    *,
    min_count: int,
    known: Iterable[Key] = (),
    hidden: Iterable[Key] = (),
    linked: Iterable[tuple[str, str]] = (("an", "samples"),),
    bounds: Iterable[tuple[str, str]] = BOUNDS,
) -> Protection:
    """Which cells of an answer to withhold so that no count from 1 to ``min_count - 1`` is shown or derivable.

    Parameters
    ----------
    values
        Every cell of the answer (shown or hidden) -> its exact count (``None``: not part of the answer).
    relations
        Additive relations between cells that the reader knows.
    min_count
        The policy's ``[disclosure] min_count``; 0 or 1 disables the control (nothing is withheld).
    known
        Cells the requester already knows exactly (never withheld; treated as published).
    hidden
        Cells that are never shown (unknowns of the relations, protected like the others).
    linked
        Metric pairs of one group that are withheld together (``an`` reveals ``samples``).
    bounds
        Metric pairs ``(lo, hi)`` with ``lo <= hi`` in every group (``nhomalt <= carriers <= samples``,
        ``ac <= an``): a reader can use them, so the final check (a linear programme per withheld small count,
        over the relations, these bounds and non-negativity) does too.

    Returns
    -------
    Protection
        ``suppressed``: shown-able cells to print as null (hidden cells are not listed).

    Examples
    --------
    >>> v = {("joint", "ac"): 25, ("north", "ac"): 22, ("south", "ac"): 3}
    >>> p = protect(v, [Relation(("joint", "ac"), (("north", "ac"), ("south", "ac")))], min_count=20)
    >>> sorted(p.suppressed)
    [('north', 'ac'), ('south', 'ac')]
    """
    rels = [r for r in relations if all(values.get(c) is not None for c in r.cells)]
    known_set = {k for k in known if values.get(k) is not None}
    hidden_set = {h for h in hidden if values.get(h) is not None} - known_set
    out = Protection(min_count=min_count)
    if min_count <= 1:
        return out

    def small(key: Key, v: int) -> bool:
        return 1 <= v < threshold(key[1], min_count)

    for key, v in values.items():
        if v is not None and key not in known_set and small(key, int(v)):
            out.primary.add(key)
    sup: set[Key] = set(out.primary)
    link_pairs = list(linked)
    by_cell: dict[Key, list[Relation]] = {}
    for r in rels:
        for c in r.cells:
            by_cell.setdefault(c, []).append(r)

    def unshown(c: Key) -> bool:
        return c in sup or c in hidden_set

    def val(c: Key) -> int:
        return int(values[c] or 0)

    def candidate(r: Relation) -> Key | None:
        """The shown cell of ``r`` to withhold as a complement: the smallest non-zero part, else the total,
        else a zero part."""
        parts = [p for p in r.parts if not unshown(p) and p not in known_set]
        nonzero = sorted((p for p in parts if val(p) > 0), key=lambda p: (val(p), str(p)))
        if nonzero:
            return nonzero[0]
        if not unshown(r.total) and r.total not in known_set:
            return r.total
        return parts[0] if parts else None

    def apply_links() -> bool:
        changed = False
        for c in list(sup):
            for a, b in link_pairs:
                other = (c[0], b) if c[1] == a else (c[0], a) if c[1] == b else None
                if other is not None and values.get(other) is not None and other not in sup \
                        and other not in known_set and other not in hidden_set:
                    sup.add(other)
                    changed = True
        return changed

    for _round in range(10_000):
        changed = apply_links()
        for r in rels:
            hid = [c for c in r.cells if unshown(c)]
            need = False
            if len(hid) == 1 and small(hid[0], val(hid[0])):
                need = True  # the one unshown cell = total - shown parts, and it is a small count
            elif not unshown(r.total):
                s = sum(val(c) for c in hid)
                if 1 <= s < threshold(r.total[1], min_count):
                    need = True  # the unshown parts add up to a small count
            if need:
                cand = candidate(r)
                if cand is not None:
                    sup.add(cand)
                    changed = True
                else:
                    log.warning("disclosure: relation %s cannot be protected (every other cell is known)", r)
        if changed:
            continue
        targets = [c for c in values if unshown(c) and small(c, val(c))]
        pinned = []
        around: dict[Key, list[Relation]] = {}
        for cells, comp_rels in _components(values, rels, list(bounds), targets, unshown):
            comp_targets = [t for t in targets if t in cells]
            got = _pinned(comp_rels, comp_targets, unshown)
            if not got:
                got = _lp_pinned(values, comp_rels, list(bounds), comp_targets, unshown, cells)
            pinned.extend(got)
            for t in got:
                around[t] = comp_rels
        if not pinned:
            break
        for c in pinned:
            for r in by_cell.get(c, []):
                cand = candidate(r)
                if cand is not None:
                    sup.add(cand)
                    changed = True
                    break
            else:  # in no relation with a shown cell left: withhold the cells bounding it
                before = len(sup)
                for lo, hi in bounds:
                    for other in (((c[0], hi),) if c[1] == lo else ((c[0], lo),) if c[1] == hi else ()):
                        if values.get(other) is not None and not unshown(other) and other not in known_set:
                            sup.add(other)
                            changed = True
                if len(sup) == before:  # else a shown cell of the relations that fix it
                    for r in around.get(c, []):
                        cand = candidate(r)
                        if cand is not None:
                            sup.add(cand)
                            changed = True
                            break
                if len(sup) == before:  # else a bound partner of any unshown cell of those relations
                    for r in around.get(c, []):
                        for u in r.cells:
                            for lo, hi in bounds:
                                partner = (u[0], hi) if u[1] == lo else (u[0], lo) if u[1] == hi else None
                                if partner is not None and values.get(partner) is not None \
                                        and not unshown(partner) and partner not in known_set:
                                    sup.add(partner)
                                    changed = True
        if not changed:
            log.warning("disclosure: %d cells are fixed by the relations and cannot be protected", len(pinned))
            break
    out.suppressed = sup - hidden_set
    return out


def _components(values: Mapping[Key, Any], rels: list[Relation], bounds: list[tuple[str, str]],
                targets: list[Key], unshown) -> list[tuple[set[Key], list[Relation]]]:  # type: ignore[no-untyped-def]
    """The unshown cells connected to a target (through relations and same-group bounds), with the relations
    touching them: each is checked on its own (far smaller systems than the whole answer)."""
    parent: dict[Key, Key] = {}

    def find(c: Key) -> Key:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    def union(a: Key, b: Key) -> None:
        parent[find(a)] = find(b)

    unknown = [c for c in values if values.get(c) is not None and unshown(c)]
    for r in rels:
        cells = [c for c in r.cells if unshown(c)]
        for c in cells[1:]:
            union(cells[0], c)
        for c in cells[:1]:
            find(c)
    for c in unknown:
        find(c)
        for lo, hi in bounds:
            other = (c[0], hi) if c[1] == lo else (c[0], lo) if c[1] == hi else None
            if other is not None and other in parent and unshown(other):
                union(c, other)
    roots = {find(t) for t in targets}
    out: list[tuple[set[Key], list[Relation]]] = []
    for root in roots:
        members = {c for c in unknown if find(c) == root}
        comp_rels = [r for r in rels if any(c in members for c in r.cells)]
        out.append((members, comp_rels))
    return out


def _pinned(rels: list[Relation], targets: list[Key], unshown) -> list[Key]:  # type: ignore[no-untyped-def]
    """Unshown non-zero cells fixed by the relations: their coordinate is 0 on every null-space vector of the
    relations restricted to the unshown cells (the shown cells are constants)."""
    if not targets:
        return []
    cols: dict[Key, int] = {}
    rows: list[dict[int, float]] = []
    for r in rels:
        row: dict[int, float] = {}
        for c, coef in ((r.total, 1.0), *((p, -1.0) for p in r.parts)):
            if unshown(c):
                j = cols.setdefault(c, len(cols))
                row[j] = row.get(j, 0.0) + coef
        if row:
            rows.append(row)
    free = [t for t in targets if t not in cols]  # in no relation: nothing can fix it
    if not rows:
        return []
    import numpy as np

    a = np.zeros((len(rows), len(cols)))
    for i, row in enumerate(rows):
        for j, coef in row.items():
            a[i, j] = coef
    _u, s, vt = np.linalg.svd(a, full_matrices=True)
    rank = int((s > 1e-9).sum())
    null = vt[rank:].T  # columns span the null space
    pinned = []
    for t in targets:
        if t in free:
            continue
        j = cols[t]
        if null.shape[1] == 0 or float(np.abs(null[j]).max()) < 1e-9:
            pinned.append(t)
    return pinned


def _lp_pinned(values: Mapping[Key, Any], rels: list[Relation], bounds: list[tuple[str, str]],
               targets: list[Key], unshown, cells: set[Key]) -> list[Key]:  # type: ignore[no-untyped-def]
    """Small unshown counts a reader can pin down by linear programming: the relations, ``lo <= hi`` bounds
    within each group and non-negativity, minimising and maximising each target."""
    import numpy as np

    unknown = [c for c in values if c in cells]
    idx = {c: j for j, c in enumerate(unknown)}
    n = len(unknown)

    def row_of(terms: list[tuple[Key, float]]) -> tuple[np.ndarray, float]:
        row = np.zeros(n)
        const = 0.0
        for c, coef in terms:
            if c in idx:
                row[idx[c]] += coef
            else:
                const += coef * float(values[c] or 0)
        return row, const

    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    for r in rels:
        row, const = row_of([(r.total, 1.0), *((p, -1.0) for p in r.parts)])
        if row.any():
            a_eq.append(row)
            b_eq.append(-const)
    groups = {c[0] for c in unknown}
    for g in groups:
        for lo, hi in bounds:
            if values.get((g, lo)) is None or values.get((g, hi)) is None:
                continue
            row, const = row_of([((g, lo), 1.0), ((g, hi), -1.0)])
            if row.any():
                a_ub.append(row)
                b_ub.append(-const)
    kw: dict[str, object] = {"bounds": [(0, None)] * n, "method": "highs"}
    if a_eq:
        kw.update(A_eq=np.array(a_eq), b_eq=np.array(b_eq))
    if a_ub:
        kw.update(A_ub=np.array(a_ub), b_ub=np.array(b_ub))
    # a cheap proof first: moving along a null-space direction keeps every relation; if x0 (the true counts) can
    # move so that the target changes by 1 or more without breaking non-negativity or a bound, it is not pinned
    x0 = np.array([float(values[c] or 0) for c in unknown])
    if a_eq:
        _u, sv, vt = np.linalg.svd(np.array(a_eq), full_matrices=True)
        null = vt[int((sv > 1e-9).sum()):].T
    else:
        null = np.eye(n)
    a_ub_m = np.array(a_ub) if a_ub else np.zeros((0, n))
    slack = (np.array(b_ub) - a_ub_m @ x0) if a_ub else np.zeros(0)

    def can_move(j: int) -> bool:
        for k in range(null.shape[1]):
            v = null[:, k]
            if abs(v[j]) < 1e-9:
                continue
            v = v / v[j]
            for sign in (1.0, -1.0):
                d = sign * v
                step = np.inf
                neg = d < -1e-12
                if neg.any():
                    step = min(step, float((x0[neg] / -d[neg]).min()))
                if len(slack):
                    rate = a_ub_m @ d
                    up = rate > 1e-12
                    if up.any():
                        step = min(step, float((slack[up] / rate[up]).min()))
                if step >= 1 - 1e-9:
                    return True
        return False

    solve = _highs_solver(n, a_eq, b_eq, a_ub, b_ub) or _scipy_solver(n, kw)
    pinned = []
    for t in targets:
        if can_move(idx[t]):
            continue
        hi_val = solve(idx[t], maximise=True)
        if hi_val is None or hi_val >= x0[idx[t]] + 1 - 1e-6:
            continue  # unbounded above or one more: not pinned
        lo_val = solve(idx[t], maximise=False)
        if lo_val is None:
            continue
        if math.floor(hi_val + 1e-6) <= math.ceil(lo_val - 1e-6):  # one integer left: counts are integers
            pinned.append(t)
    return pinned


def _scipy_solver(n: int, kw: dict[str, object]):  # type: ignore[no-untyped-def]
    import numpy as np
    from scipy.optimize import linprog

    def solve(j: int, *, maximise: bool) -> float | None:
        obj = np.zeros(n)
        obj[j] = -1.0 if maximise else 1.0
        res = linprog(obj, **kw)  # type: ignore[call-overload]
        if res.status != 0:
            return None  # unbounded (or not solved: then nothing is claimed)
        return float(-res.fun if maximise else res.fun)

    return solve


def _highs_solver(n: int, a_eq: list[Any], b_eq: list[float], a_ub: list[Any], b_ub: list[float]):  # type: ignore[no-untyped-def]
    """The same programme on HiGHS directly (highspy): one model, only the objective changes per solve (the
    scipy wrapper costs several milliseconds per call)."""
    try:
        import highspy
    except ImportError:
        return None
    import numpy as np

    h = _quiet_highs(highspy)
    inf = highspy.kHighsInf
    h.addVars(n, np.zeros(n), np.full(n, inf))
    rows = [(r, b, b) for r, b in zip(a_eq, b_eq, strict=True)] + [(r, -inf, b) for r, b in zip(a_ub, b_ub, strict=True)]
    for r, lo, hi in rows:
        nz = np.nonzero(r)[0]
        h.addRow(lo, hi, len(nz), nz.astype(np.int32), r[nz].astype(float))
    cols = np.arange(n, dtype=np.int32)

    def solve(j: int, *, maximise: bool) -> float | None:
        cost = np.zeros(n)
        cost[j] = 1.0
        h.changeColsCost(n, cols, cost)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return float(h.getInfo().objective_function_value)

    return solve


_BANNER_SHOWN = False


def _quiet_highs(highspy: Any) -> Any:
    """A HiGHS model with its output off. The first one of a process prints a banner on stdout (fd 1) from C++
    before any option can be set: that one is made with fd 1 pointed at /dev/null (stdout may be a VCF, a JSON
    answer or a server log)."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        h = highspy.Highs()
    else:
        import os
        import sys

        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _BANNER_SHOWN = True
    h.setOptionValue("output_flag", False)
    return h


def af_shown(p: Protection, group: Hashable) -> bool:
    """A frequency of ``group`` may be shown only if its AC and AN are."""
    return p.shown((group, "ac")) and p.shown((group, "an"))
