"""`genolake migrate`: a format-1 lake written by the previous release (tests/data/lake_v1, see
tests/data/SOURCES.md) upgraded to the genotype store, compared with what the old release stored and answered."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from genolake import migrate as migrate_mod
from genolake.errors import LakeStateError
from genolake.genotypes import unpack
from genolake.migrate import migrate
from genolake.pseudonym import Pseudonymiser, read_key
from genolake.query.lake import Lake
from genolake.store import LakeStore

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "lake_v1"
KEY_DIR = DATA / "lake_v1_key"
SRC = DATA / "lake_v1_src"
EXPECTED = DATA / "lake_v1_expected.json.gz"
CALL_COLUMNS = ["institution", "contig", "pos", "ref", "alt", "sample_id", "gt", "ploidy", "called", "alt_count",
                "phased", "gq", "dp", "ad_ref", "ad_alt", "file_id"]


def _copy_v1(dest: Path) -> Path:
    """A copy of the fixture lake, with its logs' times as the lake had them (git does not keep mtimes):
    `allele_frequencies` was committed after the last `files` commit, so it is current."""
    shutil.copytree(FIXTURE, dest)
    t = os.stat(dest / "files" / "_delta_log").st_mtime
    os.utime(dest / "allele_frequencies" / "_delta_log", (t + 10, t + 10))
    return dest


def _old_calls(lake: Path) -> pa.Table:
    """The format-1 `calls` table's rows of its current Delta version, read straight from its Parquet files."""
    files = DeltaTable(str(lake / "calls")).file_uris()
    assert files, "the fixture has calls"
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return t.select(CALL_COLUMNS)


def _rows(t: pa.Table) -> list[tuple[Any, ...]]:
    cols = [t.column(c).to_pylist() for c in t.column_names]
    return sorted(zip(*cols, strict=True), key=repr)


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genolake", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def key_env(_session_key_dir: Path) -> dict[str, str]:
    """The environment with a copy of the fixture's test key in the session's GENOLAKE_KEY_DIR (tests/conftest.py;
    tests never write next to the fixture)."""
    for f in KEY_DIR.iterdir():
        shutil.copy(f, _session_key_dir / f.name)
        os.chmod(_session_key_dir / f.name, 0o600)
    return {**os.environ, "GENOLAKE_KEY_DIR": str(_session_key_dir)}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, key_env: dict[str, str]) -> tuple[Path, pa.Table]:
    """The fixture lake migrated once through the console script, and its old `calls` rows."""
    lake = _copy_v1(tmp_path_factory.mktemp("mig") / "lake")
    old = _old_calls(lake)
    res = _run("migrate", lake, env=key_env)
    assert res.returncode == 0, res.stderr
    assert "from format version 1 to 2" in res.stderr
    assert f"{old.num_rows:,} stored calls" in res.stderr
    return lake, old


def test_calls_view_equals_old_calls(migrated: tuple[Path, pa.Table]) -> None:
    lake, old = migrated
    assert json.loads((lake / "genolake.json").read_text())["format_version"] == 2
    assert not (lake / "calls").exists()
    with Lake(lake) as lk:
        new = lk.sql("SELECT * FROM calls").select(CALL_COLUMNS)
        for inst in ("north", "south"):
            mine = _rows(new.filter(pa.compute.equal(new["institution"], inst)))
            theirs = _rows(old.filter(pa.compute.equal(old["institution"], inst)))
            assert mine == theirs and len(mine) > 0, inst
    # the fixture has what the codes must carry: multi-allelic sites, haploid chrX calls, phased calls, missing
    # calls, other ploidies (contig 1: a triploid and a call without alleles) and FORMAT values
    assert set(old["gt"].to_pylist()) == {"0/1", "1/1", "1|1", "./.", "0", "1", ".", "0/1/0", "0/0/1"}
    assert old["gq"].null_count < old.num_rows and old["ad_alt"].null_count < old.num_rows


def test_genotypes_parts_pair_with_variants_parts(migrated: tuple[Path, pa.Table]) -> None:
    """One genotypes part per variants part, at the same relative path and with the same rows (as ingest writes
    them, which `samples remove` relies on), one code per sample of the file."""
    lake, _old = migrated
    store = LakeStore.open(lake)
    base_g, base_v = store.table_path("genotypes"), store.table_path("variants")
    grels = sorted(str(Path(p).relative_to(base_g)) for p in store.active_files("genotypes"))
    vrels = sorted(str(Path(p).relative_to(base_v)) for p in store.active_files("variants"))
    assert grels == vrels
    assert any("-w" in r for r in grels)  # parts rewritten by the old release's `samples remove`
    samples = store.read_table("samples")
    stored = 0
    for rel in grels:
        g = pq.read_table(base_g / rel)
        v = pq.read_table(base_v / rel)
        assert g.select(["pos", "ref", "alt", "file_id"]).equals(v.select(["pos", "ref", "alt", "file_id"]))
        n = pa.compute.sum(pa.compute.equal(samples["file_id"], v["file_id"][0])).as_py()
        stored += int((unpack(g, n) != 0).sum())  # one code per sample of the file
    assert stored == _old.num_rows


def _json(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=str))


def _dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)


def _projected(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[str]:
    """``got`` rows on the columns the old release gave (a later release may add columns), sorted."""
    keys = set().union(*(w.keys() for w in want)) if want else set()
    return sorted(_dumps({k: r.get(k) for k in keys}) for r in got)


def test_queries_answer_as_the_previous_release(migrated: tuple[Path, pa.Table]) -> None:
    """`lake.variant` (frequencies from allele_frequencies, phenotype counts), carriers and regions give what the
    release that wrote the lake gave (recorded by tests/data/lake_v1_make.sh)."""
    lake, _old = migrated
    with gzip.open(EXPECTED, "rt") as fh:
        expected = json.load(fh)
    with Lake(lake) as lk:
        for vid, want in expected["variants"].items():
            got = _json(lk.variant(vid))
            assert got["frequencies"] == want["frequencies"], vid
            assert got["phenotypes"] == want["phenotypes"], vid
            for k in ("id", "institutions", "multiallelic", "observed", "source"):
                assert got["variant"][k] == want["variant"][k], (vid, k)
        assert {w["variant"]["source"] for w in expected["variants"].values()} == {"allele_frequencies"}
        for vid, want in expected["carriers"].items():
            assert _projected(_json(lk.carriers(vid).to_pylist()), want) == sorted(_dumps(w) for w in want), vid
        for region, want in expected["regions"].items():
            got = _json(lk.region(region).to_pylist())
            assert [_dumps({k: r.get(k) for k in w}) for r, w in zip(got, want, strict=True)] == [
                _dumps(w) for w in want], region
            assert len(got) == len(want), region
        # allele_frequencies itself is the old table, untouched
        af = lk.sql("SELECT count(*) AS n FROM allele_frequencies")["n"][0].as_py()
        assert af > 0
    old_af = DeltaTable(str(FIXTURE / "allele_frequencies")).file_uris()
    new_af = DeltaTable(str(lake / "allele_frequencies")).file_uris()
    assert [Path(f).name for f in old_af] == [Path(f).name for f in new_af]


def _raw_ids(lake: Path, key_dir: Path) -> dict[tuple[str, str], str]:
    """(institution, pseudonym) -> raw sample ID, for the VCFs the fixture was made from, with ``lake``'s key."""
    cfg = json.loads((lake / "genolake.json").read_text())
    pseud = Pseudonymiser(read_key(key_dir / f"{cfg['lake_id']}.key"))
    out = {}
    for inst, files in (("north", sorted(SRC.glob("north_*.vcf.gz"))),
                        ("south", [SRC / "south.vcf.gz", SRC / "south_mixed_ploidy.vcf.gz"])):
        for f in files:
            ids = subprocess.run(["bcftools", "query", "-l", str(f)], capture_output=True, text=True,
                                 check=True).stdout.split()
            out.update({(inst, p): s for s, p in zip(ids, pseud.many(inst, ids), strict=True)})
    return out


def test_fresh_ingest_gives_the_same_calls(migrated: tuple[Path, pa.Table], tmp_path: Path,
                                           key_env: dict[str, str]) -> None:
    """Ingesting the same VCFs into a new lake (new key, so compared by raw ID) gives the migrated `calls` view,
    less the person the fixture's `samples remove` withdrew."""
    lake, _old = migrated
    fresh = tmp_path / "fresh"
    for inst, files, extra in (("north", sorted(SRC.glob("north_*.vcf.gz")), []),
                               ("south", [SRC / "south.vcf.gz", SRC / "south_mixed_ploidy.vcf.gz"],
                                ["--build", "GRCh37"])):
        res = _run("ingest", "--lake", fresh, "-i", inst, "--workers", "0", "--quiet", *extra, *files, env=key_env)
        assert res.returncode == 0, res.stderr
    key_dir = Path(key_env["GENOLAKE_KEY_DIR"])

    def by_raw(path: Path) -> list[tuple[Any, ...]]:
        ids = _raw_ids(path, key_dir)
        with Lake(path) as lk:
            t = lk.sql("SELECT * FROM calls").select(CALL_COLUMNS)
        raw = [ids[(i, s)] for i, s in zip(t["institution"].to_pylist(), t["sample_id"].to_pylist(), strict=True)]
        return _rows(t.set_column(t.schema.get_field_index("sample_id"), "sample_id", pa.array(raw)))

    mine, theirs = by_raw(lake), by_raw(fresh)
    kept = {(r[0], r[5]) for r in mine}
    gone = {(r[0], r[5]) for r in theirs} - kept
    assert len(gone) == 1 and next(iter(gone))[0] == "north"  # the one withdrawn person
    assert mine == [r for r in theirs if (r[0], r[5]) in kept]
    # south withdrew nobody: its genotypes parts are what ingest writes, row for row and value for value
    south = sorted(p.relative_to(fresh / "genotypes") for p in (fresh / "genotypes").glob("institution=south/*/*.parquet"))
    assert len(south) == 4  # contigs 1, 20, 21, X
    for rel in south:
        assert pq.read_table(lake / "genotypes" / rel).equals(pq.read_table(fresh / "genotypes" / rel)), rel


def test_unmigrated_lake_is_refused_by_every_command(tmp_path: Path, key_env: dict[str, str]) -> None:
    lake = _copy_v1(tmp_path / "lake")
    before = sorted(str(p.relative_to(lake)) for p in lake.rglob("*"))
    for args in (["info", "--lake", lake], ["query", "variant", "--lake", lake, "20-10273694-C-CT"],
                 ["query", "region", "--lake", lake, "20"], ["query", "sql", "--lake", lake, "SELECT 1"],
                 ["aggregate", "--lake", lake, "--workers", "0"], ["phenotypes", "list", "--lake", lake],
                 ["ingest", "--lake", lake, "-i", "north", "--workers", "0", SRC / "south.vcf.gz"]):
        res = _run(*args, env=key_env)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, (args, res.stderr)
        assert f"genolake migrate {lake}" in lines[0] and "format version 1" in lines[0], lines[0]
    assert sorted(str(p.relative_to(lake)) for p in lake.rglob("*")) == before


def test_second_migrate_says_current(migrated: tuple[Path, pa.Table], key_env: dict[str, str]) -> None:
    lake, _old = migrated
    res = _run("migrate", lake, env=key_env)
    assert res.returncode == 0
    assert res.stderr.strip() == f"{lake} is already at format version 2: nothing to migrate"


def test_not_a_lake(tmp_path: Path, key_env: dict[str, str]) -> None:
    for path in (tmp_path, tmp_path / "missing", SRC / "south.vcf.gz"):
        res = _run("migrate", path, env=key_env)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert "is not a genolake lake" in lines[0] and "nothing to migrate" in lines[0]


def _assert_migrated(lake: Path, old: pa.Table) -> None:
    assert json.loads((lake / "genolake.json").read_text())["format_version"] == 2
    assert not (lake / "calls").exists()
    with Lake(lake) as lk:
        assert _rows(lk.sql("SELECT * FROM calls").select(CALL_COLUMNS)) == _rows(old)


def test_interrupted_before_the_switch_is_redone(tmp_path: Path, key_env: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the genotypes commit but before genolake.json says version 2: the lake is still the old
    one (refused with the migrate line, the old calls intact), and the rerun redoes the migration."""
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)

    def crash(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate_mod, "_switch", crash)
    with pytest.raises(KeyboardInterrupt):
        migrate(lake)
    monkeypatch.undo()
    assert (lake / "genotypes" / "_delta_log").is_dir() and (lake / "calls").is_dir()
    assert _rows(_old_calls(lake)) == _rows(old)
    with pytest.raises(LakeStateError, match="genolake migrate"):
        Lake(lake)
    res = _run("migrate", lake, env=key_env)
    assert res.returncode == 0, res.stderr
    assert "an interrupted migration was redone" in res.stderr
    _assert_migrated(lake, old)


def test_interrupted_inside_the_commit_is_redone(tmp_path: Path, key_env: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the commit's redo record: the rerun's lock completes that commit, then the migration is
    redone from the old calls."""
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)

    def crash(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LakeStore, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        migrate(lake)
    monkeypatch.undo()
    assert list((lake / "_txn").glob("*.json"))
    report = migrate(lake)
    assert report.recovered and not list((lake / "_txn").glob("*.json"))
    _assert_migrated(lake, old)


def test_stray_genotypes_folder_is_replaced(tmp_path: Path, key_env: dict[str, str]) -> None:
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)
    shutil.copytree(lake / "variants", lake / "genotypes")  # a Delta table that is not a genotype store
    (lake / "genotypes" / "junk.parquet").write_bytes(b"not parquet")
    report = migrate(lake)
    assert report.recovered
    _assert_migrated(lake, old)


def test_crash_after_the_switch_leaves_calls_that_a_rerun_removes(migrated: tuple[Path, pa.Table],
                                                                   tmp_path: Path, key_env: dict[str, str]) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(migrated[0], lake)
    shutil.copytree(FIXTURE / "calls", lake / "calls")
    with Lake(lake) as lk:  # a format-2 lake reads its genotypes; the leftover folder is never read
        assert _rows(lk.sql("SELECT * FROM calls").select(CALL_COLUMNS)) == _rows(migrated[1])
    report = migrate(lake)
    assert report.already_current and not (lake / "calls").exists()


def test_pending_commit_of_the_old_release_is_completed(tmp_path: Path, key_env: dict[str, str]) -> None:
    """A redo record left by the old release that names its `calls` table is rolled forward, not a crash."""
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)
    (lake / "_txn").mkdir(exist_ok=True)
    (lake / "_txn" / "old.json").write_text(json.dumps(
        {"txn": "old", "adds": {}, "removes": {"calls": ["institution=north/contig=20/none.parquet"]},
         "order": ["calls"]}))
    migrate(lake)
    assert not (lake / "_txn" / "old.json").exists()
    _assert_migrated(lake, old)


def test_calls_rows_in_any_order(tmp_path: Path, key_env: dict[str, str]) -> None:
    """The codes and FORMAT lists follow the samples' column order whatever order a calls part keeps its rows in
    (the old writer sorted by column index; a rewritten part need not be)."""
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)
    for f in DeltaTable(str(lake / "calls")).file_uris():
        t = pq.read_table(f)
        pq.write_table(t.take(pa.array(list(range(t.num_rows))[::-1])), f)
    migrate(lake)
    _assert_migrated(lake, old)


def test_large_parts_are_split_with_their_variants(tmp_path: Path, key_env: dict[str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A part with more codes than ingest puts in one part is split, with its variants part, into pieces of the
    same rows; the answers do not change, and a rerun after a crash finds the pieces' calls."""
    lake = _copy_v1(tmp_path / "lake")
    old = _old_calls(lake)
    monkeypatch.setattr(migrate_mod, "PART_CODES", 20 * 30)  # 30 rows of a 20-sample file
    monkeypatch.setattr(migrate_mod, "_switch", lambda *_a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        migrate(lake)
    monkeypatch.setattr(migrate_mod, "_switch", _SWITCH)
    report = migrate(lake)  # the variants parts are split already: their pieces find their calls
    assert report.recovered and report.calls_files == 7 and report.genotypes_files > 20
    _assert_migrated(lake, old)
    store = LakeStore.open(lake)
    grels = sorted(str(Path(p).relative_to(store.table_path("genotypes"))) for p in store.active_files("genotypes"))
    vrels = sorted(str(Path(p).relative_to(store.table_path("variants"))) for p in store.active_files("variants"))
    assert grels == vrels and all("-m0" in r for r in grels if "contig=1/" not in r)
    with Lake(lake) as lk:
        n_old = sum(pq.ParquetFile(f).metadata.num_rows for f in DeltaTable(str(FIXTURE / "variants")).file_uris())
        assert lk.sql("SELECT count(*) AS n FROM variants")["n"][0].as_py() == n_old
        with gzip.open(EXPECTED, "rt") as fh:
            expected = json.load(fh)
        for vid, want in expected["variants"].items():
            assert _json(lk.variant(vid))["frequencies"] == want["frequencies"], vid


_SWITCH = migrate_mod._switch


def test_samples_remove_after_migrating(migrated: tuple[Path, pa.Table], tmp_path: Path,
                                        key_env: dict[str, str]) -> None:
    """Withdrawal on a migrated lake pairs each genotypes part with its variants part as on an ingested lake."""
    from genolake.samples.remove import remove_samples

    lake = tmp_path / "lake"
    shutil.copytree(migrated[0], lake)
    raw = subprocess.run(["bcftools", "query", "-l", str(SRC / "south.vcf.gz")], capture_output=True, text=True,
                         check=True).stdout.split()[1]
    (tmp_path / "ids.txt").write_text(raw + "\n")
    remove_samples(lake, institution="south", path=tmp_path / "ids.txt")
    cfg = json.loads((lake / "genolake.json").read_text())
    gone = Pseudonymiser(read_key(Path(key_env["GENOLAKE_KEY_DIR"]) / f"{cfg['lake_id']}.key"))("south", raw)
    old = migrated[1]
    keep = pa.compute.invert(pa.compute.and_(pa.compute.equal(old["institution"], "south"),
                                             pa.compute.equal(old["sample_id"], gone)))
    assert old.num_rows - old.filter(keep).num_rows > 0
    with Lake(lake) as lk:
        assert _rows(lk.sql("SELECT * FROM calls").select(CALL_COLUMNS)) == _rows(old.filter(keep))


def test_more_codes_than_symbols_round_trip() -> None:
    """A part with all 19 stored diploid and haploid codes and an other-ploidy call (more than the 15 symbols of a part): the
    least frequent codes become other-texts, and every call expands back to its old row, FORMAT values in place."""
    from genolake.genotypes import TEXT, expand

    n = 24
    sids = [f"s{j:02d}" for j in range(n)]
    # every diploid code but 0/0 and 0|0 (never stored), haploid ., 0, 1, and a triploid: 20 codes
    texts = [TEXT[k] for k in range(1, 22) if TEXT[k] not in ("0/0", "0|0")] + ["0/1/1"]
    calls = [(1, j, t) for j, t in enumerate(texts)] + [(2, 3, "0/1"), (2, 0, "1")]
    ct = pa.table({
        "institution": ["x"] * len(calls), "contig": ["1"] * len(calls), "pos": pa.array([c[0] for c in calls],
                                                                                    pa.int32()),
        "ref": ["A"] * len(calls), "alt": ["C"] * len(calls), "sample_id": [sids[c[1]] for c in calls],
        "gt": [c[2] for c in calls], "gq": pa.array([c[1] * 10 for c in calls], pa.int32()),
        "dp": pa.array([None] * len(calls), pa.int32()), "ad_ref": pa.array([1] * len(calls), pa.int32()),
        "ad_alt": pa.array([c[1] for c in calls], pa.int32()), "file_id": ["f"] * len(calls)})
    vt = pa.table({"institution": ["x"] * 3, "contig": ["1"] * 3, "pos": pa.array([1, 2, 3], pa.int32()),
                   "ref": ["A"] * 3, "alt": ["C"] * 3, "file_id": ["f"] * 3})
    srows = pa.table({"sample_id": sids, "column_index": pa.array(range(n), pa.int32())})
    got = migrate_mod._Calls.of(vt, ct.take(pa.array(range(len(calls))[::-1])), srows, where="t").genotypes(vt, 0, n)
    assert len(got["gt_symbols"][0].as_py()) == 15 and got["dp"].null_count == 3
    back = expand(got, lambda _f: pa.array(sids), ["pos", "sample_id", "gt", "gq", "ad_ref", "ad_alt"])
    assert _rows(back) == _rows(ct.select(["pos", "sample_id", "gt", "gq", "ad_ref", "ad_alt"]))
