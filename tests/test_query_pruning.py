"""A pruned query (region, --where) equals the same answer computed from a full scan (hypothesis).

The full scan reads every row of `calls`, `samples`, `files`, `ploidy`, `callable` and the wide `phenotypes`
into Python and applies the counting rule and the --where condition there (Condition.evaluate), so it shares
no SQL with the pruned path.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures

from genolake.query.where import parse_where

LO, HI = 10_000_000, 18_000_000


@pytest.fixture(scope="module")
def full(opened: Any) -> dict[str, Any]:
    """Every table the counting rule needs, read whole."""
    q = opened.sql
    return {
        "sites": q("SELECT contig, pos, ref, alt, file_id, id, filters FROM variant_files ORDER BY pos, ref, alt").to_pylist(),
        "calls": q("SELECT contig, pos, ref, alt, file_id, sample_id, ploidy, called, alt_count FROM calls").to_pylist(),
        "samples": q("SELECT institution, sample_id, file_id FROM samples").to_pylist(),
        "files": {r["file_id"]: r for r in q("SELECT file_id, institution, absent_mode FROM files").to_pylist()},
        "ploidy": q("SELECT file_id, sample_id, contig, ploidy FROM ploidy").to_pylist(),
        "callable": q('SELECT file_id, contig, start, "end" FROM callable').to_pylist(),
        "pheno": {(r["institution"], r["sample_id"]): r for r in q("SELECT * FROM phenotypes").to_pylist()},
    }


def scan_counts(full: dict[str, Any], start: int, end: int, members: set[tuple[str, str]] | None,
                institution: str | None = None) -> dict[tuple[Any, ...], dict[str, int]]:
    """Per site in [start, end]: ac, an, carriers of ``members`` (None: every sample), by the counting rule."""
    files = full["files"]
    keys: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for s in full["sites"]:
        if start <= s["pos"] <= end and (institution is None or files[s["file_id"]]["institution"] == institution):
            keys[(s["contig"], s["pos"], s["ref"], s["alt"])].add(s["file_id"])
    def member(inst: str, sid: str) -> bool:
        return (members is None or (inst, sid) in members) and (institution is None or inst == institution)
    per_file = defaultdict(list)
    for r in full["samples"]:
        if member(r["institution"], r["sample_id"]):
            per_file[r["file_id"]].append(r["sample_id"])
    ploidy = {(r["file_id"], r["sample_id"], r["contig"]): r["ploidy"] for r in full["ploidy"]}
    calls = defaultdict(dict)
    for c in full["calls"]:
        inst = files[c["file_id"]]["institution"]
        if member(inst, c["sample_id"]):
            calls[(c["contig"], c["pos"], c["ref"], c["alt"])][(c["file_id"], c["sample_id"])] = c
    out = {}
    for key, present in keys.items():
        ac = an = carriers = 0
        for fid, info in files.items():
            if fid in present:
                for sid in per_file[fid]:
                    c = calls[key].get((fid, sid))
                    an += c["called"] if c else 2
                    ac += c["alt_count"] if c else 0
                    carriers += bool(c and c["alt_count"] > 0)
            elif info["absent_mode"] == "ref" or (info["absent_mode"] == "callable" and any(
                    cb["file_id"] == fid and cb["contig"] == key[0] and cb["start"] <= key[1] <= cb["end"]
                    for cb in full["callable"])):
                for sid in per_file[fid]:
                    an += ploidy.get((fid, sid, key[0]), 0)
        out[key] = {"ac": ac, "an": an, "carriers": carriers}
    return out


CONDITIONS = [
    "case_status = 'case'",
    "sex = 'female' AND age > 50",
    "population IN ('AFR', 'EAS') OR age IS NULL",
    "NOT (case_status = 'control') AND hpo CONTAINS 'HP:0001250'",
    "institution = 'south' OR (sex = 'male' AND age BETWEEN 30 AND 60)",
    "case_status IS NULL",
    "population LIKE 'E%'",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=st.integers(LO, HI), length=st.integers(0, 3_000_000), cond=st.sampled_from([None, *CONDITIONS]),
       institution=st.sampled_from([None, None, "north", "south", "east"]),
       max_af=st.sampled_from([None, 0.01, 0.2]), min_ac=st.sampled_from([None, 0, 3]))
def test_region_query_equals_full_scan(opened: Any, full: dict[str, Any], a: int, length: int, cond: str | None,
                                       institution: str | None, max_af: float | None, min_ac: int | None) -> None:
    b = a + length
    got = opened.region(f"20:{a}-{b}", where=cond, institution=institution, max_af=max_af, min_ac=min_ac).to_pylist()
    joint = scan_counts(full, a, b, None, institution)
    members = None
    sub: dict[tuple[Any, ...], dict[str, int]] = {}
    if cond is not None:
        c = parse_where(cond, {"case_status": "categorical", "sex": "categorical", "age": "numeric", "hpo": "list",
                               "population": "categorical", "institution": "categorical"})
        members = set()
        for r in full["samples"]:
            row = dict(full["pheno"].get((r["institution"], r["sample_id"]), {}))
            row["institution"] = r["institution"]
            if c.evaluate(row):
                members.add((r["institution"], r["sample_id"]))
        sub = scan_counts(full, a, b, members, institution)
    want = []
    for key in sorted(joint, key=lambda k: (k[1], k[2], k[3])):
        j = joint[key]
        if min_ac is not None and j["ac"] < min_ac:
            continue
        if max_af is not None and not (j["an"] > 0 and j["ac"] / j["an"] <= max_af):
            continue
        if cond is not None and sub[key]["carriers"] == 0:
            continue
        want.append((key, j["ac"], j["an"], sub[key]["ac"] if cond else None, sub[key]["an"] if cond else None))
    have = [((r["contig"], r["pos"], r["ref"], r["alt"]), r["ac"], r["an"], r.get("where_ac"), r.get("where_an"))
            for r in got]
    assert have == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(i=st.integers(0, 10_000), cond=st.sampled_from([None, *CONDITIONS]))
def test_carriers_equal_full_scan(opened: Any, full: dict[str, Any], i: int, cond: str | None) -> None:
    site = full["sites"][i % len(full["sites"])]
    vid = f"{site['contig']}:{site['pos']}:{site['ref']}:{site['alt']}"
    got = sorted((r["institution"], r["sample_id"]) for r in opened.carriers(vid, where=cond).to_pylist())
    c = parse_where(cond, {"case_status": "categorical", "sex": "categorical", "age": "numeric", "hpo": "list",
                           "population": "categorical", "institution": "categorical"}) if cond else None
    want = []
    for call in full["calls"]:
        if (call["pos"], call["ref"], call["alt"]) == (site["pos"], site["ref"], site["alt"]) and call["alt_count"] > 0:
            inst = full["files"][call["file_id"]]["institution"]
            row = dict(full["pheno"].get((inst, call["sample_id"]), {}))
            row["institution"] = inst
            if c is None or c.evaluate(row):
                want.append((inst, call["sample_id"]))
    assert got == sorted(want)


def test_region_bounds_are_inclusive(opened: Any, full: dict[str, Any]) -> None:
    pos = sorted({s["pos"] for s in full["sites"]})
    p = pos[len(pos) // 2]
    assert {r["pos"] for r in opened.region(f"chr20:{p}-{p}").to_pylist()} == {p}
    i = bisect_left(pos, p)
    assert opened.region(f"20:{pos[i - 1] + 1}-{p - 1}").num_rows == 0 if pos[i - 1] + 1 <= p - 1 else True
    j = bisect_right(pos, p)
    assert opened.region(f"20:{p}-{pos[j]}").num_rows >= 2
