"""The Hail engine (`genolake aggregate --engine hail`) equals the Dask engine row for row, and `genolake export hail`
writes a MatrixTable whose `call_stats` are the lake's joint counts.

Tier `hail`: needs the extra (`pip install 'genolake[hail]'`) and Java; skipped when `import hail` fails. Run with
``python -m pytest -m hail tests/test_hail_engine.py`` in an environment that has Hail (the JVM starts once per run,
about 20-30 s, then each aggregation takes 20-40 s on 2 cores).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_aggregate_engines import BY, _ingest, _make_files
from test_aggregate_support import key_dir, lake_rows, need_bcftools
from test_aggregate_truths import TRUTH, build_truth_lake

pytestmark = pytest.mark.hail
hl = pytest.importorskip("hail")


@pytest.fixture(scope="module")
def hail_ready(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from genolake.compute.hail_engine import init_hail

    return init_hail(str(tmp_path_factory.mktemp("hail_tmp")))


def _both(lake: Path, **kw: Any) -> tuple[Any, Any]:
    from genolake.compute.aggregate import aggregate, read_frequencies

    aggregate(lake, workers=0, **kw)
    dask = read_frequencies(lake)
    report = aggregate(lake, engine="hail", **kw)
    assert report.engine == "hail"
    return dask, read_frequencies(lake)


def test_hail_equals_dask_on_hand_built_lake(hail_ready: Any, tmp_path: Path) -> None:
    """Multi-allelic, missing and partly missing calls, hemizygous chrX, every absent-site mode, adj, strata."""
    with key_dir(tmp_path / "keys"):
        lake = build_truth_lake(tmp_path)
        dask, hail = _both(lake, by=["sex"], faf_groups=["sex"], adj=True)
        assert set(lake_rows(lake)) == set(TRUTH)
    assert hail.num_rows == dask.num_rows
    assert hail.equals(dask)


@pytest.fixture(scope="module")
def lake3(tmp_path_factory: pytest.TempPathFactory) -> Any:
    need_bcftools()
    tmp = tmp_path_factory.mktemp("hail_lake3")
    with key_dir(tmp / "keys"):
        files = _make_files(tmp)
        lake = tmp / "lake"
        for name in ("north", "south", "east"):
            _ingest(lake, files, name, tmp)
        yield {"lake": lake, "tmp": tmp}


def test_hail_equals_dask_on_1000_genomes(hail_ready: Any, lake3: Any) -> None:
    with key_dir(lake3["tmp"] / "keys"):
        dask, hail = _both(lake3["lake"], by=BY, faf_groups=["super_population"], adj=True)
    assert hail.num_rows == dask.num_rows > 10_000
    assert hail.equals(dask)


def test_export_hail(hail_ready: Any, lake3: Any) -> None:
    from genolake.compute.aggregate import aggregate, read_frequencies
    from genolake.compute.export import export_hail
    from genolake.errors import UserInputError

    lake, out = lake3["lake"], lake3["tmp"] / "lake.mt"
    with key_dir(lake3["tmp"] / "keys"):
        aggregate(lake, workers=0)
        info = export_hail(lake, out)
        with pytest.raises(UserInputError, match="exists; remove it or pass --overwrite"):
            export_hail(lake, out)
        joint = {(r["contig"], r["pos"], r["ref"], r["alt"]): r for r in read_frequencies(lake).to_pylist()
                 if r["scope"] == "joint" and r["stratum"] == "all"}
    mt = hl.read_matrix_table(str(out))
    assert (info["rows"], info["cols"]) == (len(joint), 100)
    assert list(mt.row_key) == ["locus", "alleles"] and list(mt.col_key) == ["s"]
    assert {"institution", "sex", "super_population"} <= set(mt.col)
    assert set(mt.entry) == {"GT", "GQ", "DP", "AD"}
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in mt.s.collect())
    mt = mt.annotate_rows(cs=hl.agg.call_stats(mt.GT, mt.alleles))
    for r in mt.rows().collect():
        key = (r.locus.contig, r.locus.position, r.alleles[0], r.alleles[1])
        assert (r.cs.AC[1], r.cs.AN) == (joint[key]["ac"], joint[key]["an"]), key
