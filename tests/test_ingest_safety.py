"""A lake hospitals can trust: crash safety, concurrent writers, idempotency, replacement, worker counts,
and no raw sample identifier anywhere in the lake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from ingest_helpers import lake_fingerprint, run_cli, sorted_rows

import genolake
from genolake.errors import LakeStateError
from genolake.ingest.pipeline import ingest
from genolake.ingest.reader import inspect_source
from genolake.ingest.verify import verify_files
from genolake.store import LakeStore

DATA = Path(__file__).resolve().parent / "data"
HAIL = DATA / "hail_sample_1kg_chr20_100s.vcf.gz"
CALLS_SQL = "SELECT institution, contig, pos, ref, alt, sample_id, gt, gq, dp, ad_ref, ad_alt FROM calls"
VARIANTS_SQL = "SELECT institution, contig, pos, ref, alt, ac, an, nhomalt, nhemi, n_called, n_missing FROM variant_files"


def _split(tmp: Path, names: list[str], out: str) -> Path:
    path = tmp / out
    subprocess.run(["bcftools", "view", "-s", ",".join(names), "-Oz", "-o", str(path), str(HAIL)], check=True,
                   capture_output=True)
    subprocess.run(["tabix", "-p", "vcf", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("halves")
    names = subprocess.run(["bcftools", "query", "-l", str(HAIL)], capture_output=True, text=True,
                           check=True).stdout.split()
    return _split(tmp, names[:50], "a.vcf.gz"), _split(tmp, names[50:], "b.vcf.gz")


def _big_vcf(path: Path, *, samples: int = 300, records: int = 20_000, seed: int = 7) -> Path:
    """A synthetic GRCh37 VCF big enough that its ingest takes a few seconds (for the kill test)."""
    rng = np.random.default_rng(seed)
    gts = np.array(["0/0", "0/1", "1/1", "./."], dtype=object)
    g = gts[rng.choice(4, size=(records, samples), p=[0.93, 0.05, 0.015, 0.005])]
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##reference=GRCh37\n##contig=<ID=20,length=63025520>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t")
        fh.write("\t".join(f"P{i}" for i in range(samples)) + "\n")
        for k in range(records):
            fh.write(f"20\t{1000 + 7 * k}\t.\tA\tG\t.\tPASS\t.\tGT\t" + "\t".join(g[k]) + "\n")
    return path


def test_same_file_twice_is_a_noop(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    r1 = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(HAIL))
    assert r1.returncode == 0, r1.stderr
    before = lake_fingerprint(lake)
    r2 = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(HAIL))
    assert r2.returncode == 0
    assert "already ingested" in r2.stderr
    assert lake_fingerprint(lake) == before


def test_same_file_for_another_institution_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "x", [HAIL], build="GRCh37", workers=0)
    with pytest.raises(LakeStateError, match="already in the lake as institution 'x'"):
        ingest(lake, "y", [HAIL], build="GRCh37", workers=0)


def test_samples_already_present_need_replace(tmp_path: Path, halves: tuple[Path, Path]) -> None:
    a, _ = halves
    lake = tmp_path / "lake"
    ingest(lake, "x", [a], workers=0, build="GRCh37")
    # the same samples again in a different file (one record dropped): refused without --replace
    other = tmp_path / "a2.vcf"
    text = subprocess.run(["bcftools", "view", str(a)], capture_output=True, text=True, check=True).stdout
    lines = text.splitlines()
    body = [i for i, line in enumerate(lines) if not line.startswith("#")]
    del lines[body[0]]
    other.write_text("\n".join(lines) + "\n")
    before = lake_fingerprint(lake)
    res = run_cli("ingest", "--lake", str(lake), "-i", "x", "--build", "GRCh37", "--workers", "0", str(other))
    assert res.returncode == 1 and "--replace" in res.stderr and "50 of its samples" in res.stderr
    assert lake_fingerprint(lake) == before
    ingest(lake, "x", [other], workers=0, build="GRCh37", replace=True)
    lk = genolake.open(lake)
    assert lk.sql("SELECT count(*) AS n FROM files").to_pylist() == [{"n": 1}]
    assert lk.sql("SELECT count(DISTINCT sample_id) AS n FROM samples").to_pylist() == [{"n": 50}]
    assert verify_files(lake, "x", [other]) == 345


@pytest.mark.cluster
def test_worker_counts_give_identical_lakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--workers 0 (in process), 1 and 2 (real multi-process Dask clusters, region tasks) agree row for row."""
    import genolake.ingest.plan as plan

    monkeypatch.setattr(plan, "MIN_CHUNK_BP", 100_000)  # cut the 600 kb sample file into several index regions
    north = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs" / "north.vcf.gz"
    files = [north, DATA / "va_hapmap_exome_chr22_22s.vcf.gz"]
    from genolake.pseudonym import create_key

    key = tmp_path / "shared.key"  # one key so that pseudonyms are comparable across the three lakes
    create_key(key)
    monkeypatch.setenv("GENOLAKE_KEY_FILE", str(key))
    results = []
    for w in (0, 1, 2):
        lake = tmp_path / f"lake{w}"
        ingest(lake, "x", files, build="GRCh37", workers=w)
        if w == 2:
            parts = list((lake / "genotypes").glob("institution=x/contig=20/*.parquet"))
            assert len(parts) > 2, "expected several region tasks"
        results.append((sorted_rows(lake, CALLS_SQL), sorted_rows(lake, VARIANTS_SQL),
                        sorted_rows(lake, "SELECT institution, sample_id, column_index FROM samples"),
                        sorted_rows(lake, "SELECT institution, sample_id, contig, ploidy FROM ploidy")))
    assert results[0] == results[1] == results[2]
    assert len(results[0][0]) > 1000


def test_crash_between_table_commits_rolls_forward(tmp_path: Path, halves: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = halves
    lake = tmp_path / "lake"
    fid_a = ingest(lake, "x", [a], workers=0, build="GRCh37").files[0].file_id
    before_rows = sorted_rows(lake, VARIANTS_SQL)
    before_calls = sorted_rows(lake, CALLS_SQL)
    real_apply = LakeStore._apply
    calls = {"n": 0}

    def crashing_apply(self: LakeStore, record: dict) -> None:  # type: ignore[type-arg]
        # commit only the first table, then "crash"
        order = record["order"]
        real_apply(self, {**record, "order": order[:1]})
        calls["n"] += 1
        raise KeyboardInterrupt("simulated crash after the first table commit")

    monkeypatch.setattr(LakeStore, "_apply", crashing_apply)
    with pytest.raises(KeyboardInterrupt):
        ingest(lake, "x", [b], workers=0, build="GRCh37")
    monkeypatch.setattr(LakeStore, "_apply", real_apply)
    assert calls["n"] == 1
    # the first table (calls) did commit the new file's Parquet files ...
    store = LakeStore.open(lake)
    fid_b = inspect_source(b).file_id
    assert any(fid_b in f for f in store.active_files("genotypes"))
    assert not any(fid_b in f for f in store.active_files("files"))
    # ... but readers see the lake as before: rows count only if their file is in `files` (committed last)
    assert sorted_rows(lake, VARIANTS_SQL) == before_rows
    assert sorted_rows(lake, CALLS_SQL) == before_calls
    assert store.committed_file_ids() == [fid_a]
    assert list((lake / "_txn").glob("*.json")), "the redo record must survive the crash"
    # the next writer rolls the commit forward; ingesting the file again is then a no-op
    with store.lock():
        pass
    assert not list((lake / "_txn").glob("*.json"))
    assert sorted(store.committed_file_ids()) == sorted([fid_a, fid_b])
    report = ingest(lake, "x", [b], workers=0, build="GRCh37")
    assert report.files[0].status == "skipped"
    assert verify_files(lake, "x", [a, b]) == 2 * 346


def test_sigkill_mid_ingest_leaves_the_lake_unchanged(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "x", [HAIL], build="GRCh37", workers=0)
    before = lake_fingerprint(lake)
    before_rows = sorted_rows(lake, VARIANTS_SQL)
    before_calls = sorted_rows(lake, CALLS_SQL)
    big = _big_vcf(tmp_path / "big.vcf")
    proc = subprocess.Popen([sys.executable, "-m", "genolake", "ingest", "--lake", str(lake), "-i", "y",
                             "--workers", "0", "-q", str(big)], env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    staging = lake / "_staging"
    while time.time() < deadline and not (staging.exists() and any(staging.iterdir())):
        time.sleep(0.02)
    time.sleep(0.5)  # well inside the conversion
    assert proc.poll() is None, "ingest finished before it could be killed; make the file bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(staging.iterdir()), "the dead job's staging folder is left behind (and invisible)"
    # readable and unchanged: same query results, same bytes (the dead job's staging folder aside)
    assert sorted_rows(lake, VARIANTS_SQL) == before_rows
    assert sorted_rows(lake, CALLS_SQL) == before_calls
    after = {k: v for k, v in lake_fingerprint(lake).items() if not k.startswith("_staging/")}
    assert after == before
    res = run_cli("query", "sql", "--lake", str(lake), "--format", "csv", "SELECT count(*) AS n FROM files")
    assert res.returncode == 0 and res.stdout.split() == ["n", "1"], res.stderr
    # a rerun succeeds, cleans the dead job's staging folder, and the data verify
    res = run_cli("ingest", "--lake", str(lake), "-i", "y", "--workers", "0", "-q", str(big))
    assert res.returncode == 0, res.stderr
    assert not any(staging.iterdir())
    assert verify_files(lake, "y", [big]) == 20_000
    assert sorted_rows(lake, VARIANTS_SQL + " WHERE institution = 'x'") == before_rows


def test_two_ingests_at_once_both_land(tmp_path: Path, halves: tuple[Path, Path]) -> None:
    a, b = halves
    lake = tmp_path / "lake"
    ingest(lake, "x", [HAIL], build="GRCh37", workers=0)  # the lake exists; the two jobs race on commits
    procs = [subprocess.Popen([sys.executable, "-m", "genolake", "ingest", "--lake", str(lake), "-i", inst,
                               "--build", "GRCh37", "--workers", "0", "-q", str(f)], env=os.environ.copy(),
                              stderr=subprocess.PIPE, text=True)
             for inst, f in (("a", a), ("b", b))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lk = genolake.open(lake)
    assert lk.sql("SELECT institution, count(*) AS n FROM files GROUP BY 1 ORDER BY 1").to_pylist() == [
        {"institution": "a", "n": 1}, {"institution": "b", "n": 1}, {"institution": "x", "n": 1}]
    assert verify_files(lake, "a", [a]) == 346
    assert verify_files(lake, "b", [b]) == 346
    # nothing doubled: the two halves add up to the whole file, allele for allele
    whole = lk.sql("SELECT pos, ref, alt, ac, an FROM variant_files WHERE institution = 'x' ORDER BY ALL").to_pylist()
    parts = lk.sql("SELECT pos, ref, alt, sum(ac) AS ac, sum(an) AS an FROM variant_files "
                   "WHERE institution IN ('a', 'b') GROUP BY ALL ORDER BY ALL").to_pylist()
    assert [(r["pos"], r["ref"], r["alt"], r["ac"], r["an"]) for r in whole] == [
        (r["pos"], r["ref"], r["alt"], r["ac"], r["an"]) for r in parts]


def test_same_file_twice_at_once_lands_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    ingest(lake, "x", [DATA / "va_hapmap_exome_chr22_22s.vcf.gz"], build="GRCh37", workers=0)
    procs = [subprocess.Popen([sys.executable, "-m", "genolake", "ingest", "--lake", str(lake), "-i", "y",
                               "--build", "GRCh37", "--workers", "0", "-q", str(HAIL)], env=os.environ.copy(),
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        codes.append((p.returncode, err))
    assert sorted(c for c, _ in codes) in ([0, 0], [0, 1])
    for c, err in codes:
        if c:
            assert "meanwhile" in err and "Traceback" not in err
    lk = genolake.open(lake)
    assert lk.sql("SELECT count(*) AS n FROM files WHERE institution = 'y'").to_pylist() == [{"n": 1}]
    assert verify_files(lake, "y", [HAIL]) == 346


def _column_strings(col: pa.ChunkedArray | pa.Array) -> set[str]:
    """Every distinct string inside a column (dictionaries, lists and structs included)."""
    t = col.type
    if pa.types.is_dictionary(t):
        return _column_strings(col.cast(t.value_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _column_strings(pc.list_flatten(col))
    if pa.types.is_struct(t):
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        return {s for k in range(t.num_fields) for s in _column_strings(arr.field(k))}
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return {v for v in pc.unique(col).to_pylist() if v is not None}
    return set()


def _leaks(lake: Path, forbidden: set[str], key: bytes) -> list[tuple[str, str]]:
    """(file, what) for every forbidden string found anywhere under the lake folder."""
    raw = [x.encode() for x in forbidden] + [key]
    lengths = {len(x) for x in forbidden}
    found: list[tuple[str, str]] = []
    for root, _dirs, names in os.walk(lake):
        for name in names:
            path = Path(root) / name
            rel = str(path.relative_to(lake))
            found += [(rel, "path: " + x) for x in forbidden if x in rel]
            # raw bytes of every file: Delta JSON logs, genolake.json, and the uncompressed parts of Parquet
            # files (footer, key-value metadata, column statistics)
            data = path.read_bytes()
            found += [(rel, "bytes: " + x.decode(errors="replace")) for x in raw if x in data]
            if name.endswith(".parquet"):
                # Parquet pages are compressed: decode every column and look inside every distinct string
                texts = {t for col in pq.read_table(path).columns for t in _column_strings(col)}
                for text in texts:
                    hits = {text[a:a + n] for n in lengths for a in range(len(text) - n + 1)} & forbidden
                    found += [(rel, "value: " + h) for h in sorted(hits)]
    return found


def _forbidden(lake: Path, files: list[Path], key_dir: Path) -> tuple[set[str], bytes]:
    ids: set[str] = set()
    for f in files:
        ids.update(subprocess.run(["bcftools", "query", "-l", str(f)], capture_output=True, text=True,
                                  check=True).stdout.split())
    short = {s for s in ids if len(s) < 5}
    assert not short, f"IDs this short could occur by chance in binary data: {sorted(short)[:5]}"
    key_hex = (key_dir / f"{genolake.open(lake).store.config['lake_id']}.key").read_text().strip()
    forbidden = ids | {f.name for f in files} | {str(f.parent) for f in files} | {key_hex, key_hex[:16]}
    return forbidden, bytes.fromhex(key_hex)


def test_no_raw_sample_id_or_file_name_in_the_lake(tmp_path: Path, key_dir: Path) -> None:
    """After ingesting real files (and the bundled sample data), no raw sample ID (from the VCF headers), input
    file name or folder, and nothing of the key appears in any file under the lake folder."""
    sample_vcfs = Path(__file__).resolve().parent.parent / "data" / "sample_vcfs"
    files = [HAIL, DATA / "va_hapmap_exome_chr22_22s.vcf.gz", DATA / "1kg_phase3_broad_chr20_2535s.vcf.gz"]
    lake = tmp_path / "lake"
    for i, f in enumerate(files):
        ingest(lake, f"inst{i}", [f], build="GRCh37", workers=0)
    ingest(lake, "south", [sample_vcfs / "south.vcf"], workers=0)
    files.append(sample_vcfs / "south.vcf")
    forbidden, key = _forbidden(lake, files, key_dir)
    assert len(forbidden) > 2000
    assert _leaks(lake, forbidden, key) == []
    n_parquet = sum(1 for _ in lake.rglob("*.parquet"))
    n_json = sum(1 for _ in lake.rglob("*.json"))
    assert n_parquet > 10 and n_json > 10


def test_the_privacy_scan_finds_a_leak(tmp_path: Path, key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan above has teeth: with pseudonyms replaced by the raw IDs it reports them."""
    from genolake.pseudonym import Pseudonymiser

    monkeypatch.setattr(Pseudonymiser, "__call__", lambda self, institution, sample_id: sample_id)
    lake = tmp_path / "lake"
    ingest(lake, "x", [DATA / "va_hapmap_exome_chr22_22s.vcf.gz"], build="GRCh37", workers=0)
    forbidden, key = _forbidden(lake, [DATA / "va_hapmap_exome_chr22_22s.vcf.gz"], key_dir)
    leaks = _leaks(lake, forbidden, key)
    assert any(what.startswith("value: NA") and "samples/" in f for f, what in leaks)
    # the genotype store holds no sample identifier at all (a column index, mapped by `samples`)
    assert not any("genotypes/" in f for f, _what in leaks)
