"""The cold `genolake query variant` path (issue 10: whole process <= 0.35 s; measured by benchmarks/suites/cli.py,
never timed here): it reads with DuckDB, without pyarrow, and with one to three IDs without numpy
(query/cold_report.py: the breakdown counted in SQL). These tests check that
the lighter path gives exactly the library's answers, on the real sample lake (absent-as-ref and callable-region
files, phenotypes), and that the deferred imports behave."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake, hail_vcf

from genolake import genotypes as gtc
from genolake.lazy import DeferredType, LazyModule, arrow_types, resolve_type
from genolake.output import to_json
from genolake.query.engine import duck_type
from genolake.query.lake import Lake
from genolake.schema import TABLES, VIEWS

DATA = Path(__file__).resolve().parent / "data"


def _variants(opened: Any, n: int) -> list[str]:
    """Alleles of the lake: multi-allelic positions first (REF/ALT filtered reads), then an even spread."""
    rows = opened.sql("SELECT contig, pos, ref, alt, count(*) OVER (PARTITION BY contig, pos) AS k "
                      "FROM (SELECT DISTINCT contig, pos, ref, alt FROM variant_files) ORDER BY k DESC, pos, ref, alt")
    keys = [f"{c}-{p}-{r}-{a}" for c, p, r, a in zip(*(rows[x].to_pylist() for x in ("contig", "pos", "ref", "alt")),
                                                    strict=True)]
    multi = keys[:4]
    rest = keys[4:]
    step = max(1, len(rest) // (n - len(multi)))
    return multi + rest[::step][: n - len(multi)]


def _cli(sample_lake: SampleLake, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    return subprocess.run([sys.executable, "-m", "genolake", "query", "variant", "--lake", str(sample_lake.path),
                           *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_json_is_the_library_answer(sample_lake: SampleLake, opened: Any) -> None:
    """The command (DuckDB reads, no pyarrow) prints exactly `to_json` of the library's report read with the
    pyarrow point reader, for multi-allelic sites, sites some files lack and sites outside callable regions."""
    ids = _variants(opened, 14)
    res = _cli(sample_lake, "--format", "json", *ids)
    assert res.returncode == 0, res.stderr
    assert res.stdout == to_json([opened.variant(v) for v in ids]) + "\n"
    one = _cli(sample_lake, "--format", "json", ids[5])
    assert one.returncode == 0 and one.stdout == to_json(opened.variant(ids[5])) + "\n"


def test_duckdb_and_point_reads_give_the_same_reports(sample_lake: SampleLake, opened: Any) -> None:
    """Both readers decode the same codes into the one count (strata.count_breakdown): same reports everywhere."""
    cold = Lake(sample_lake.path, point_reads=False)
    try:
        ids = _variants(opened, 60)
        for v in ids:
            assert cold.variant(v) == opened.variant(v), v
        assert any(p["carriers"] for v in ids for p in cold.variant(v)["phenotypes"])
    finally:
        cold.close()


def test_cli_errors_keep_their_one_line_and_exit_code(sample_lake: SampleLake, opened: Any) -> None:
    bad = _cli(sample_lake, "--format", "json", "chr20-abc-A-G")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("genolake: error: malformed variant ID 'chr20-abc-A-G'")
    unknown = _cli(sample_lake, "--format", "json", "rs1")
    assert unknown.returncode == 2 and unknown.stderr.startswith("genolake: error: rs1 is not in the lake")
    assert len(unknown.stderr.strip().splitlines()) == 1
    v = _variants(opened, 6)[5]
    contig, pos, ref, _alt = v.split("-")
    absent = f"{contig}-{pos}-{ref}-{ref}GATTACAGATTACA"  # an insertion no file lists, at a listed position
    res = _cli(sample_lake, "--format", "json", absent)
    assert res.returncode == 0 and "is not in the lake" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert json.loads(res.stdout)["variant"]["observed"] is False
    assert res.stdout == to_json(opened.variant(absent)) + "\n"


def test_call_values_of_python_rows_equals_the_arrow_codec(tmp_path: Path) -> None:
    """`call_values_of` (DuckDB's fetchall values) decodes exactly as `call_values` (Arrow), other ploidies and
    missing calls included."""
    from genolake.ingest.pipeline import ingest

    lake = tmp_path / "lake"
    ingest(lake, "a", [DATA / "hail_sample_1kg_chr20_100s.vcf.gz"], build="GRCh37", workers=0)
    ingest(lake, "b", [DATA / "edge" / "bio2zarr__mixed_ploidy.vcf.gz"], build="GRCh37", workers=0)
    rows = pa.concat_tables([pq.read_table(p) for p in sorted((lake / "genotypes").rglob("*.parquet"))],
                            promote_options="permissive")
    want = gtc.call_values(rows)
    got = gtc.call_values_of(rows["gt"].to_pylist(), rows["gt_symbols"].to_pylist(), rows["other_gt"].to_pylist())
    assert want.other_idx.size > 0  # other-ploidy texts were exercised
    for name in ("row", "col", "k", "ploidy", "called", "alt_count", "other_idx"):
        assert getattr(got, name).tolist() == getattr(want, name).tolist(), name
    assert got.other_text == want.other_text


def test_lazy_module_imports_on_first_use() -> None:
    code = ("import sys\nfrom genolake.lazy import LazyModule\nm = LazyModule('json')\n"
            "sys.modules.pop('json', None)\nprint('json' in sys.modules, repr(m).startswith('<lazily'))\n"
            "print(m.dumps([1]), 'json' in sys.modules, m.loads is sys.modules['json'].loads)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "[1]", "True", "True"]
    with pytest.raises(AttributeError):
        LazyModule("json").__wrapped__  # noqa: B018 - introspection probes do not import
    # a closure over a lazy module (a Dask task's) pickles as the module it names
    cloudpickle = pytest.importorskip("cloudpickle")
    lazy_pa = LazyModule("pyarrow")
    task = pickle.loads(cloudpickle.dumps(lambda: lazy_pa.int64()))
    assert task() == pa.int64()
    assert pickle.loads(pickle.dumps(LazyModule("json"))) is json


def test_deferred_schema_types() -> None:
    """Schema columns are declared without pyarrow and built on first use; DuckDB names them the same either way."""
    t = arrow_types.list_(arrow_types.int32())
    assert isinstance(t, DeferredType) and resolve_type(t) == pa.list_(pa.int32())
    assert resolve_type(arrow_types.timestamp("us", tz="UTC")) == pa.timestamp("us", tz="UTC")
    for table in [*TABLES.values(), *VIEWS.values()]:
        for c in table.columns:
            assert isinstance(c.type, pa.DataType)
            assert duck_type(c.declared) == duck_type(c.type), (table.name, c.name)


def _cold_modules(sample_lake: SampleLake, vid: str, names: tuple[str, ...]) -> tuple[list[str], str]:
    """(the modules of ``names`` that a cold `genolake query variant VID -f json` imported, its stdout)."""
    code = ("import io, sys\nsys.argv = ['genolake', 'query', 'variant', %r, '--lake', %r, '-f', 'json']\n"
            "out, sys.stdout = sys.stdout, io.StringIO()\nimport genolake.launch\n"
            "try:\n    genolake.launch.main()\nexcept SystemExit:\n    pass\n"
            "text, sys.stdout = sys.stdout.getvalue(), out\n"
            "import json\nprint(json.dumps([m for m in %r if m in sys.modules]))\nprint(text, end='')\n" % (vid, str(sample_lake.path), names))
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    first, _, rest = res.stdout.partition("\n")
    return json.loads(first), rest


def test_cold_command_leaves_duckdb_python_layer_out(sample_lake: SampleLake, opened: Any) -> None:
    """With duckdb >= 2 the cold command runs on the compiled engine (`_duckdb`) alone: the Python layer
    (`duckdb`: relations, expressions, package metadata) is not imported, nor typer and click (the program's
    entry point runs a plain `query variant` line itself); the answer is the library's."""
    pytest.importorskip("_duckdb")
    vid = _variants(opened, 6)[5]
    heavy, out = _cold_modules(sample_lake, vid, ("duckdb", "pyarrow", "importlib.metadata", "typer", "click"))
    assert heavy == []
    assert out == to_json(opened.variant(vid)) + "\n"


def test_engine_without_python_layer_loads_it_on_demand(sample_lake: SampleLake) -> None:
    """An engine whose connection was made without duckdb's Python layer still serves Arrow queries, user SQL
    and `con` (the layer is imported on first use, in a fresh process so it is not there before)."""
    code = ("import sys\nfrom genolake.query.lake import Lake\nlake = Lake(%r, point_reads=False)\n"
            "before = 'duckdb' in sys.modules\n"
            "n = lake.engine.query('SELECT count(*) AS n FROM samples').column('n')[0].as_py()\n"
            "m = lake.sql('SELECT count(*) AS n FROM samples').column('n')[0].as_py()\n"
            "k = lake.engine.con.sql('SELECT count(*) FROM samples').fetchall()[0][0]\n"
            "print(before, n == m == k > 0)\n" % str(sample_lake.path))
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(not _has_engine_module()), "True"]


def _has_engine_module() -> bool:
    """True when duckdb's compiled engine is its own module (duckdb >= 2): the layer can then be left out."""
    try:
        import _duckdb  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("argv, preset, want", [
    (["query", "variant", "x"], None, "1"),
    (["-v", "query", "variant", "x", "--lake", "l"], None, "1"),
    (["query", "variant", "x"], "3", "3"),  # the user's setting wins
    (["query", "assoc", "case_status"], None, None),  # regressions use BLAS: its threads are left alone
    (["aggregate", "--lake", "l"], None, None),
    (["--help"], None, None),
])
def test_prepare_starts_no_blas_threads_for_query_variant(argv: list[str], preset: str | None,
                                                        want: str | None) -> None:
    """`cli_narrow.prepare` gives OpenBLAS one thread for `query variant` only (numpy not imported yet: a fresh
    process), and numpy then really runs one BLAS thread (threadpoolctl, when installed)."""
    code = ("import os, sys\nfrom genolake.cli_narrow import prepare\nprepare(%r)\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'))\nimport numpy\n"
            "try:\n    from threadpoolctl import threadpool_info\nexcept ImportError:\n    print('-')\nelse:\n"
            "    print(min((i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'), "
            "default='-'))\n" % (argv,))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out[0] == str(want)
    if want == "1" and out[1] != "-":
        assert out[1] == "1"


def test_view_columns_of_registered_tables_are_what_describe_says(sample_lake: SampleLake) -> None:
    """`Engine.view_columns` names a registered table's columns from the schema (no view made, no footer read);
    they are exactly the made view's columns, for every table of the lake."""
    lake = Lake(sample_lake.path, point_reads=False)
    try:
        eng = lake.engine
        tables = [t for t in eng.catalog.tables if t in TABLES and t not in ("variants", "phenotypes")]
        assert {"genotypes", "samples", "files"} <= set(tables)
        for t in tables:
            assert eng.view_columns(t) == [r[0] for r in eng.rows(f'DESCRIBE "{t}"')], t
    finally:
        lake.close()


def _run(sample_lake: SampleLake, module: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command line run by ``genolake.<module>.main``: launch (the program's entry point, the console script)
    or cli (the typer app alone)."""
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    env.pop("GENOLAKE_LAKE", None)
    code = f"import sys; sys.argv[0] = 'genolake'; from genolake.{module} import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, input=stdin,
                          timeout=300)


def test_launch_runs_query_variant_exactly_as_typer(sample_lake: SampleLake, opened: Any, tmp_path: Path) -> None:
    """Every form of a plain `query variant` line gives the same stdout, stderr, exit code and files with and
    without typer: formats, parts, several IDs, `--opt=value`, options after the IDs, `-` (stdin), --ids,
    --output, and the errors the command itself raises."""
    ids = _variants(opened, 6)
    lake = str(sample_lake.path)
    (tmp_path / "ids.txt").write_text("\n".join(ids[:3]) + "\n")
    contig, pos, ref, _alt = ids[5].split("-")
    cases: list[tuple[list[str], str | None]] = [
        (["--lake", lake, "--format", "json", ids[0]], None),
        (["--lake", lake, ids[0]], None),  # the table format
        (["--lake", lake, ids[0], ids[4]], None),
        ([ids[1], "--lake=" + lake, "-f", "json", ids[2]], None),
        (["--lake", lake, "-f", "tsv", "--part", "phenotypes", ids[3], ids[4]], None),
        (["--lake", lake, "--format=csv", "--part=variant", ids[0]], None),
        (["--lake", lake, "-f", "json", "-"], "\n".join(ids[2:5]) + "\n"),
        (["--lake", lake, "-f", "json", "--ids", str(tmp_path / "ids.txt")], None),
        (["--lake", lake, "-f", "json", f"{contig}-{pos}-{ref}-{ref}GATTACA"], None),  # not observed: a note
        (["--lake", lake, "-f", "json", "chr20-abc-A-G"], None),  # malformed: exit 2
        (["--lake", lake, "-f", "json", "rs1"], None),
        (["--lake", lake, "--part", "nope", ids[0]], None),
        (["--lake", lake, "-f", "parquet", ids[0]], None),
        (["--lake", str(tmp_path / "nowhere"), ids[0]], None),
        (["--lake", lake, ids[0], "--help"], None),  # typer's, from both
        (["--lake", lake, "--bogus", ids[0]], None),
        (["-f", "json", ids[0]], None),  # no --lake: typer's usage error
    ]
    for args, stdin in cases:
        fast, slow = (_run(sample_lake, m, ["query", "variant", *args], stdin) for m in ("launch", "cli"))
        assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr), args
    for module in ("launch", "cli"):
        out = tmp_path / f"{module}.tsv"
        res = _run(sample_lake, module, ["query", "variant", "--lake", lake, "-f", "tsv", "-o", str(out), *ids[:2]])
        assert res.returncode == 0 and res.stdout == "", res.stderr
    assert (tmp_path / "launch.tsv").read_text() == (tmp_path / "cli.tsv").read_text() != ""


@pytest.mark.parametrize("argv", [
    ["query", "variant", "--lake", "L", "--help", "x"],
    ["-v", "query", "variant", "--lake", "L", "x"],
    ["query", "variant", "-f", "json", "x"],  # no --lake ($GENOLAKE_LAKE: typer reads it)
    ["query", "variant", "--lake", "L", "-f", "json", "-f", "tsv", "x"],  # repeated: click keeps the last
    ["query", "variant", "--lake", "L", "--", "x"],
    ["query", "variant", "--lake", "L", "-fjson", "x"],
    ["query", "variant", "--lake", "L", "-f=json", "x"],
    ["query", "variant", "--lake", "L", "--format", "-x"],
    ["query", "variant", "--lake", "L", "--format"],
    ["query", "variant", "--lake=", "x"],
    ["query", "carriers", "--lake", "L", "x"],
    ["query", "--lake", "L", "variant", "x"],
])
def test_parse_leaves_anything_unusual_to_typer(argv: list[str]) -> None:
    from genolake.query.cli_variant import parse

    assert parse(argv) is None


def test_parse_reads_plain_lines() -> None:
    from genolake.query.cli_variant import parse

    assert parse(["query", "variant", "a", "--lake", "L", "-", "-o", "out", "--ids=i.txt", "--part", "variant"]) == {
        "variants": ["a", "-"], "lake": Path("L"), "ids": Path("i.txt"), "part": "variant", "fmt": "table",
        "output": Path("out")}
    assert parse(["query", "variant", "--lake", "L"]) == {
        "variants": None, "lake": Path("L"), "ids": None, "part": "frequencies", "fmt": "table", "output": None}


def test_cli_benchmark_times_the_current_entry_point() -> None:
    """The cli suite times the console script only when it runs pyproject's entry point (an editable install keeps
    an old script until it is reinstalled); otherwise the entry point itself."""
    from benchmarks.suites.cli import entry_point, genolake_cmd

    assert entry_point() == "genolake.launch:main"
    cmd = genolake_cmd()
    if len(cmd) == 1:
        assert "from genolake.launch import main" in Path(cmd[0]).read_text()
    else:
        assert cmd[:3] == [sys.executable, "-P", "-c"] and "from genolake.launch import main" in cmd[3]
    res = subprocess.run([*cmd, "query", "variant", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Usage: genolake query variant" in res.stdout, res.stderr


def test_breakdown_reads_phenotypes_without_the_wide_view(sample_lake: SampleLake, opened: Any) -> None:
    """A cold point query pivots only the phenotype columns of its breakdown (`Engine.phenotype_source`): the wide
    `phenotypes` view is not made, and the pivot holds exactly the view's values for every phenotype."""
    lake = Lake(sample_lake.path, point_reads=False)
    try:
        eng = lake.engine
        vid = _variants(opened, 6)[5]
        assert lake.variant(vid) == opened.variant(vid)
        assert "phenotypes" in eng._pending  # not made
        names = sorted(eng.catalog.phenotypes)
        assert len(names) >= 3
        cols = ", ".join(f'"{n}"' for n in names)
        got = eng.rows(f"SELECT institution, sample_id, {cols} FROM {eng.phenotype_source(names)} ORDER BY 1, 2")
        want = eng.rows(f"SELECT institution, sample_id, {cols} FROM phenotypes ORDER BY 1, 2")
        assert got == want and len(got) > 0
    finally:
        lake.close()


def _served(lake: Path, ids: list[str]) -> list[dict[str, Any]] | None:
    from genolake.query.cold_report import reports

    return reports(lake, ids)


def test_cold_reports_are_the_library_reports(sample_lake: SampleLake, opened: Any) -> None:
    """`cold_report.reports` (DuckDB SQL and plain Python, no numpy) gives exactly the library's report wherever
    it serves: sites every file lists, sites an absent-as-ref file lacks (its samples' ploidy fills AN), sites
    inside and outside the callable-region file's regions, multi-allelic positions; and it leaves a variant
    not in the lake to the library."""
    ids = _variants(opened, 80)
    served = 0
    for v in ids:
        got = _served(sample_lake.path, [v])
        if got is None:
            continue
        served += 1
        assert got == [opened.variant(v)], v
        assert to_json(got[0]) == to_json(opened.variant(v))
    assert served == len(ids)  # the sample lake has nothing this path leaves to the library
    assert any(p["carriers"] for v in ids for p in opened.variant(v)["phenotypes"])
    fills = opened.sql("SELECT DISTINCT absent_mode FROM files")["absent_mode"].to_pylist()
    assert {"ref", "callable"} <= set(fills)
    contig, pos, ref, _alt = ids[5].split("-")
    assert _served(sample_lake.path, [f"{contig}-{pos}-{ref}-{ref}GATTACA"]) is None
    assert _served(sample_lake.path, ["rs1"]) is None
    several = _served(sample_lake.path, ids[:3])
    assert several == [opened.variant(v) for v in ids[:3]]
    assert _served(sample_lake.path, ids[:4]) is None  # more IDs: the library reads samples and phenotypes once


@pytest.fixture(scope="module")
def annotated_lake(sample_lake: SampleLake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample lake, aggregated (`--by` a phenotype) and annotated (ClinVar, a gene list, gnomAD
    frequencies): the frequencies come from `allele_frequencies`, the report has annotations."""
    import shutil

    from genolake.compute.aggregate import aggregate
    from genolake.compute.annotate import annotate

    path = tmp_path_factory.mktemp("cold") / "lake"
    shutil.copytree(sample_lake.path, path)
    aggregate(path, workers=0)
    annotate(path, clinvar=DATA / "clinvar_b37_chr20_chr22.vcf.gz", genes=DATA / "glist-hg19.txt",
             frequencies=[(hail_vcf(), "kg")], workers=0)
    return path


def test_cold_reports_of_an_aggregated_annotated_lake(annotated_lake: Path) -> None:
    """With `allele_frequencies` current and `annotations`/`external_frequencies` tables, the cold reports are
    still the library's (frequencies from the aggregate, the annotation row, its external frequencies)."""
    lake = Lake(annotated_lake)
    try:
        ids = _variants(lake, 40)
        sources = set()
        for v in ids:
            got = _served(annotated_lake, [v])
            assert got == [lake.variant(v)], v
            sources.add(got[0]["variant"]["source"])
        assert "allele_frequencies" in sources
        annotated = [lake.variant(v)["annotations"] for v in ids]
        assert all("kg" in a["external_frequencies"] for a in annotated if a) and any(annotated)
        assert any(a.get("clinvar_significance") for a in annotated if a)
    finally:
        lake.close()


def test_cold_command_imports_no_numpy(sample_lake: SampleLake, opened: Any) -> None:
    """The plain command line is answered without numpy (nor pyarrow, duckdb's Python layer, typer): its
    import was the largest part of the cold command's start-up."""
    pytest.importorskip("_duckdb")
    vid = _variants(opened, 6)[5]
    heavy, out = _cold_modules(sample_lake, vid, ("numpy", "pyarrow", "duckdb", "typer", "click"))
    assert heavy == []
    assert out == to_json(opened.variant(vid)) + "\n"


def test_cold_reports_leave_an_unreadable_file_to_the_library(sample_lake: SampleLake, opened: Any,
                                                              tmp_path: Path) -> None:
    """A data file DuckDB cannot read (here a truncated `variants` file) is not this path's to report: it returns
    None and the command runs the library, which reports it its own way (the same with or without typer)."""
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    vid = _variants(opened, 6)[5]
    assert _served(lake, [vid]) == [opened.variant(vid)]
    victim = sorted((lake / "variants").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    assert _served(lake, [vid]) is None


def test_cold_reports_leave_an_unreadable_table_to_the_library(sample_lake: SampleLake, opened: Any,
                                                               tmp_path: Path) -> None:
    """A table whose Delta log cannot be read (even one the report does not use) goes to the library, which warns
    that it skips it: the command's stderr is the library's."""
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    vid = _variants(opened, 6)[5]
    logs = sorted((lake / "callable" / "_delta_log").glob("*.json"))
    logs[-1].write_text("{not json")
    assert _served(lake, [vid]) is None
    env = dict(os.environ, GENOLAKE_KEY_DIR=str(sample_lake.key_dir))
    res = subprocess.run([sys.executable, "-m", "genolake", "query", "variant", "--lake", str(lake), "-f", "json", vid],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and "table callable not readable" in res.stderr, res.stderr
