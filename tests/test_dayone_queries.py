"""What users hit on day one (issue 13), through the CLI as a separate process: no silent empty answers,
bcftools habits (regions, region files, variant ID forms, several IDs), rectangular tsv/csv, readable tables,
integer JSON, and the `sites` / `stratum_frequencies` views."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake, sh

VID = "20-10019093-A-G"  # rs575534, listed by all three institutions


def proc(sample_lake: SampleLake, *args: str, stdin: str | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir), GENOLAKE_LAKE=str(sample_lake.path), **(env or {}))
    return subprocess.run([sys.executable, "-m", "genolake", *args], capture_output=True, text=True, env=e,
                          input=stdin, timeout=180)


def ok(sample_lake: SampleLake, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    res = proc(sample_lake, *args, stdin=stdin)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res


def tsv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


# ------------------------------------------------------------------ silent empty answers
@pytest.mark.parametrize("region", ["chr2O:1000000-1001000", "chr21:1-1000"])
def test_unknown_contig_is_an_error_naming_the_lakes_contigs(sample_lake: SampleLake, region: str) -> None:
    res = proc(sample_lake, "query", "region", region)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    line = res.stderr.strip()
    assert line.startswith("genolake: error: contig") and "is not in the lake; its contigs are: 20" in line, line


def test_unknown_contig_in_python_api(opened: Any) -> None:
    from genolake.errors import UserInputError

    with pytest.raises(UserInputError, match="its contigs are: 20"):
        opened.region("chr21:1-1000")
    with pytest.raises(UserInputError, match="not in the lake"):
        opened.assoc("case_status", region="22:1-1000")


def test_carriers_of_a_variant_not_in_the_lake_say_so(sample_lake: SampleLake) -> None:
    res = ok(sample_lake, "query", "carriers", "20-10019093-A-C")  # another allele at a listed position
    assert "20-10019093-A-C is not in the lake" in res.stderr and "at that position the lake has 20-10019093-A-G" in res.stderr
    js = json.loads(ok(sample_lake, "query", "carriers", "20-10019093-A-C", "-f", "json").stdout)
    assert js == {"variant": "20-10019093-A-C", "observed": False, "at_position": ["20-10019093-A-G"], "carriers": []}
    # the same allele written non-minimally
    res = ok(sample_lake, "query", "carriers", "20-10019093-AT-GT")
    assert "in its minimal form it is 20-10019093-A-G, which is in the lake" in res.stderr
    # and a position with nothing at all
    res = ok(sample_lake, "query", "carriers", "20-1003003-C-T", "-f", "json")
    assert json.loads(res.stdout)["observed"] is False and "is not in the lake" in res.stderr
    # a contig the lake does not have: said so, with the lake's contigs
    res = ok(sample_lake, "query", "variant", "chr21-1003003-C-T")
    assert "the lake has no contig '21', its contigs are: 20" in res.stderr


def test_where_value_no_sample_has_is_warned_with_the_values(sample_lake: SampleLake) -> None:
    res = ok(sample_lake, "query", "carriers", VID, "--where", "population = 'Afr'", "-f", "json")
    assert json.loads(res.stdout) == []
    assert "no sample has population = 'Afr'" in res.stderr and "'AFR', 'EAS', 'EUR'" in res.stderr
    res = ok(sample_lake, "query", "region", "20:10000000-10100000", "--where", "institution IN ('nort', 'sout')")
    assert "the values of institution are: 'east', 'north', 'south'" in res.stderr
    res = ok(sample_lake, "query", "carriers", VID, "--where", "hpo CONTAINS 'HP:0001205'", "-f", "json")
    assert "no sample has hpo CONTAINS 'HP:0001205'" in res.stderr and "'HP:0001250'" in res.stderr
    res = ok(sample_lake, "query", "carriers", VID, "--where", "population = 'AFR'", "-f", "json")
    assert json.loads(res.stdout) and "no sample has" not in res.stderr


# ------------------------------------------------------------------ bcftools habits
def _positions(res: subprocess.CompletedProcess[str]) -> list[int]:
    return [int(r["pos"]) for r in tsv_rows(res.stdout)]


def _bcftools_positions(sample_lake: SampleLake, *args: str | Path) -> list[int]:
    out = sh("bcftools", "query", "-f", "%POS\n", *args, sample_lake.oracle)  # type: ignore[arg-type]
    return sorted({int(x) for x in out.split()})


def test_region_lists_and_files_match_bcftools(sample_lake: SampleLake, tmp_path: Path) -> None:
    spec = "20:10000000-10050000,20:12000000-12050000"
    got = _positions(ok(sample_lake, "query", "region", "-r", spec, "-f", "tsv"))
    assert got and got == _bcftools_positions(sample_lake, "-r", spec)
    # commas grouping thousands stay inside one region
    assert _positions(ok(sample_lake, "query", "region", "20:10,000,000-10,050,000", "-f", "tsv")) == \
        _bcftools_positions(sample_lake, "-r", "20:10000000-10050000")
    # BED is 0-based, half-open; CHROM BEG END is 1-based, inclusive: a site at the BED start is outside
    first = got[0]
    bed = tmp_path / "r.bed"
    bed.write_text(f"20\t{first}\t{first + 50000}\n20\t12000000\t12050000\n")
    tsv = tmp_path / "r.tsv"
    tsv.write_text(f"# comment\n20\t{first}\t{first + 50000}\n20\t12000001\t12050000\n")
    from_bed = _positions(ok(sample_lake, "query", "region", "-R", str(bed), "-f", "tsv"))
    from_tsv = _positions(ok(sample_lake, "query", "region", "-R", str(tsv), "-f", "tsv"))
    assert from_bed == _bcftools_positions(sample_lake, "-R", bed) and first not in from_bed
    assert from_tsv == _bcftools_positions(sample_lake, "-R", tsv) and first in from_tsv
    tracked = tmp_path / "t.bed"
    tracked.write_text("track name=x\nbrowser position chr20\n" + bed.read_text())
    assert _positions(ok(sample_lake, "query", "region", "-R", str(tracked), "-f", "tsv")) == from_bed
    bad = tmp_path / "bad.tsv"
    bad.write_text("20\tone\n")
    res = proc(sample_lake, "query", "region", "-R", str(bad))
    assert res.returncode == 1 and "bad.tsv: line 1:" in res.stderr and "Traceback" not in res.stderr


def test_open_ended_and_whole_contig_regions(sample_lake: SampleLake, opened: Any) -> None:
    # positions of normalised alleles may differ from the VCF records' (trimmed indels): the lake is the oracle
    tail = _positions(ok(sample_lake, "query", "region", "chr20:15000000-", "-f", "tsv"))
    assert tail and tail == opened.region("20:15000000-64444167").column("pos").to_pylist()
    assert set(_bcftools_positions(sample_lake, "-r", "20:15000000-")) <= set(tail)
    whole = _positions(ok(sample_lake, "query", "region", "chr20", "-f", "tsv"))
    assert whole == opened.region("20:1-64444167").column("pos").to_pylist() and len(whole) > len(tail)


@pytest.mark.parametrize("form", ["chr20:10019093A>G", "20-10019093-A-G", "chr20_10019093_A_G", "20:10019093:A:G"])
def test_variant_id_forms(sample_lake: SampleLake, form: str) -> None:
    out = json.loads(ok(sample_lake, "query", "variant", form, "-f", "json").stdout)
    assert out["variant"]["id"] == VID and out["variant"]["observed"]


def test_several_ids_in_one_process(sample_lake: SampleLake, tmp_path: Path) -> None:
    ids = [VID, "rs575534", "20-10019093-A-C"]
    many = json.loads(ok(sample_lake, "query", "variant", *ids, "-f", "json").stdout)
    assert [r["variant"]["id"] for r in many] == [VID, VID, "20-10019093-A-C"]
    assert many[2]["variant"]["observed"] is False
    stdin = tsv_rows(ok(sample_lake, "query", "variant", "-", "-f", "tsv", stdin="\n".join(ids[::2]) + "\n").stdout)
    listed = tmp_path / "ids.txt"
    listed.write_text(f"# my variants\n{VID}\n20-10019093-A-C\n")
    from_file = tsv_rows(ok(sample_lake, "query", "variant", "--ids", str(listed), "-f", "tsv").stdout)
    assert stdin == from_file and [r["variant"] for r in stdin] == [VID] * 4 + ["20-10019093-A-C"] * 4
    assert [r["scope"] for r in stdin[:4]] == ["joint", "east", "north", "south"]
    # carriers: a leading variant column when several IDs are given
    other = next(r for r in tsv_rows(ok(sample_lake, "query", "region", "20:10000000-10100000", "--min-ac", "3", "-f",
                                    "tsv").stdout) if r["pos"] != "10019093")
    vid2 = f"{other['contig']}-{other['pos']}-{other['ref']}-{other['alt']}"
    res = ok(sample_lake, "query", "carriers", VID, vid2, "-f", "tsv")
    rows = tsv_rows(res.stdout)
    assert next(iter(rows[0])) == "variant" and {r["variant"] for r in rows} == {VID, vid2}
    one = tsv_rows(ok(sample_lake, "query", "carriers", vid2, "-f", "tsv").stdout)
    assert [{k: v for k, v in r.items() if k != "variant"} for r in rows if r["variant"] == vid2] == one
    # a malformed ID anywhere: nothing printed, exit 2
    res = proc(sample_lake, "query", "variant", VID, "20-x-A-G", "-f", "tsv")
    assert res.returncode == 2 and res.stdout == "" and "malformed variant ID '20-x-A-G'" in res.stderr


def test_query_variant_with_several_ids_imports_no_pandas(sample_lake: SampleLake) -> None:
    for fmt in ("tsv", "table", "json"):
        code = (
            "import sys; sys.argv = ['genolake', 'query', 'variant', %r, '20-10019093-A-C', '-f', %r];\n"
            "import genolake.cli\n"
            "try:\n    genolake.cli.main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('pandas', 'pyarrow.compute', 'dask', 'scipy') if m in sys.modules], "
            "file=sys.stderr)\n" % (VID, fmt))
        env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir), GENOLAKE_LAKE=str(sample_lake.path))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert "HEAVY []" in res.stderr, (fmt, res.stderr)


# ------------------------------------------------------------------ output
@pytest.mark.parametrize("part, first", [("frequencies", "variant"), ("phenotypes", "variant"), ("variant", "id"),
                                         ("annotations", "variant")])
def test_variant_tsv_csv_is_one_rectangular_table(sample_lake: SampleLake, part: str, first: str) -> None:
    for fmt, delim in (("tsv", "\t"), ("csv", ",")):
        text = ok(sample_lake, "query", "variant", VID, "-f", fmt, "--part", part).stdout
        lines = list(csv.reader(io.StringIO(text), delimiter=delim))
        assert lines[0][0] == first and all(len(x) == len(lines[0]) for x in lines), text
        assert not any(x and x[0].startswith("#") for x in lines)


def test_info_tsv_is_one_table_and_json_integers(sample_lake: SampleLake) -> None:
    lines = ok(sample_lake, "info", "-f", "tsv").stdout.splitlines()
    assert lines[0].split("\t")[0] == "institution" and len({len(x.split("\t")) for x in lines}) == 1
    summary = tsv_rows(ok(sample_lake, "info", "-f", "tsv", "--part", "summary").stdout)
    assert len(summary) == 1 and int(summary[0]["calls"]) > 0
    info = json.loads(ok(sample_lake, "info", "-f", "json").stdout)

    def walk(v: Any, key: str = "") -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif key in ("calls", "samples", "variants", "files", "n_calls", "n_records", "bytes_on_disk", "size_bytes"):
            assert type(v) is int, (key, v)

    walk(info)
    assert type(info["calls"]) is int


def test_wide_table_stays_on_one_line_with_short_hashes(sample_lake: SampleLake) -> None:
    res = proc(sample_lake, "info", env={"COLUMNS": "100"})
    lines = res.stdout.splitlines()
    assert all(len(x) <= 100 for x in lines if x[:1] in "┏┃┡│└"), res.stdout
    files = [x for x in lines if x.startswith("│") and ("north" in x or "south" in x)]
    assert files and all(x.count("│") >= 3 for x in files)
    assert "columns not shown (too wide for 100 characters):" in res.stdout
    carriers = proc(sample_lake, "query", "carriers", VID, env={"COLUMNS": "200"}).stdout
    import re

    ids = re.findall(r"│ ([0-9a-f]{8,}) +│", carriers)
    assert ids and all(len(i) == 12 for i in ids)


def test_exit_codes(sample_lake: SampleLake, tmp_path: Path) -> None:
    assert proc(sample_lake, "query", "region", "20:1-10").returncode == 0
    assert proc(sample_lake, "query", "region", "--bogus").returncode == 2  # usage
    assert proc(sample_lake, "query", "region", "chr99").returncode == 2  # a name the lake does not have
    assert proc(sample_lake, "query", "region", "--lake", str(tmp_path), "20").returncode == 2  # not a lake
    bad = tmp_path / "bad.bed"
    bad.write_text("20\tx\ty\n")
    assert proc(sample_lake, "query", "region", "-R", str(bad)).returncode == 1  # a malformed file


# ------------------------------------------------------------------ views
def test_sites_view_is_the_region_query(opened: Any) -> None:
    sites = opened.sql("SELECT * FROM sites ORDER BY pos, ref, alt")
    region = opened.region("20")
    assert sites.num_rows == region.num_rows == opened.sql(
        "SELECT count(*) AS n FROM (SELECT DISTINCT contig, pos, ref, alt FROM variants)").column("n")[0].as_py()
    assert sites.to_pylist() == region.to_pylist()
    per_inst = opened.sql("SELECT count(*) AS n FROM variants").column("n")[0].as_py()
    assert per_inst > sites.num_rows  # `variants` is per institution and site


def test_stratum_frequencies_tidy(sample_lake: SampleLake, tmp_path: Path) -> None:
    import shutil

    import genolake
    from genolake.compute.aggregate import aggregate

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    aggregate(lake, by=["population"], adj=True, workers=0)
    with genolake.open(lake) as lk:
        tidy = lk.sql("SELECT * FROM stratum_frequencies WHERE phenotype = 'population' AND value = 'AFR' "
                      "AND NOT adj ORDER BY pos, ref, alt, scope")
        raw = lk.sql("SELECT * FROM allele_frequencies WHERE stratum = 'population=AFR' ORDER BY pos, ref, alt, scope")
        assert tidy.num_rows == raw.num_rows > 0
        assert tidy.column("ac").to_pylist() == raw.column("ac").to_pylist()
        assert set(tidy.column("stratum").to_pylist()) == {"population=AFR"}
        adj = lk.sql("SELECT DISTINCT stratum FROM stratum_frequencies WHERE adj AND phenotype IS NULL").to_pylist()
        assert adj == [{"stratum": "adj:all"}]
