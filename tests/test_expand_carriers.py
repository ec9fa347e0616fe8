"""`genotypes.expand` as the carriers query uses it: with the call values given (``calls=``, from the codes read
as Python values and cut to the carrier files by ``calls_of_rows``), and listed by institution and sample
(``by_sample``), it gives exactly the rows of the plain expansion, sorted as DuckDB's ORDER BY sorts them; random
rows of several files and institutions (files of different widths, withdrawn people, other-ploidy texts, null
FORMAT lists and null values). The pseudonym cache stays within its bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from genolake import genotypes as gtc

COLUMNS = ["institution", "sample_id", "gt", "alt_count", "ploidy", "phased", "gq", "dp", "ad_ref", "ad_alt",
           "file_id"]


def _case(seed: int) -> tuple[pa.Table, dict[str, pa.Array]]:
    rng = np.random.default_rng(seed)
    files = {f"f{i}": (["north", "south", "east"][int(rng.integers(0, 3))], int(rng.integers(3, 40)))
             for i in range(int(rng.integers(1, 5)))}
    names: dict[str, pa.Array] = {}
    for f, (_inst, n) in files.items():
        ids: list[str | None] = [f"{int(rng.integers(0, 1 << 30)):08x}" for _ in range(n)]
        for j in rng.choice(n, size=int(rng.integers(0, 3)), replace=False).tolist():
            ids[j] = None  # withdrawn
        names[f] = pa.array(ids, pa.string())
    out: dict[str, list[object]] = {c: [] for c in ("institution", "file_id", "gt", "gt_symbols", "other_gt",
                                                    "gq", "dp", "ad_ref", "ad_alt")}
    for f, (inst, n) in files.items():
        for _ in range(int(rng.integers(1, 3))):  # one or two rows of the file at the site
            codes = np.zeros(n, dtype=np.uint8)
            hit = rng.random(n) < rng.choice([0.05, 0.3, 0.9])
            codes[hit] = rng.integers(1, gtc.OTHER + 1, int(hit.sum()))
            texts = ["0/1/1" if rng.random() < 0.5 else "1" for _ in range(int((codes == gtc.OTHER).sum()))]
            gt, symbols, other = gtc.encode(codes.reshape(1, n), {0: texts} if texts else {})
            out["institution"].append(inst)
            out["file_id"].append(f)
            out["gt"].append(gt[0].as_py())
            out["gt_symbols"].append(symbols)
            out["other_gt"].append(other[0].as_py())
            stored = int(np.count_nonzero(codes))
            for name in gtc.FORMAT_FIELDS:
                if rng.random() < 0.2:
                    out[name].append(None)  # the file lacks the field
                else:
                    out[name].append([None if rng.random() < 0.1 else int(v) for v in rng.integers(0, 99, stored)])
    table = pa.table({"institution": pa.array(out["institution"], pa.string()),
                      "file_id": pa.array(out["file_id"], pa.string()),
                      "gt": pa.array(out["gt"], pa.binary()), "gt_symbols": pa.array(out["gt_symbols"], pa.string()),
                      "other_gt": pa.array(out["other_gt"], pa.list_(pa.string())),
                      **{n: pa.array(out[n], pa.list_(pa.int32())) for n in gtc.FORMAT_FIELDS}})
    return table, names


@pytest.mark.parametrize("seed", range(30))
def test_given_calls_and_by_sample_equal_the_plain_expansion_sorted(seed: int) -> None:
    rows, names = _case(seed)
    plain = gtc.expand(rows, names.__getitem__, COLUMNS, carriers_only=True)
    want = plain.take(pa.array(sorted(range(plain.num_rows), key=lambda i: (
        plain["institution"][i].as_py(), plain["sample_id"][i].as_py())), pa.int64()))
    calls = gtc.call_values_of(rows["gt"].to_pylist(), rows["gt_symbols"].to_pylist(), rows["other_gt"].to_pylist())
    got = gtc.expand(rows, names.__getitem__, COLUMNS, carriers_only=True, calls=calls, by_sample=True)
    assert got.schema == want.schema and got.equals(want)
    assert plain.num_rows == 0 or set(plain["sample_id"].to_pylist()) <= {
        s for a in names.values() for s in a.to_pylist() if s is not None}
    # the rows of some files only, their calls cut from the calls of every row
    rng = np.random.default_rng(seed)
    pick = np.flatnonzero(rng.random(rows.num_rows) < 0.6)
    sub = rows.take(pa.array(pick, pa.int64()))
    cut = gtc.calls_of_rows(calls, pick)
    direct = gtc.call_values(sub)
    for name in ("row", "col", "k", "ploidy", "called", "alt_count", "other_idx"):
        assert np.array_equal(getattr(cut, name), getattr(direct, name)), name
    assert cut.other_text == direct.other_text
    assert gtc.expand(sub, names.__getitem__, COLUMNS, calls=cut).equals(gtc.expand(sub, names.__getitem__, COLUMNS))


def test_pseudonym_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gtc, "_DICTIONARIES", type(gtc._DICTIONARIES)())
    monkeypatch.setattr(gtc, "_DICTIONARIES_BYTES", 100_000)
    kept = []
    for i in range(50):
        arr = pa.array([f"{i:04d}{j:028d}" for j in range(500)], pa.string())  # ~20 kB with offsets
        kept.append(arr)
        names = gtc._pseudonym_dictionary(lambda _f, a=arr: a, [f"f{i}"])
        assert names.dictionary.to_pylist() == arr.to_pylist()
        assert len(gtc._DICTIONARIES) <= gtc._DICTIONARIES_KEPT
        assert sum(gtc._names_bytes(n) for n in gtc._DICTIONARIES.values()) <= 100_000
    again = gtc._pseudonym_dictionary(lambda _f: kept[-1], ["f49"])  # the last one is still there
    assert again is next(reversed(gtc._DICTIONARIES.values()))
