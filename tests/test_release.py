"""`genolake release`: the sites VCF read back with bcftools and checked against allele_frequencies, under the
same disclosure control as `genolake serve`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_fixtures import *  # noqa: F403
from serve_fixtures import build_lake, policy_text

K = 20


def need_bcftools() -> None:
    if shutil.which("bcftools") is None:
        pytest.skip("bcftools not on PATH")


def run_release(lake: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    pol = tmp / "policy.toml"
    pol.write_text(policy_text(tmp / "audit.jsonl", min_count=K))
    return subprocess.run([sys.executable, "-m", "genolake", "release", "--lake", str(lake), "--policy", str(pol),
                           "-o", str(tmp / "sites.vcf.gz"), *extra], capture_output=True, text=True)


@pytest.fixture(scope="module")
def released(serve_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_bcftools()
    tmp = tmp_path_factory.mktemp("release")
    r = run_release(serve_lake, tmp, "--parquet", str(tmp / "sites.parquet"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # nothing on stdout (HiGHS's banner included)
    return tmp


def test_bcftools_reads_it_and_every_field_is_declared(released: Path) -> None:
    vcf = released / "sites.vcf.gz"
    assert (released / "sites.vcf.gz.tbi").exists()
    header = subprocess.run(["bcftools", "view", "-h", str(vcf)], capture_output=True, text=True, check=True).stdout
    declared = {line.split("ID=")[1].split(",")[0] for line in header.splitlines() if line.startswith("##INFO")}
    assert {"AC_joint", "AN_joint", "AF_joint", "nhomalt_joint", "AC_north", "AN_south", "AC_sex_female",
            "faf95_joint", "grpmax_joint"} <= declared
    assert "##genolake_policy=" in header and "min_count=20" in header
    assert "##genolake_lake_version=" in header and "##genolake_counting_rule=" in header
    body = subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True)
    assert "undefined" not in body.stderr.lower()
    for line in body.stdout.splitlines():
        for kv in line.split("\t")[7].split(";"):
            assert kv.split("=")[0] in declared
    # a region query through the index
    sub = subprocess.run(["bcftools", "view", "-H", "-r", "20:1335865", str(vcf)], capture_output=True, text=True,
                         check=True).stdout
    assert "1335865" in sub


def test_values_match_allele_frequencies_and_small_counts_are_withheld(released: Path, serve_lake: Path) -> None:
    import genolake

    fields = ["AC_joint", "AN_joint", "AF_joint", "nhomalt_joint", "AC_north", "AN_north", "AC_south", "AC_east",
              "AC_sex_female", "AN_sex_female", "AC_sex_male"]
    fmt = "%CHROM\t%POS\t%REF\t%ALT\t" + "\t".join(f"%INFO/{f}" for f in fields) + "\n"
    out = subprocess.run(["bcftools", "query", "-f", fmt, str(released / "sites.vcf.gz")], capture_output=True,
                         text=True, check=True).stdout
    truth: dict[tuple[str, int, str, str, str, str], dict[str, int]] = {}
    lk = genolake.open(serve_lake)
    for r in lk.sql("SELECT contig, pos, ref, alt, scope, stratum, ac, an FROM allele_frequencies "
                    "WHERE stratum IN ('all', 'sex=female', 'sex=male')").to_pylist():
        truth[(r["contig"], r["pos"], r["ref"], r["alt"], r["scope"], r["stratum"])] = r
    where = {"joint": ("joint", "all"), "north": ("north", "all"), "south": ("south", "all"),
             "east": ("east", "all"), "sex_female": ("joint", "sex=female"), "sex_male": ("joint", "sex=male")}
    n = shown = hidden = 0
    for line in out.splitlines():
        c, p, ref, alt, *vals = line.split("\t")
        n += 1
        for f, v in zip(fields, vals, strict=True):
            metric, _, grp = f.partition("_")
            scope, stratum = where[grp]
            row = truth.get((c, int(p), ref, alt, scope, stratum))
            if metric == "nhomalt":
                continue
            if v == ".":
                hidden += 1
                continue
            shown += 1
            if metric == "AF":
                assert row is not None and float(v) == pytest.approx(row["ac"] / row["an"], rel=1e-5)
                continue
            true = row[metric.lower()] if row is not None else 0
            assert int(v) == true, (line, f)
            limit = 2 * K if metric == "AN" else K
            assert not 1 <= true < limit, (line, f)
    assert n == len({k[:4] for k in truth}) and shown > 0 and hidden > 0
    # a withheld institution is not the joint minus the others
    for line in out.splitlines():
        _c, _p, _r, _a, acj, _anj, _afj, _nh, acn, _ann, acs, ace, *_ = line.split("\t")
        insts = [acn, acs, ace]
        if acj != "." and insts.count(".") == 1:
            raise AssertionError(f"one withheld institution next to the joint: {line}")


def test_parquet_twin_has_the_same_values(released: Path) -> None:
    import pyarrow.parquet as pq

    t = pq.read_table(released / "sites.parquet")
    assert t.schema.metadata[b"genolake_policy"].startswith(b"min_count=20")
    fmt = "%CHROM\t%POS\t%REF\t%ALT\t%INFO/AC_joint\t%INFO/AN_north\t%INFO/AF_sex_female\n"
    out = subprocess.run(["bcftools", "query", "-f", fmt, str(released / "sites.vcf.gz")], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    rows = t.select(["contig", "pos", "ref", "alt", "AC_joint", "AN_north", "AF_sex_female"]).to_pylist()
    assert len(rows) == len(out)
    for r, line in zip(rows, out, strict=True):
        c, p, ref, alt, ac, an, af = line.split("\t")
        assert (r["contig"], r["pos"], r["ref"], r["alt"]) == (c, int(p), ref, alt)
        assert (str(r["AC_joint"]) if r["AC_joint"] is not None else ".") == ac
        assert (str(r["AN_north"]) if r["AN_north"] is not None else ".") == an
        assert (r["AF_sex_female"] is None) == (af == ".")


def test_release_needs_current_frequencies_and_leaves_nothing_behind(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "lake", aggregate=False)
    r = run_release(lake, tmp_path)
    assert r.returncode != 0
    assert "genolake aggregate" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not list(tmp_path.glob("sites*")) and not list(tmp_path.glob(".genolake-release-*"))


def test_release_refuses_a_bad_policy(serve_lake: Path, tmp_path: Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text("[disclosure]\nmin_count = 0\n")
    r = subprocess.run([sys.executable, "-m", "genolake", "release", "--lake", str(serve_lake), "--policy", str(pol),
                        "-o", str(tmp_path / "s.vcf.gz")], capture_output=True, text=True)
    assert r.returncode == 2 and "min_count must be an integer >= 1" in r.stderr
    assert not (tmp_path / "s.vcf.gz").exists()
