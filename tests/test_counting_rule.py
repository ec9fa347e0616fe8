"""The lake's one counting rule (:func:`genolake.genotypes.call_counts`) is what every path sums: ingest's
``variants`` counts, the aggregate's per-code table and ``samples remove``'s recount. These tests pin the
tables each path derives from it, so a second definition cannot creep back in."""

from __future__ import annotations

import numpy as np

from genolake import counting
from genolake import genotypes as gtc
from genolake.ingest import convert


def test_rule_per_call() -> None:
    # ploidy, called, alt count -> ac, an, missing, nhomalt, nhemi
    cases = {
        (2, 2, 0): (0, 2, 0, 0, 0),  # 0/0
        (2, 2, 1): (1, 2, 0, 0, 0),  # 0/1
        (2, 2, 2): (2, 2, 0, 1, 0),  # 1/1
        (2, 1, 1): (1, 1, 1, 0, 0),  # ./1: its called allele counts, the person is not called
        (2, 0, 0): (0, 0, 1, 0, 0),  # ./.
        (1, 1, 1): (1, 1, 0, 0, 1),  # haploid 1
        (1, 1, 0): (0, 1, 0, 0, 0),  # haploid 0
        (1, 0, 0): (0, 0, 1, 0, 0),  # haploid .
        (0, 0, 0): (0, 0, 1, 0, 0),  # no allele at all: missing, never called
        (3, 3, 3): (3, 3, 0, 0, 0),  # triploid 1/1/1: alleles count, no hom-alt or hemi class
    }
    got = gtc.call_counts(*(np.array([k[i] for k in cases]) for i in range(3)))
    assert got.tolist() == [list(v) for v in cases.values()]
    assert tuple(gtc.call_counts([2], [2], [0])[0]) == gtc.HOM_REF_COUNTS


def test_aggregate_code_table_is_the_rule() -> None:
    k = np.arange(gtc.OTHER)
    rule = gtc.call_counts(gtc.PLOIDY[k], gtc.CALLED[k], gtc.ALT_COUNT[k]) - np.array(gtc.HOM_REF_COUNTS)
    assert np.array_equal(counting.CLASS_METRICS[:gtc.OTHER], rule)
    assert counting.CLASS_METRICS[counting.FAILED].tolist() == [0, -2, 1, 0, 0]  # a failed call: as ./.
    # other ploidies are counted per call from their text with the same rule; a call without alleles is missing
    assert counting.call_metrics(np.array([0]), np.array([0]), np.array([0])).tolist() == [[0, -2, 1, 0, 0]]


def test_ingest_tables_are_the_rule() -> None:
    code, per_record, _, ploidy = convert._call_tables()
    a0, a1, _ = (x.ravel() for x in np.meshgrid(np.arange(-2, 2), np.arange(-2, 2), np.arange(2), indexing="ij"))
    called = (a0 >= 0).astype(int) + (a1 >= 0)
    altc = (a0 == 1).astype(int) + (a1 == 1)
    rule = gtc.call_counts(ploidy, called, altc)
    # ingest's per-record columns: ac, an, nhomalt, nhemi, missing, other
    assert np.array_equal(per_record[:, :5], rule[:, [0, 1, 3, 4, 2]])
    # the ploidy-0 call (no allele) is missing in ingest, as in the aggregate
    assert per_record[(ploidy == 0)][:, 4].tolist() == [1, 1]
    assert (code[ploidy == 0] == gtc.OTHER).all()


def test_sql_form_is_the_rule() -> None:
    import duckdb

    grid = [(p, c, a) for p in range(4) for c in range(p + 1) for a in range(c + 1)]
    con = duckdb.connect()
    con.execute("CREATE TABLE c (ploidy TINYINT, called TINYINT, alt_count TINYINT)")
    con.executemany("INSERT INTO c VALUES (?, ?, ?)", grid)
    rule = gtc.call_counts_sql("c")
    got = con.execute(f"SELECT {', '.join(rule[f] for f in gtc.COUNT_FIELDS)} FROM c").fetchall()
    want = gtc.call_counts(*(np.array([g[i] for g in grid]) for i in range(3)))
    assert [list(r) for r in got] == want.tolist()


def test_carrier_rule_sql_and_numpy_agree() -> None:
    """The carrier rule (genotypes.carries) and its SQL form agree on every call; a carrier holds an alt copy."""
    import duckdb

    grid = [(p, c, a) for p in range(4) for c in range(p + 1) for a in range(c + 1)]
    con = duckdb.connect()
    con.execute("CREATE TABLE c (ploidy TINYINT, called TINYINT, alt_count TINYINT)")
    con.executemany("INSERT INTO c VALUES (?, ?, ?)", grid)
    got = [r[0] for r in con.execute(f"SELECT {gtc.carries_sql('c')} FROM c").fetchall()]
    altc = np.array([g[2] for g in grid])
    assert got == gtc.carries(altc).tolist()
    assert got == [a > 0 for _p, _c, a in grid]
    assert gtc.carries_sql("") == "alt_count > 0"
