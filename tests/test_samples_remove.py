"""Withdrawal of consent (`genolake samples remove`, `genolake vacuum`) and recontact (`samples lookup`,
`query carriers --reveal`).

Oracle: a second lake (same key) ingested from the same VCFs with the withdrawn samples cut out by
`bcftools view -s ^...`: after removal every table and every query answer must equal it. The cohort is
benchmarks/simulate.py's (multi-allelic sites, missing calls, haploid chrX males, GQ/DP/AD, phenotypes), and
institution A ships one VCF per contig, so a person is removed from several files at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from genolake.compute.aggregate import aggregate, read_frequencies
from genolake.errors import GenolakeError, UserInputError
from genolake.ingest.pipeline import ingest
from genolake.phenotypes import load_phenotypes
from genolake.query.cold_report import reports as cold_reports
from genolake.query.lake import Lake
from genolake.samples.lookup import lookup
from genolake.samples.remove import read_audit, remove_samples, vacuum
from genolake.store import LakeStore

simulate = pytest.importorskip("benchmarks.simulate")
TABLES = ("genotypes", "variants", "samples", "ploidy", "files", "phenotypes")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genolake", *args], capture_output=True, text=True)


def _split_by_contig(src: Path, d: Path, tag: str) -> list[Path]:
    out = []
    contigs = subprocess.run(["tabix", "-l", str(src)], capture_output=True, text=True, check=True).stdout.split()
    assert len(contigs) == 2
    for contig in contigs:
        dst = d / f"{tag}.{contig}.vcf.gz"
        subprocess.run(["bcftools", "view", "-r", contig, "-Oz", "-o", str(dst), str(src)], check=True)
        subprocess.run(["tabix", "-f", "-p", "vcf", str(dst)], check=True)
        out.append(dst)
    return out


def _without(src: Path, dst: Path, ids: list[str]) -> Path:
    subprocess.run(["bcftools", "view", "-s", "^" + ",".join(ids), "-Oz", "-o", str(dst), str(src)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(dst)], check=True)
    return dst


def _pheno_without(src: Path, dst: Path, ids: list[str]) -> Path:
    lines = src.read_text().splitlines()
    dst.write_text("\n".join([lines[0]] + [x for x in lines[1:] if x.split("\t")[0] not in ids]) + "\n")
    return dst


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("withdraw")
    c = simulate.simulate_cohort(d / "sim", samples=30, institutions=2, mb=0.4, chrx_mb=0.1, seed=7)
    a, b = Path(c.vcfs[0]), Path(c.vcfs[1])
    names = subprocess.run(["bcftools", "query", "-l", str(a)], capture_output=True, text=True,
                           check=True).stdout.split()
    gone = [names[2], names[11], names[29]]  # one of them the last column
    (d / "withdrawn.txt").write_text("# withdrawn 2026-11\n" + "\n".join(gone) + "\nNOT-IN-LAKE\n")
    return {"dir": d, "a": a, "b": b, "pa": Path(c.phenotypes[0]), "pb": Path(c.phenotypes[1]), "gone": gone,
            "names": names}


@pytest.fixture()
def lakes(cohort: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(a lake with everyone, then the removal applied; the oracle lake ingested without the withdrawn)."""
    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(tmp_path / "shared.key"))  # both lakes: one key
    d = Path(str(cohort["dir"]))
    gone = list(cohort["gone"])  # type: ignore[call-overload]
    full, oracle = tmp_path / "full", tmp_path / "oracle"
    ingest(full, "A", _split_by_contig(Path(str(cohort["a"])), tmp_path, "a"), workers=0)
    ingest(full, "B", [Path(str(cohort["b"]))], workers=0)
    load_phenotypes(full, "A", Path(str(cohort["pa"])))
    load_phenotypes(full, "B", Path(str(cohort["pb"])))
    cut = _without(Path(str(cohort["a"])), tmp_path / "a_cut.vcf.gz", gone)
    ingest(oracle, "A", _split_by_contig(cut, tmp_path, "acut"), workers=0)
    ingest(oracle, "B", [Path(str(cohort["b"]))], workers=0)
    load_phenotypes(oracle, "A", _pheno_without(Path(str(cohort["pa"])), tmp_path / "pa.tsv", gone))
    load_phenotypes(oracle, "B", Path(str(cohort["pb"])))
    assert d.exists()
    return full, oracle


def _norm(lake: Path, table: str) -> pa.Table:
    t = LakeStore.open(lake).read_table(table)
    t = t.drop([c for c in ("file_id", "sha256", "size_bytes", "ingested_at") if c in t.column_names])
    keys = [c for c in t.column_names if not pa.types.is_list(t.schema.field(c).type)]
    return t.sort_by([(k, "ascending") for k in keys])


def _state(lake: Path) -> dict[str, object]:
    """Every table's Delta version and every file on disk (what 'the lake is unchanged' means)."""
    store = LakeStore.open(lake)
    versions = {n: store.delta(n).version() for n in sorted(os.listdir(lake)) if (lake / n / "_delta_log").is_dir()}
    files = sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file() and "_lock" not in p.name)
    return {"versions": versions, "files": files}


def test_removal_equals_a_lake_ingested_without_them(lakes: tuple[Path, Path], cohort: dict[str, object]) -> None:
    full, oracle = lakes
    aggregate(full, workers=0)
    key = Lake(full).region("chr20:1-99999999").slice(0, 5).to_pylist()
    probe = [f"{r['contig']}-{r['pos']}-{r['ref']}-{r['alt']}" for r in key]
    assert Lake(full).variant(probe[0])["variant"]["source"] == "allele_frequencies"
    rep = remove_samples(full, institution="A", path=Path(str(cohort["dir"])) / "withdrawn.txt")
    assert (rep.removed, rep.not_found, rep.files_rewritten, rep.files_dropped) == (3, 1, 2, 0)
    assert rep.phenotype_rows > 0
    for t in TABLES:
        got_t = _norm(full, t)
        assert got_t.equals(_norm(oracle, t)), t
        assert pc.sum(pc.equal(got_t["institution"], "A").cast(pa.int64())).as_py() > 0, t  # A is there
    assert len(LakeStore.open(full).read_table("files")) == 3  # A: one file per contig
    # queries: allele_frequencies is stale, so answers come from the lake and equal the oracle's
    lf, lo = Lake(full), Lake(oracle)
    for vid in probe:
        got, want = lf.variant(vid), lo.variant(vid)
        assert got["variant"]["source"] == "lake"
        assert got["frequencies"] == want["frequencies"], vid
        assert got["phenotypes"] == want["phenotypes"], vid
        assert lf.carriers(vid).sort_by("sample_id").equals(lo.carriers(vid).sort_by("sample_id"))
        assert cold_reports(full, [vid]) == [got]  # the cold CLI's reports (stale aggregate, withdrawn people)
    assert lf.region("chr20:1-99999999").equals(lo.region("chr20:1-99999999"))
    assert lf.region("chrX:1-999999999").equals(lo.region("chrX:1-999999999"))
    assert lf.sql("SELECT * FROM phenotypes ORDER BY ALL").equals(lo.sql("SELECT * FROM phenotypes ORDER BY ALL"))
    # a new aggregate equals the oracle's, table for table
    aggregate(full, workers=0, by=["population"])
    aggregate(oracle, workers=0, by=["population"])
    assert read_frequencies(full).equals(read_frequencies(oracle))
    assert Lake(full).variant(probe[0])["variant"]["source"] == "allele_frequencies"


def test_vacuum_deletes_their_old_files_and_audit_has_no_ids(lakes: tuple[Path, Path],
                                                              cohort: dict[str, object]) -> None:
    full, _ = lakes
    store = LakeStore.open(full)
    before = {t: set(store.active_files(t)) for t in TABLES}
    pids = store.pseudonymiser().many("A", list(cohort["gone"]))  # type: ignore[call-overload]
    remove_samples(full, institution="A", path=Path(str(cohort["dir"])) / "withdrawn.txt")
    after = {t: set(store.active_files(t)) for t in TABLES}
    old = set().union(*(before[t] - after[t] for t in TABLES))
    assert old and all(Path(p).exists() for p in old)  # Delta time travel keeps them until vacuum
    deleted = vacuum(full)
    assert sum(deleted.values()) == len(old)
    assert not any(Path(p).exists() for p in old)
    # no Parquet file left anywhere in the lake holds one of their pseudonyms
    for p in full.rglob("*.parquet"):
        if "_delta_log" in p.parts:
            continue
        names = pq.ParquetFile(p).schema_arrow.names
        if "sample_id" in names:
            sids = pq.read_table(p, columns=["sample_id"])["sample_id"]
            assert not pc.any(pc.is_in(sids, pa.array(pids))).as_py(), p
    assert vacuum(full) == {k: 0 for k in deleted}  # nothing left to delete the second time
    audit = (full / "audit.jsonl").read_text()
    assert not any(x in audit for x in [*cohort["gone"], *pids])  # type: ignore[misc]
    entries = read_audit(full)
    assert [e["action"] for e in entries] == ["remove", "vacuum", "vacuum"]
    assert entries[0]["institution"] == "A" and entries[0]["people"] == 3 and "time" in entries[0]


def test_pseudonyms_file_and_a_whole_file_leaving(lakes: tuple[Path, Path], cohort: dict[str, object],
                                                  tmp_path: Path) -> None:
    full, _ = lakes
    store = LakeStore.open(full)
    b = store.read_table("samples").filter(pc.equal(store.read_table("samples")["institution"], "B"))
    (tmp_path / "b.txt").write_text("\n".join(b["sample_id"].to_pylist()) + "\n")
    rep = remove_samples(full, institution="B", path=tmp_path / "b.txt", pseudonyms=True)
    assert (rep.removed, rep.files_dropped, rep.files_rewritten) == (30, 1, 0)
    lake = Lake(full)
    assert lake.sql("SELECT DISTINCT institution FROM files").column(0).to_pylist() == ["A"]
    assert lake.sql("SELECT count(*) FROM calls WHERE institution = 'B'").column(0).to_pylist() == [0]
    assert lake.sql("SELECT count(*) FROM phenotypes_long WHERE institution = 'B'").column(0).to_pylist() == [0]


@pytest.mark.parametrize("case", ["unknown institution", "none in lake", "not a list", "a vcf", "bad pseudonym",
                                  "empty"])
def test_bad_input_one_line_lake_unchanged(lakes: tuple[Path, Path], cohort: dict[str, object], tmp_path: Path,
                                           case: str) -> None:
    full, _ = lakes
    lst = tmp_path / "ids.txt"
    args = ["samples", "remove", "--lake", str(full), "--institution", "A", str(lst)]
    if case == "unknown institution":
        lst.write_text("\n".join(cohort["gone"]) + "\n")  # type: ignore[arg-type]
        args[5] = "Z"
        want = "has no data in the lake"
    elif case == "none in lake":
        lst.write_text("nobody\nnobody-else\n")
        want = "none of its 2 sample IDs is in the lake"
    elif case == "not a list":
        lst.write_text("sample\tsex\nX1\tmale\n")
        want = "line 1: has several fields"
    elif case == "a vcf":
        args[-1] = str(cohort["b"])
        want = "not a list of sample IDs"
    elif case == "bad pseudonym":
        lst.write_text("I0_S00001\n")
        args.append("--pseudonyms")
        want = "is not a pseudonym"
    else:
        lst.write_text("# nothing\n\n")
        want = "holds no sample ID"
    before = _state(full)
    out = _run(*args)
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and want in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert _state(full) == before


def test_lookup_prints_pseudonym_and_raw_id_and_writes_nothing(lakes: tuple[Path, Path],
                                                               cohort: dict[str, object]) -> None:
    full, _ = lakes
    before = _state(full)
    t = lookup(full, institution="A", path=Path(str(cohort["a"])))  # the sample columns of the VCF header
    store = LakeStore.open(full)
    names = list(cohort["names"])  # type: ignore[call-overload]
    assert t["sample"].to_pylist() == names
    assert t["pseudonym"].to_pylist() == store.pseudonymiser().many("A", names)
    assert all(t["in_lake"].to_pylist())
    out = _run("samples", "lookup", "--lake", str(full), "-i", "A", str(Path(str(cohort["dir"])) / "withdrawn.txt"),
               "--format", "tsv")
    assert out.returncode == 0
    rows = [x.split("\t") for x in out.stdout.splitlines()[1:]]
    assert [r[2] for r in rows] == [*cohort["gone"], "NOT-IN-LAKE"]  # type: ignore[misc]
    assert [r[3] for r in rows] == ["True", "True", "True", "False"]
    assert _state(full) == before
    with pytest.raises(UserInputError, match="none of its"):
        lookup(full, institution="B", path=Path(str(cohort["dir"])) / "withdrawn.txt")  # A's IDs: not B's people


def test_carriers_reveal_only_the_askers_own(lakes: tuple[Path, Path], cohort: dict[str, object]) -> None:
    full, _ = lakes
    lake = Lake(full)
    vid = lake.sql("SELECT contig || '-' || pos || '-' || ref || '-' || alt AS v FROM variants "
                   "GROUP BY contig, pos, ref, alt HAVING count(DISTINCT institution) = 2 AND min(ac) >= 2 "
                   "ORDER BY pos LIMIT 1").column(0)[0]
    out = _run("query", "carriers", str(vid), "--lake", str(full), "--reveal", str(cohort["a"]), "-i", "A",
               "--format", "tsv")
    assert out.returncode == 0, out.stderr
    head, *rows = [x.split("\t") for x in out.stdout.splitlines()]
    assert head[:3] == ["institution", "sample_id", "sample"]
    a_rows = [r for r in rows if r[0] == "A"]
    b_rows = [r for r in rows if r[0] == "B"]
    assert a_rows and b_rows
    assert all(r[2] in cohort["names"] for r in a_rows)  # type: ignore[operator]
    assert all(r[2] == "" for r in b_rows)
    # B's raw IDs given as A's: nothing of B is revealed (pseudonyms are keyed on the institution)
    out = _run("query", "carriers", str(vid), "--lake", str(full), "--reveal", str(cohort["b"]), "-i", "A",
               "--format", "tsv")
    assert all(r.split("\t")[2] == "" for r in out.stdout.splitlines()[1:])
    out = _run("query", "carriers", str(vid), "--lake", str(full), "--reveal", str(cohort["a"]))
    assert out.returncode == 2 and "--reveal needs --institution" in out.stderr


def test_errors_are_genolake_errors(lakes: tuple[Path, Path], tmp_path: Path) -> None:
    full, _ = lakes
    with pytest.raises(GenolakeError):
        remove_samples(full, institution="A", path=tmp_path / "missing.txt")


def test_vacuum_keeps_current_frequencies_current(lakes: tuple[Path, Path]) -> None:
    """vacuum writes to every table's Delta log; allele_frequencies that was current stays current."""
    full, _ = lakes
    aggregate(full, workers=0)
    vid = Lake(full).region("chr20:1-99999999").slice(0, 1).to_pylist()[0]
    key = f"{vid['contig']}-{vid['pos']}-{vid['ref']}-{vid['alt']}"
    assert Lake(full).variant(key)["variant"]["source"] == "allele_frequencies"
    out = _run("vacuum", "--lake", str(full))
    assert out.returncode == 0 and "vacuum: deleted" in out.stderr
    assert Lake(full).variant(key)["variant"]["source"] == "allele_frequencies"


@pytest.mark.parametrize("case", ["unknown institution", "not a list"])
def test_lookup_bad_input_one_line(lakes: tuple[Path, Path], tmp_path: Path, case: str) -> None:
    full, _ = lakes
    lst = tmp_path / "ids.txt"
    lst.write_text("a,b\n" if case == "not a list" else "I0_S00001\n")
    inst = "Z" if case == "unknown institution" else "A"
    out = _run("samples", "lookup", "--lake", str(full), "-i", inst, str(lst))
    assert out.returncode != 0 and out.stderr.count("\n") == 1
    assert ("has no data in the lake" if inst == "Z" else "several fields") in out.stderr
