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
    assert targets["lake size <= 1.0x the .vcf.gz"]["shown"] == "lake = 0.50x the .vcf.gz"
    assert targets[">= 10x faster than Hail"]["met"] is None


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
