"""Shared by the VCF writers: atomic output (temporary name, index, rename), the lake's version, header text."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genolake.errors import GenolakeError, UserInputError

COUNTING_RULE = (
    "genolake counting rule: AC = copies of the split allele among counted alleles; AN = counted non-missing "
    "alleles: samples of files listing the site add 2 (or their stored call's called alleles), samples of files "
    "not listing it add their ploidy only for --absent-as-ref files or inside --callable-regions"
)


@dataclass
class Output:
    """Where a writer puts its result: ``tmp`` while it works, renamed to ``final`` with its index at the end."""

    final: Path
    kind: str  # "vcf.gz" or "bcf"
    tmp: Path

    @property
    def index_suffix(self) -> str:
        return ".tbi" if self.kind == "vcf.gz" else ".csi"


def output_kind(path: Path, allowed: tuple[str, ...] = ("vcf.gz", "bcf")) -> str:
    """``vcf.gz`` or ``bcf`` from the output name; anything else is refused with the names accepted."""
    name = path.name.lower()
    for kind, suffixes in (("vcf.gz", (".vcf.gz", ".vcf.bgz")), ("bcf", (".bcf",))):
        if name.endswith(suffixes) and kind in allowed:
            return kind
    names = " or ".join({"vcf.gz": "OUT.vcf.gz", "bcf": "OUT.bcf"}[k] for k in allowed)
    raise UserInputError(f"-o {path}: the output name must end in {names} (bgzipped and indexed)")


@contextlib.contextmanager
def atomic_output(path: Path | str, *, allowed: tuple[str, ...] = ("vcf.gz", "bcf")) -> Iterator[Output]:
    """Yield an :class:`Output` whose ``tmp`` (same folder, hidden name) the caller writes; on success the
    caller has indexed it (see :func:`finish`), on any error the temporary file and index are removed, so no
    partial output is ever left under the final name."""
    final = Path(path)
    kind = output_kind(final, allowed)
    if not final.parent.exists():
        raise UserInputError(f"-o {final}: folder {final.parent} does not exist")
    suffix = ".vcf.gz" if kind == "vcf.gz" else ".bcf"
    tmp = final.parent / f".{final.name}.{os.getpid()}.partial{suffix}"
    out = Output(final, kind, tmp)
    try:
        yield out
    except BaseException:
        for p in (tmp, Path(str(tmp) + ".tbi"), Path(str(tmp) + ".csi")):
            with contextlib.suppress(OSError):
                p.unlink()
        raise


def finish(out: Output) -> Path:
    """Index ``out.tmp`` (tabix for VCF.gz, CSI for BCF) and rename file and index into place."""
    import pysam

    try:
        if out.kind == "vcf.gz":
            pysam.tabix_index(str(out.tmp), preset="vcf", force=True)
        else:
            from pysam import bcftools

            bcftools.index("--csi", "-f", str(out.tmp), catch_stdout=False)
    except (OSError, pysam.utils.SamtoolsError) as exc:  # a bug of ours, not the user's: say what failed
        raise GenolakeError(f"{out.final}: indexing the output failed ({exc}); nothing was written") from None
    idx = Path(str(out.tmp) + out.index_suffix)
    final_idx = Path(str(out.final) + out.index_suffix)
    os.replace(out.tmp, out.final)
    os.replace(idx, final_idx)
    other = Path(str(out.final) + (".csi" if out.index_suffix == ".tbi" else ".tbi"))
    if other.exists():  # a stale index of an earlier output of the other kind would shadow the new one
        other.unlink()
    return out.final


def header_value(text: str) -> str:
    """A value for a structured header line: quoted, with quotes and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_INFO_KEY = re.compile(r"^[A-Za-z_][0-9A-Za-z_.]*$")


def info_key(text: str) -> str:
    """``text`` made a valid INFO key (VCF 4.3: ``[A-Za-z_][0-9A-Za-z_.]*``): other characters become ``_``."""
    key = re.sub(r"[^0-9A-Za-z_.]", "_", text)
    if not _INFO_KEY.match(key):
        key = "_" + key
    return key


def fmt_value(v: Any) -> str:
    """A value as a VCF INFO number: ``.`` for missing (None or NaN), floats with 6 significant digits."""
    if v is None:
        return "."
    if isinstance(v, float):
        return "." if v != v else f"{v:.6g}"
    return str(v)
