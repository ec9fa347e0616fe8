"""The lake core (schema, store, genotypes, errors, contigs, pseudonym, duck, version, lazy) imports nothing above it:
every stage (ingest, query, compute, samples, serve, ...) stands on it, never the other way round. Checked on the
source, including imports inside functions, so a lazy import cannot slip an upward dependency in."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "genolake"
CORE = ("schema", "store", "genotypes", "errors", "contigs", "pseudonym", "duck", "version", "lazy")


def _genolake_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "genolake")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "genolake":
            if node.module == "genolake":  # `from genolake import x`: x is a module or a name of the package API
                out.update(f"genolake.{a.name}" for a in node.names)
            else:
                out.add(node.module)
    return out


def test_the_core_imports_only_the_core() -> None:
    allowed = {f"genolake.{m}" for m in CORE}
    for name in CORE:
        got = _genolake_imports(PACKAGE / f"{name}.py")
        assert got <= allowed, f"genolake/{name}.py imports {sorted(got - allowed)}, above the core"


def test_every_table_is_declared_in_schema() -> None:
    """No module declares a lake table of its own (a module-level ``schema.Table(...)``): `schema.TABLES` is
    complete without importing any stage."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "schema.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        names = {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom)
                 and node.module == "genolake.schema" for a in node.names if a.name in ("Table", "register")}
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                for call in ast.walk(node.value):
                    if not isinstance(call, ast.Call):
                        continue
                    f = call.func
                    by_name = isinstance(f, ast.Name) and f.id in names
                    by_module = isinstance(f, ast.Attribute) and f.attr in ("Table", "register") \
                        and isinstance(f.value, ast.Name) and f.value.id == "schema"
                    assert not (by_name or by_module), f"{path}:{node.lineno} declares a table"
