"""Reading the sample IDs a user gives: a list file (one ID per line) or the sample columns of a VCF/BCF header.

Only the IDs are read; they are pseudonymised in memory and never written anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from genolake.errors import BadInputFileError, UserInputError

_PSEUDONYM = re.compile(r"^[0-9a-f]{32}$")
_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


def is_vcf(path: Path) -> bool:
    """True if ``path`` looks like a VCF/BCF (by name or by its first bytes)."""
    if path.name.lower().endswith(_VCF_SUFFIXES):
        return True
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith((b"##fi", b"\x1f\x8b", b"BCF"))


def read_ids(path: Path | str, *, allow_vcf: bool = False) -> list[str]:
    """The IDs of a list file (one per line; blank lines and ``#`` comments skipped), or with ``allow_vcf``
    the sample names of a VCF/BCF header. Duplicates are dropped, order kept.

    A file with several fields on a line (a table, not a list), a binary file, or no ID at all is refused with
    one line naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    if is_vcf(path):
        if not allow_vcf:
            raise BadInputFileError(str(path), "is a VCF/BCF, not a list of sample IDs (one ID per line)")
        return _vcf_samples(path)
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise BadInputFileError(str(path), "is not a text list of sample IDs (one ID per line)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputFileError(str(path), "is not UTF-8 text; give one sample ID per line") from None
    ids: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if len(s.split()) > 1 or "," in s:
            raise BadInputFileError(str(path), "has several fields on one line; give one sample ID per line "
                                    "(for a table, cut its ID column first)", record=f"line {n}")
        ids.append(s)
    if not ids:
        raise BadInputFileError(str(path), "holds no sample ID (one ID per line)")
    return list(dict.fromkeys(ids))


def read_pseudonyms(path: Path | str) -> list[str]:
    """A list file of pseudonyms (32 lower-case hex digits each)."""
    ids = read_ids(path)
    for i, s in enumerate(ids):
        if not _PSEUDONYM.match(s.lower()):
            raise BadInputFileError(str(path), f"entry {i + 1} is not a pseudonym (32 hex digits, as in "
                                    "`samples.sample_id`); without --pseudonyms give raw sample IDs")
    return [s.lower() for s in ids]


def _vcf_samples(path: Path) -> list[str]:
    from cyvcf2 import VCF

    try:
        v = VCF(str(path), lazy=True)
        names = list(v.samples)
        v.close()
    except Exception:
        raise BadInputFileError(str(path), "cannot read its VCF/BCF header") from None
    if not names:
        raise BadInputFileError(str(path), "has no sample columns")
    return names
