"""Named exceptions. Every message says what went wrong and what to do about it.

The CLI turns any :class:`GenolakeError` into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.

Exit codes of every ``genolake`` command (README "Exit codes"):

- ``0``: done. A query whose answer is empty says why on stderr (a variant no file lists, a ``--where`` value
  no sample has) and still exits 0; an answer that can only be empty because of a typo (an unknown contig,
  phenotype, institution or option value) is an error, exit 2.
- ``1``: the command failed: an input file is malformed (:class:`BadInputFileError`, naming the file and the
  record or line), the lake refuses the change (:class:`LakeStateError`, :class:`BuildMismatchError`), the key is
  missing (:class:`KeyFileError`), a Dask worker died (:class:`WorkerLostError`), an optional extra is not installed (:class:`MissingExtraError`), or a bug
  (a Python traceback).
- ``2``: bad usage: an unknown option or command, a malformed argument or expression, a name the lake does not
  have, a ``--lake`` folder that is not a lake (:class:`UserInputError` and its subclasses; typer's own usage
  errors also exit 2).
- ``130``: interrupted (Ctrl-C); nothing was committed.
"""

from __future__ import annotations


class GenolakeError(Exception):
    """Base class for every error a user can cause and fix."""

    exit_code = 1

    def __reduce__(self) -> tuple[object, ...]:
        # picklable whatever a subclass's __init__ takes: Dask workers send errors back to the client
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[GenolakeError], args: tuple[object, ...], state: dict[str, object]) -> GenolakeError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class UserInputError(GenolakeError):
    """A command-line argument or expression is malformed (exit code 2)."""

    exit_code = 2


class BadInputFileError(GenolakeError):
    """A VCF/BCF or table is malformed; the message names the file and the record or line."""

    def __init__(self, path: str, message: str, *, record: str | None = None) -> None:
        self.path = path
        self.record = record
        where = f"{path}: {record}: " if record else f"{path}: "
        super().__init__(where + message)


class BuildMismatchError(GenolakeError):
    """A file's reference build differs from the lake's."""


class LakeNotFoundError(UserInputError):
    """The path given with --lake is not a genolake lake."""


class LakeStateError(GenolakeError):
    """The lake refuses an operation given its current contents (duplicate samples, ...)."""


class KeyFileError(GenolakeError):
    """The per-lake pseudonymisation key is missing or does not belong to the lake."""


class MissingExtraError(GenolakeError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, extra: str, package: str, *, how: str | None = None) -> None:
        super().__init__(
            f"this needs the optional package {package!r}: " + (how or f"pip install 'genolake[{extra}]'")
        )


class WorkerLostError(GenolakeError):
    """A Dask worker process died (killed, out of memory) or the scheduler went away while tasks ran; nothing
    was committed."""


class LakeWriteError(GenolakeError):
    """The disk refused a write to the lake: full, over quota, read-only or not writable (the message says
    what to do; a commit interrupted this way is completed by the next run of the same command)."""


_WRITE_REASONS = {  # errno -> (what happened, what to do)
    28: ("the disk holding the lake is full", "free space on it"),  # ENOSPC
    122: ("the disk quota of the lake's folder is used up", "free space or raise the quota"),  # EDQUOT
    30: ("the lake is on a read-only file system", "remount it read-write (or copy the lake to writable storage)"),
    13: ("no permission to write in the lake folder", "run as a user who may write there"),  # EACCES
    1: ("no permission to write in the lake folder", "run as a user who may write there"),  # EPERM
}
_WRITE_TEXT = {
    "No space left on device": 28, "os error 28": 28, "Disk quota exceeded": 122, "os error 122": 122,
    "Read-only file system": 30, "os error 30": 30, "Permission denied": 13, "os error 13": 13,
}


def write_failure(exc: BaseException) -> tuple[str, str] | None:
    """(what happened, what to do) if ``exc`` is the disk refusing a write (by errno, or by the text of an
    error that a library such as deltalake or pyarrow wrapped), else None."""
    import errno as _errno

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        code = getattr(e, "errno", None)
        if code in _WRITE_REASONS and code in (_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES, _errno.EPERM):
            return _WRITE_REASONS[code]
        text = str(e)
        for needle, c in _WRITE_TEXT.items():
            if needle in text:
                return _WRITE_REASONS[c]
        e = e.__cause__ or e.__context__
    return None
