"""Start-up of the command line: build only the command the command line names.

When a typer app runs, typer turns the signature of every registered command into click options (it inspects
some sixty functions and evaluates their annotations), which took 0.1-0.2 s of every command's start. A
command line names one command (``genolake query variant ...``), so :func:`narrowed` gives a copy of the app
holding only that command (and its group); anything else (``--help``, no command, an unknown name, options
before the command other than ``-v``) gets the whole app, so help texts and error messages are unchanged.

:func:`prepare` sets up the process for the named command before anything imports numpy: a command that does no
linear algebra (``query variant``: numpy's bincount, unique and isin only) has OpenBLAS start no thread pool.
Loading numpy's OpenBLAS with its default of one thread per core cost 20-30 ms of CPU of the cold command (median
of 15 interleaved runs on the 2-core benchmark machine, 350 -> 321 ms), for threads that command never uses.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["narrowed", "prepare"]

_ROOT_FLAGS = ("-v", "--verbose")  # the root callback's options (flags: they take no value)
# Commands that use no BLAS (numpy's linear algebra), so OpenBLAS needs no threads for them
_NO_BLAS = (("query", "variant"),)


def _command_path(argv: Sequence[str]) -> tuple[str, ...]:
    """The command words at the start of ``argv`` (after the root's flags), up to the first option."""
    i = 0
    while i < len(argv) and argv[i] in _ROOT_FLAGS:
        i += 1
    words: list[str] = []
    while i < len(argv) and len(words) < 2 and not argv[i].startswith("-"):
        words.append(argv[i])
        i += 1
    return tuple(words)


def prepare(argv: Sequence[str]) -> None:
    """Settings of this process for the command ``argv`` names, made before numpy is imported: one OpenBLAS
    thread for a command that does no linear algebra (unless the user set ``OPENBLAS_NUM_THREADS``)."""
    path = _command_path(argv)
    if any(path[: len(c)] == c for c in _NO_BLAS) and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _name(info: Any) -> str | None:
    if info.name:
        return str(info.name)
    callback = info.callback
    return callback.__name__.lower().replace("_", "-") if callback is not None else None


def _with(app: Any, commands: list[Any], groups: list[Any]) -> Any:
    small = copy.copy(app)
    small.registered_commands = commands
    small.registered_groups = groups
    return small


def narrowed(app: Any, argv: Sequence[str]) -> Any:
    """``app`` (a typer.Typer) with only the command ``argv`` (the arguments after the program name) runs."""
    i = 0
    while i < len(argv) and argv[i] in _ROOT_FLAGS:
        i += 1
    if i >= len(argv) or argv[i].startswith("-"):
        return app
    name = argv[i]
    found = [c for c in app.registered_commands if _name(c) == name]
    if found:
        return _with(app, found, [])
    groups = [g for g in app.registered_groups if g.name == name]
    if len(groups) != 1 or groups[0].typer_instance is None:
        return app
    group = groups[0]
    sub = group.typer_instance
    j = i + 1
    if (sub.registered_callback or sub.info.callback or sub.registered_groups  # (typer's placeholders are falsy)
            or j >= len(argv) or argv[j].startswith("-")):
        return _with(app, [], [group])
    found = [c for c in sub.registered_commands if _name(c) == argv[j]]
    if not found:
        return _with(app, [], [group])
    small_sub = copy.copy(sub)
    small_sub.registered_commands = found
    small_group = copy.copy(group)
    small_group.typer_instance = small_sub
    return _with(app, [], [small_group])
