"""Day one (issue 13), set-up and long work: the demo's key message, the hail extra's message, htslib warnings as
one line per file, progress bars on a terminal (and none with --quiet), `genolake.plot`, `Lake.__repr__`, and
the README's notebook install line."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE_VCFS
from ingest_helpers import run_cli
from query_fixtures import *  # noqa: F403 - the sample_lake and opened fixtures
from query_fixtures import SampleLake

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    lake = tmp_path_factory.mktemp("demo") / "demo-lake"
    res = run_cli("demo", "--lake", str(lake), "--workers", "0")
    assert res.returncode == 0, res.stderr
    return lake, res


def test_demo_says_where_the_key_is_and_prints_no_empty_section(demo_run: tuple[Path, Any], key_dir: Path) -> None:
    lake, res = demo_run
    out = res.stdout
    import json

    lake_id = json.loads((lake / "genolake.json").read_text())["lake_id"] if (lake / "genolake.json").exists() else ""
    assert f"The pseudonymisation key of this lake is {key_dir}" in out
    assert lake_id in out and "back it up" in out and "does not share the key" in out
    assert not re.search(r"^\s*annotations:\s*$", out, re.M), "an empty annotations line"
    assert not re.search(r"^[a-z_]+:\s*$", out, re.M), out
    assert "<genolake.Lake" in out and "3 institutions (east, north, south), 300 samples" in out
    assert "[W::" not in res.stderr  # htslib's own text never reaches the terminal raw


def test_ingest_collects_htslib_warnings_into_one_line_per_file(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    res = run_cli("ingest", "--lake", str(lake), "-i", "north", "--workers", "2", str(SAMPLE_VCFS / "north.vcf.gz"))
    assert res.returncode == 0, res.stderr
    assert "[W::" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if "htslib warning" in x]
    assert len(lines) == 1 and re.fullmatch(
        r"file 1 of 1 \(sha256 [0-9a-f]{12}\): 1 htslib warning: bcf_hdr_check_sanity x1 \(first: AC should be "
        r"declared as Number=A\); --verbose for the full text", lines[0]), res.stderr
    assert "north.vcf.gz" not in res.stderr  # input file names are sensitive
    verbose = run_cli("-v", "ingest", "--lake", str(lake), "-i", "east", "--workers", "2", str(SAMPLE_VCFS / "east.bcf"))
    assert verbose.returncode == 0, verbose.stderr
    assert "file 1 of 1: [W::bcf_hdr_check_sanity] AC should be declared as Number=A" in verbose.stderr


def test_hail_engine_without_hail_says_it_needs_its_own_environment(sample_lake: SampleLake) -> None:
    pytest.importorskip("typer")
    try:
        import hail  # noqa: F401
        pytest.skip("hail is installed here")
    except ImportError:
        pass
    res = run_cli("aggregate", "--lake", str(sample_lake.path), "--engine", "hail", "--workers", "0")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "give it its own environment" in res.stderr
    assert "python -m venv hail-env && . hail-env/bin/activate && pip install 'genolake[hail]'" in res.stderr
    assert "pip install -e '.[hail]'" in res.stderr


def _run_on_a_terminal(args: list[str], timeout: float = 240) -> tuple[int, str]:
    """`python -m genolake ARGS` with stderr on a pseudo-terminal (as in a shell); returns (code, stderr text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "genolake", *args], stdout=subprocess.DEVNULL, stderr=slave,
                            env=dict(os.environ, COLUMNS="150"))
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=30)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # the terminal's colour and cursor codes


def test_progress_bar_with_counts_rates_and_elapsed_time(sample_lake: SampleLake, tmp_path: Path) -> None:
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(sample_lake.path, lake)
    code, err = _run_on_a_terminal(["aggregate", "--lake", str(lake), "--workers", "0"])
    tail = err[-1500:]
    assert code == 0, tail
    assert re.search(r"aggregate: [\d,]+ sites, [\d,]+ sites/s", err), tail  # the bar's description
    assert re.search(r"[1-9]\d*/[1-9]\d* tasks", err), tail  # tasks done of all
    assert re.search(r"aggregate: [\d,]+ sites in \d+\.\d s \([\d,]+ sites/s\)", err), tail  # the closing line
    code, err = _run_on_a_terminal(["aggregate", "--lake", str(lake), "--workers", "0", "--quiet"])
    assert code == 0 and err.strip() == "", err


def test_plot_functions_return_figures(opened: Any) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    import genolake.plot as gp

    freqs = opened.sql("SELECT * FROM site_frequencies")
    assert isinstance(gp.af_spectrum(freqs), Figure)
    assert isinstance(gp.af_spectrum(freqs.to_pandas(), folded=True), Figure)
    fig = gp.af_compare(freqs, "north", "south", max_diff=0.1, min_an=20)
    # the discordant variants, brute force over the same rows
    rows = freqs.to_pylist()
    side = {s: {(r["contig"], r["pos"], r["ref"], r["alt"]): r["af"] for r in rows
                if r["scope"] == s and r["an"] >= 20 and r["af"] is not None} for s in ("north", "south")}
    want = sorted(k for k in set(side["north"]) & set(side["south"]) if abs(side["north"][k] - side["south"][k]) > 0.1)
    assert sorted((d["contig"], d["pos"], d["ref"], d["alt"]) for d in fig.discordant) == want
    report = opened.variant("20-10019093-A-G")
    fig = gp.carriers_by_phenotype(report, "sex")
    assert isinstance(fig, Figure) and fig.axes[0].get_xlabel() == "sex"
    from genolake.errors import UserInputError

    with pytest.raises(UserInputError, match="no values of 'bogus'; it has: "):
        gp.carriers_by_phenotype(report, "bogus")
    with pytest.raises(UserInputError, match="no variant of scope 'nowhere'"):
        gp.af_compare(freqs, "north", "nowhere")


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None\n"
            "import genolake.plot as gp\n"
            "from genolake.errors import MissingExtraError\n"
            "try:\n    gp.af_spectrum([{'scope': 'joint', 'af': 0.1}])\n"
            "except MissingExtraError as e:\n    print(e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'genolake[plot]'" in res.stdout, res.stderr
    toml = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^plot = \["matplotlib', toml, re.M)


def test_lake_repr(opened: Any) -> None:
    text = repr(opened)
    assert text.startswith("<genolake.Lake ") and text.endswith(">")
    assert "GRCh37: 3 institutions (east, north, south), 100 samples" in text
    n = opened.sql("SELECT count(*) AS n FROM (SELECT DISTINCT contig, pos, ref, alt FROM variant_files)")
    assert f"{n.column('n')[0].as_py():,} variants" in text
    # the session's sample lake may have been aggregated/annotated by an earlier test: the repr says which
    tables = opened.engine.catalog.tables
    assert ("aggregated" if "allele_frequencies" in tables else "not aggregated") in text
    assert ("not annotated" if "annotations" not in tables else "annotated") in text


def test_readme_notebook_section_starts_with_the_install_line() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Reading the lake in a notebook", 1)[1]
    first_code = section.split("```", 2)[1]
    assert "pip install -e '.[notebook]'" in section.split("```python", 1)[0] + first_code
    extras = (REPO / "pyproject.toml").read_text()
    notebook = re.search(r"^notebook = \[(.*)\]", extras, re.M)
    assert notebook and all(p in notebook.group(1) for p in ("pandas", "polars", "matplotlib"))


def test_progress_knows_its_length_before_the_first_task_ends(tmp_path: Path) -> None:
    """The bar shows `0/N tasks` from the start (it showed `0/?` until the first task ended, for the whole run of
    a one-task job)."""
    from genolake.compute.aggregate import aggregate
    from genolake.ingest.pipeline import ingest

    calls: list[tuple[int, ...]] = []
    lake = tmp_path / "lake"
    ingest(lake, "north", [SAMPLE_VCFS / "north.vcf.gz"], workers=0, progress=lambda *a: calls.append(a))
    assert calls[0][:2] == (0, 0) and calls[0][2] >= 1 and calls[-1][1] == calls[0][2]
    calls.clear()
    aggregate(lake, workers=0, progress=lambda *a: calls.append(a))
    assert calls[0][:2] == (0, 0) and calls[0][2] >= 1 and calls[-1][1] == calls[0][2]
