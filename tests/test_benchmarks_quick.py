"""The benchmark harness: report logic on hand-built results, and a smoke run on a minuscule cohort.

No timing is asserted here (timings belong to `python -m benchmarks`, which checks ratios against peers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package: bare `pytest` needs the checkout root
    sys.path.insert(0, str(ROOT))

from benchmarks.suites import SUITES  # noqa: E402
from benchmarks.suites.common import Measure, Results, percentile  # noqa: E402
from benchmarks.suites.report import THRESHOLDS, evaluate, markdown, target_rows  # noqa: E402


def _results() -> Results:
    r = Results()
    r.add(Measure("queries.point", "genolake", "lake.variant", "ms", 2.0))
    r.add(Measure("queries.point_pysam", "pysam", "pysam fetch", "ms", 4.0))
    r.add(Measure("ingest.genolake_w0", "genolake", "ingest", "genotypes/s", 3e6))
    r.add(Measure("ingest.cyvcf2_gt", "cyvcf2", "cyvcf2", "genotypes/s", 1e7))
    r.add(Measure("storage.lake", "genolake", "lake", "bytes", 50e6))
    r.add(Measure("storage.vcf_gz", "bgzip", "vcf.gz", "bytes", 100e6))
    r.compare("queries.point_vs_pysam", "queries.point", "queries.point_pysam", "time", "point vs pysam")
    r.compare("ingest.w0_vs_cyvcf2", "ingest.genolake_w0", "ingest.cyvcf2_gt", "rate", "ingest vs cyvcf2")
    r.compare("storage.lake_vs_vcf_gz", "storage.lake", "storage.vcf_gz", "size", "size")
    r.compare("queries.region_vs_pysam", "queries.region", "queries.region_pysam", "time", "not measured")
    return r


def test_ratios_thresholds_and_targets(tmp_path: Path) -> None:
    thresholds = tmp_path / "t.toml"
    thresholds.write_text('[quick]\n"queries.point_vs_pysam" = 1.5\n"ingest.w0_vs_cyvcf2" = 0.5\n'
                          '"storage.lake_vs_vcf_gz" = 1.0\n"queries.region_vs_pysam" = 10\n"nothing.here" = 1\n')
    r = _results()
    failures = evaluate(r, "quick", thresholds)
    by_key = {c.key: c for c in r.comparisons}
    assert by_key["queries.point_vs_pysam"].ratio == pytest.approx(2.0)  # peer time / genolake time
    assert by_key["queries.point_vs_pysam"].ok is True
    assert by_key["ingest.w0_vs_cyvcf2"].ratio == pytest.approx(0.3)  # genolake rate / peer rate
    assert by_key["ingest.w0_vs_cyvcf2"].ok is False
    assert by_key["storage.lake_vs_vcf_gz"].ratio == pytest.approx(2.0)  # peer bytes / lake bytes
    assert by_key["queries.region_vs_pysam"].ratio is None  # a missing measure is not a failure
    assert len(failures) == 2
    assert any(f.startswith("ingest.w0_vs_cyvcf2") for f in failures)
    assert any(f.startswith("nothing.here") and "names no comparison" in f for f in failures)
    targets = {t["target"]: t for t in target_rows(r)}
    assert targets["lake.variant() median <= 5 ms"]["met"] is True
    assert targets["lake.variant() median <= 5 ms"]["peer"] == "pysam 4.00 ms"
    assert targets["carriers of one variant median <= 20 ms"]["peer"] == "-"  # neither measured
    assert targets["lake size <= 1.0x the .vcf.gz"]["shown"] == "lake = 0.50x the .vcf.gz (50.0 MB)"
    assert targets[">= 10x faster than Hail"]["met"] is None
    # issue 10: absolute targets show the peer's figure of the same run, ratio targets their own peer
    assert targets["lake.variant() median <= 2 ms"]["met"] is None  # its own pass (point_alone) not measured
    r.add(Measure("queries.point_alone", "genolake", "point alone", "ms", 1.5))
    targets = {t["target"]: t for t in target_rows(r)}
    assert targets["lake.variant() median <= 2 ms"]["met"] is True  # 1.5 ms alone
    assert targets["lake.variant() median <= 2 ms"]["peer"] == ("genolake interleaved with pysam 2.00 ms; "
                                                                 "pysam 4.00 ms")
    assert targets["lake.variant() never slower than pysam fetch + count"]["met"] is True
    assert targets["ingest in process >= 1.0x plain cyvcf2 iteration"]["shown"] == "0.30x (3.00 M genotypes/s)"
    assert targets["ingest in process >= 1.0x plain cyvcf2 iteration"]["peer"] == "cyvcf2 10.00 M genotypes/s"
    assert targets["lake <= 0.3x the .vcf.gz, GT:GQ:DP:AD cohort"]["met"] is False  # 0.5x
    assert targets["lake <= 0.5x the .vcf.gz, GT-only cohort"]["met"] is None  # not measured


def test_unknown_threshold_only_for_suites_that_ran(tmp_path: Path) -> None:
    thresholds = tmp_path / "t.toml"
    thresholds.write_text('[quick]\n"queries.point_vs_pysam" = 1.5\n"scaling_50000.point_vs_pysam" = 1\n'
                          '"ingest.w9_vs_cyvcf2" = 1\n')
    r = _results()
    r.seconds = {"queries": 1.0, "ingest": 1.0, "storage": 1.0}  # scaling was left out (--suites)
    failures = evaluate(r, "quick", thresholds)
    assert [f.split(":")[0] for f in failures if "names no comparison" in f] == ["ingest.w9_vs_cyvcf2"]


def test_storage_breakdown_reads_every_delta_table(tmp_path: Path) -> None:
    """Column bytes come from the footers of the files the current version references, whatever the layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    from benchmarks.suites.report import storage_lines
    from benchmarks.suites.storage import breakdown

    lake = tmp_path / "lake"
    rows = pa.table({"contig": ["chr1"] * 500 + ["chr2"] * 500, "pos": list(range(1000)),
                     "codes": ["0/1" * 50] * 1000})
    write_deltalake(str(lake / "genotypes"), rows, partition_by=["contig"])
    write_deltalake(str(lake / "nested" / "sites"), rows.select(["pos"]))
    write_deltalake(str(lake / "nested" / "sites"), rows.select(["pos"]).slice(0, 10), mode="overwrite")
    (lake / "genolake.json").write_text("{}")
    (lake / "_staging").mkdir()
    (lake / "_staging" / "junk.parquet").write_bytes(b"x" * 1000)
    d = breakdown(lake)
    assert set(d["tables"]) == {"genotypes", "nested/sites"}
    g = d["tables"]["genotypes"]
    files = sorted((lake / "genotypes").rglob("*.parquet"))
    assert g["files"] == len(files) == 2 and g["rows"] == 1000
    want: dict[str, int] = {}
    for f in files:
        md = pq.ParquetFile(f).metadata
        for i in range(md.num_row_groups):
            for j in range(md.num_columns):
                c = md.row_group(i).column(j)
                want[c.path_in_schema] = want.get(c.path_in_schema, 0) + c.total_compressed_size
    assert g["columns"] == want
    assert g["parquet_bytes"] == sum(f.stat().st_size for f in files)
    assert g["footer_bytes"] == g["parquet_bytes"] - sum(want.values()) > 0
    sites = d["tables"]["nested/sites"]
    assert sites["rows"] == 10 and sites["unreferenced_bytes"] > 0  # the overwritten file is still on disk
    assert d["delta_log_bytes"] == sum(t["delta_log_bytes"] for t in d["tables"].values()) > 0
    assert d["other_bytes"] == 2  # genolake.json; _staging is scratch
    d.update({"genotypes": 1000 * 50, "vcf_gz_bytes": 10_000})
    md_lines = storage_lines({"gt": d}, share=0.0)
    assert any(line.startswith("| `genotypes` (Parquet) |") for line in md_lines)
    assert any(line.startswith("| &nbsp;&nbsp;`codes` |") for line in md_lines)
    assert md_lines[-1].startswith("| the .vcf.gz files (peer) | 0.01 | 1.600 |")


def test_markdown_escapes_pipes(tmp_path: Path) -> None:
    from benchmarks.__main__ import make_config, parse_args
    from benchmarks.suites.report import now

    r = _results()
    r.add(Measure("aggregate.bcftools", "bcftools", "bcftools merge | +fill-tags", "s", 3.0))
    cfg = make_config(parse_args(["--quick"]), tmp_path)
    md = markdown(r, cfg, {"host": "h", "cpu": "c", "cores": 2, "memory_gb": 1}, {"date": "d", "seconds": 60.0,
                  "started": now()}, None)
    assert "bcftools merge \\| +fill-tags" in md
    assert "## Targets from the issues" in md


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)


def test_thresholds_file_parses_and_names_suites() -> None:
    with open(THRESHOLDS, "rb") as fh:
        data = tomllib.load(fh)
    assert set(data) <= {"quick", "full"}
    for tier in data.values():
        for key, value in tier.items():
            assert key.split(".", 1)[0].split("_", 1)[0] in SUITES, key  # scaling_<n>.x belongs to scaling
            assert float(value) > 0


@pytest.mark.slow
@pytest.mark.cluster
def test_harness_runs_on_a_minuscule_cohort(tmp_path: Path) -> None:
    pytest.importorskip("msprime")
    pytest.importorskip("benchmarks.simulate")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--samples", "20", "--institutions", "2", "--mb", "0.3",
         "--queries", "5", "--assoc-queries", "2", "--cli-runs", "2", "--repeats", "1", "--scaling", "10,100",
         "--no-hail", "--no-check", "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = list(out.glob("*-quick.json"))
    doc = json.loads(result.read_text())
    assert doc["errors"] == [], doc["errors"]
    keys = {m["key"] for m in doc["measures"]}
    assert {"ingest.cyvcf2_gt", "ingest.genolake_w0", "storage.lake", "queries.point_pysam", "cli.bcftools_view"} <= keys
    assert (out / result.name.replace(".json", ".md")).exists()
    assert (out / result.name.replace(".json", ".png")).exists()
    assert "| comparison |" in proc.stdout
