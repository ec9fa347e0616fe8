"""The input of `genolake annotate-vcf` as the text of its records: VCF and (b)gzipped VCF read a block of bytes at a
time (the records of a block as lines), BCF through htslib one record at a time.

Lines are kept byte for byte (only the line end is stripped) so a record is written back unchanged. A read error
(truncated or corrupt gzip) names the file and the last record read, as :func:`text_records` reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from genolake.errors import BadInputFileError

BLOCK_BYTES = 1 << 20  # decompressed bytes read at a time


def text_records(path: str, fmt: str) -> Iterator[tuple[int, list[str]]]:
    """Records of a VCF or (b)gzipped VCF as the text fields they were written with, one line at a time."""
    import gzip
    import zlib

    opener: Any = gzip.open if fmt in ("vcf.gz", "vcf.gzip") else open
    rec_no = 0
    try:
        with opener(path, "rt", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            for line in fh:
                if line.startswith("#"):
                    continue
                rec_no += 1
                yield rec_no, line.rstrip("\r\n").split("\t", 8)
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
        raise BadInputFileError(path, f"cannot read: {exc}", record=f"after record {rec_no}") from None


def text_blocks(path: str, fmt: str, block_bytes: int | None = None) -> Iterator[list[str]]:
    """The record lines of a VCF or (b)gzipped VCF, a block at a time: header lines left out, line ends stripped,
    decoded as :func:`text_records` decodes them (UTF-8, other bytes kept as surrogates).

    On a read error the file is read again by :func:`text_records` from the first record not yet given, so the
    error (and any bad record before it) is reported exactly as that line-by-line reader reports it."""
    import gzip
    import zlib

    opener: Any = gzip.open if fmt in ("vcf.gz", "vcf.gzip") else open
    size = block_bytes or BLOCK_BYTES
    given = 0
    try:
        with opener(path, "rb") as fh:
            pending: list[bytes] = []  # the start of a line not ended yet (a long line: many blocks, joined once)
            while True:
                data = fh.read(size)
                if not data:
                    break
                cut = data.rfind(b"\n") + 1
                if not cut:
                    pending.append(data)
                    continue
                lines = _lines(b"".join([*pending, data[:cut - 1]]))
                pending = [data[cut:]]
                given += len(lines)
                yield lines
            tail = b"".join(pending)
            if tail:  # a last line without a line end
                lines = _lines(tail)
                given += len(lines)
                yield lines
    except (OSError, EOFError, zlib.error):
        for rec_no, fields in text_records(path, fmt):  # raises the error with the line reader's record number
            if rec_no > given:
                yield ["\t".join(fields)]


def _lines(raw: bytes) -> list[str]:
    """Record lines of ``raw`` (whole lines, the last line end removed)."""
    text = raw.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if "\r" in text:
        lines = [ln.rstrip("\r") for ln in lines]
    if text.startswith("#") or "\n#" in text:
        lines = [ln for ln in lines if not ln.startswith("#")]
    return lines


def htslib_records(reader: Any, path: str, htslib_error: Callable[[], str | None]) -> Iterator[list[str]]:
    """Records of a BCF (or any file htslib reads) as VCF text lines, one per block, checked by htslib as they
    are read."""
    from genolake.ingest.reader import message_text

    records = iter(reader)
    rec_no = 0
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except Exception as exc:  # cyvcf2 raises a bare Exception on a record htslib cannot parse
            detail = htslib_error() or str(exc)
            raise BadInputFileError(path, f"cannot parse record: {message_text(detail)}", record=f"record {rec_no + 1}") from None
        rec_no += 1
        err = htslib_error()
        if err is not None:  # do not touch a record htslib failed to parse
            raise BadInputFileError(path, f"cannot parse record: {message_text(err)}", record=f"record {rec_no}")
        yield [str(rec).rstrip("\n")]
