"""Disclosure control (genolake/disclosure.py): hand-made truths, and a hypothesis attacker that tries to recover
every withheld count of one answer from what the answer shows, by linear programming over the relations a reader
knows (plus non-negativity and the bounds between metrics)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from genolake.disclosure import Relation, protect, threshold

K = 20


def rel(total, *parts):  # type: ignore[no-untyped-def]
    return Relation(total, tuple(parts))


def test_small_count_and_its_complement_are_withheld() -> None:
    v = {("joint", "ac"): 25, ("north", "ac"): 22, ("south", "ac"): 3, ("east", "ac"): 0}
    p = protect(v, [rel(("joint", "ac"), ("north", "ac"), ("south", "ac"), ("east", "ac"))], min_count=K)
    assert p.suppressed == {("north", "ac"), ("south", "ac")}  # joint - north would give south
    assert p.primary == {("south", "ac")}


def test_zero_is_shown_and_large_counts_are_shown() -> None:
    v = {("joint", "ac"): 60, ("north", "ac"): 30, ("south", "ac"): 30, ("east", "ac"): 0}
    p = protect(v, [rel(("joint", "ac"), ("north", "ac"), ("south", "ac"), ("east", "ac"))], min_count=K)
    assert not p.suppressed


def test_unshown_parts_may_not_add_up_to_a_small_count() -> None:
    # south 3 and east 4 both withheld still give south + east = 7 = joint - north: a third cell goes
    v = {("joint", "ac"): 57, ("north", "ac"): 50, ("south", "ac"): 3, ("east", "ac"): 4}
    p = protect(v, [rel(("joint", "ac"), ("north", "ac"), ("south", "ac"), ("east", "ac"))], min_count=K)
    assert ("north", "ac") in p.suppressed or ("joint", "ac") in p.suppressed


def test_allele_number_threshold_is_doubled_and_linked_to_samples() -> None:
    v = {("a", "an"): 30, ("a", "samples"): 15, ("b", "an"): 100, ("b", "samples"): 50}
    p = protect(v, [], min_count=K)
    assert threshold("an", K) == 40
    assert p.suppressed == {("a", "an"), ("a", "samples")}


def test_known_cells_are_shown_and_the_total_goes_instead() -> None:
    # a member of north knows north's 3; south (22) must not become joint - 3
    v = {("joint", "ac"): 25, ("north", "ac"): 3, ("south", "ac"): 22}
    p = protect(v, [rel(("joint", "ac"), ("north", "ac"), ("south", "ac"))], min_count=K, known=[("north", "ac")])
    assert ("north", "ac") not in p.suppressed
    assert ("joint", "ac") not in p.suppressed and ("south", "ac") not in p.suppressed  # 22 and 25: both >= K


def test_min_count_one_disables_control() -> None:
    assert not protect({("a", "ac"): 1}, [], min_count=1).suppressed


# ---------------------------------------------------------------- the attacker
METRICS = ("ac", "an", "carriers", "samples", "nhomalt")


def answer_cells(people: np.ndarray) -> tuple[dict, list[Relation], set]:  # type: ignore[type-arg]
    """people[i, v] = (n, het, hom) for institution i and phenotype value v (the last v: no value)."""
    n_inst, n_val, _ = people.shape
    values: dict = {}

    def put(group: str, cells: np.ndarray) -> None:  # type: ignore[type-arg]
        n, het, hom = (int(x) for x in cells.reshape(-1, 3).sum(axis=0))
        values[(group, "samples")] = n
        values[(group, "an")] = 2 * n
        values[(group, "carriers")] = het + hom
        values[(group, "nhomalt")] = hom
        values[(group, "ac")] = het + 2 * hom

    put("joint", people)
    insts = [f"i{i}" for i in range(n_inst)]
    vals = [f"v{v}" for v in range(n_val - 1)] + ["rem"]
    for i, g in enumerate(insts):
        put(g, people[i])
    for v, g in enumerate(vals):
        put(g, people[:, v])
    rels = []
    for m in METRICS:
        rels.append(rel(("joint", m), *((g, m) for g in insts)))
        rels.append(rel(("joint", m), *((g, m) for g in vals)))
    for g in ["joint", *insts, *vals]:
        rels.append(rel((g, "ac"), (g, "carriers"), (g, "nhomalt")))
    hidden = {("rem", m) for m in METRICS}
    return values, rels, hidden


def attack(values: dict, rels: list[Relation], unknown: list) -> dict:  # type: ignore[type-arg]
    """For each unknown cell, the [min, max] the reader can prove (LP over relations, x >= 0, metric bounds)."""
    idx = {c: j for j, c in enumerate(unknown)}
    n = len(unknown)
    a_eq, b_eq = [], []
    for r in rels:
        row = np.zeros(n)
        const = 0.0
        for c, coef in ((r.total, 1.0), *((p, -1.0) for p in r.parts)):
            if c in idx:
                row[idx[c]] += coef
            else:
                const += coef * values[c]
        if row.any():
            a_eq.append(row)
            b_eq.append(-const)
    a_ub, b_ub = [], []
    groups = {c[0] for c in values}
    for g in groups:  # nhomalt <= carriers <= samples, ac <= an
        for lo, hi in ((("nhomalt"), "carriers"), ("carriers", "samples"), ("ac", "an")):
            row = np.zeros(n)
            const = 0.0
            for c, coef in (((g, lo), 1.0), ((g, hi), -1.0)):
                if c in idx:
                    row[idx[c]] += coef
                else:
                    const += coef * values[c]
            if row.any():
                a_ub.append(row)
                b_ub.append(-const)
    out = {}
    kw = dict(A_eq=np.array(a_eq) if a_eq else None, b_eq=np.array(b_eq) if b_eq else None,
              A_ub=np.array(a_ub) if a_ub else None, b_ub=np.array(b_ub) if b_ub else None,
              bounds=[(0, None)] * n, method="highs")
    for c, j in idx.items():
        obj = np.zeros(n)
        obj[j] = 1
        lo = linprog(obj, **kw)
        hi = linprog(-obj, **kw)
        assert lo.status == 0, lo.message  # the true values are feasible
        out[c] = (lo.fun, -hi.fun if hi.status == 0 else float("inf"))
    return out


cohorts = st.integers(2, 3).flatmap(lambda ni: st.integers(2, 3).flatmap(
    lambda nv: st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)).map(
            lambda t: (t[0] + t[1] + t[2], t[1], t[2])),  # n >= het + hom
        min_size=ni * (nv + 1), max_size=ni * (nv + 1)).map(
        lambda cells: np.array(cells, dtype=np.int64).reshape(ni, nv + 1, 3))))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=cohorts, k=st.sampled_from([5, 11, 20]), member=st.booleans())
def test_attacker_recovers_no_withheld_count(people: np.ndarray, k: int, member: bool) -> None:  # type: ignore[type-arg]
    """``member``: the requester is a member of institution i0 and knows its counts (shown exactly)."""
    values, rels, hidden = answer_cells(people)
    known = {("i0", m) for m in METRICS} if member else set()
    p = protect(values, rels, min_count=k, hidden=hidden, known=known)
    assert not p.suppressed & known
    shown = {c: v for c, v in values.items() if c not in p.suppressed and c not in hidden}
    for c, v in shown.items():
        if c not in known:
            assert not 1 <= v < threshold(c[1], k), f"{c} = {v} shown"
    unknown = sorted(p.suppressed | hidden)
    if not unknown:
        return
    bounds = attack(values, rels, unknown)
    for c, (lo, hi) in bounds.items():
        if not 1 <= values[c] < threshold(c[1], k):
            continue  # zeros and counts of min_count or more may be derived: they are publishable
        # counts are integers: one integer left in [lo, hi] is a recovered value
        assert hi == float("inf") or math.floor(hi + 1e-6) > math.ceil(lo - 1e-6), f"{c} = {values[c]} recovered exactly ({lo}..{hi})"
