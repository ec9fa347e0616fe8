"""Imports deferred to first use, for the command line's cold start.

``genolake query variant`` is answered by DuckDB and numpy alone, yet nearly every module of the query path names
pyarrow (its import costs 40-60 ms of CPU, the most of any dependency after numpy and DuckDB). Such a module
binds ``pa`` to a :class:`LazyModule` at run time (type checkers see the real import)::

    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        import pyarrow as pa
    else:
        from genolake.lazy import LazyModule

        pa = LazyModule("pyarrow")

and pyarrow is imported the first time ``pa.<anything>`` is evaluated. The lake's schema declares its column
types with :data:`arrow_types` (``arrow_types.int32()`` instead of ``pyarrow.int32()``), resolved to pyarrow
types by :func:`resolve_type` on first use (``Column.type``). A test keeps the cold command free of pyarrow
(tests/test_cli_cold.py).
"""

from __future__ import annotations

import importlib
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["DeferredType", "LazyModule", "arrow_types", "resolve_type"]


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it on the first attribute read and forwards every attribute
    read to the module itself (never a copy: a patched attribute, as tests monkeypatch ``write_table``, is
    seen). A module type, pickled as an import of the module it names."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):  # probes (copy, pickle, inspect) do not import
            raise AttributeError(attr)
        module = self.__dict__.get("_lazy_module")
        if module is None:
            module = importlib.import_module(self.__dict__["_lazy_name"])
            self.__dict__["_lazy_module"] = module
        return getattr(module, attr)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled (cloudpickle: a Dask task's closure) as an import of the module it names."""
        return importlib.import_module, (self.__dict__["_lazy_name"],)

    def __repr__(self) -> str:
        return f"<lazily imported module {self.__dict__['_lazy_name']!r}>"


@dataclass(frozen=True)
class DeferredType:
    """A pyarrow type not built yet: ``factory(*args, **dict(kwargs))`` of module pyarrow."""

    factory: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


class _ArrowTypes:
    """pyarrow's type factories, deferred: ``arrow_types.list_(arrow_types.string())`` is a DeferredType."""

    def __getattr__(self, factory: str) -> Any:
        if factory.startswith("__"):
            raise AttributeError(factory)

        def make(*args: Any, **kwargs: Any) -> DeferredType:
            return DeferredType(factory, args, tuple(sorted(kwargs.items())))

        return make


arrow_types: Any = _ArrowTypes()
_RESOLVED: dict[DeferredType, Any] = {}


def resolve_type(t: Any) -> pa.DataType:
    """The pyarrow type of ``t`` (a :class:`DeferredType`, built once per process; anything else unchanged)."""
    if not isinstance(t, DeferredType):
        return t
    got = _RESOLVED.get(t)
    if got is None:
        import pyarrow

        got = getattr(pyarrow, t.factory)(*(resolve_type(a) for a in t.args), **dict(t.kwargs))
        _RESOLVED[t] = got
    return got
