"""The example notebooks (examples/*.ipynb) run top to bottom on a fresh demo lake, so they never rot.

Executed with nbclient in a real Jupyter kernel (about 30 s for both on the CI machine, so they run in the default
tier); every figure cell must produce a PNG and no cell may raise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


@pytest.fixture(scope="module")
def demo_lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nb") / "genolake-demo-lake"  # built by the first notebook, reused by the next


def test_there_are_two_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"geneticist_session.ipynb", "comparing_institutions.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, demo_lake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("GENOLAKE_DEMO_LAKE", str(demo_lake_dir))
    repo = str(EXAMPLES.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([repo, *filter(None, [os.environ.get("PYTHONPATH")])]))
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    pngs = texts = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", out
            data = out.get("data", {})
            pngs += "image/png" in data
            texts += bool(data.get("text/plain") or data.get("text/html"))
            if "image/png" not in data and "text/plain" in data:
                assert "<Figure" not in data["text/plain"], "a figure was not rendered"
    assert pngs >= 3 and texts >= 4
    # the committed copy has its outputs (figures show on the repository page)
    committed = nbformat.read(path, as_version=4)
    assert sum("image/png" in o.get("data", {}) for c in committed.cells if c.cell_type == "code"
               for o in c.outputs) >= 3
