"""Opening VCF/BCF files with cyvcf2: format detection, checksums, header checks, htslib messages.

htslib reports many problems only as text on the C-level stderr (``[W::vcf_parse] ...``,
``[E::bcf_hdr_add_sample] Duplicated sample name``). :func:`htslib_messages` captures file descriptor 2
while a file is read so that such a problem becomes one clear :class:`BadInputFileError` instead of
noise on the terminal.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genolake.contigs import detect_build, style_of
from genolake.errors import BadInputFileError

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


@dataclass
class Source:
    """What genolake knows about one input file before reading its records."""

    path: str
    format: str  # vcf | vcf.gz | vcf.gzip | bcf
    sha256: str
    size: int
    samples: list[str]
    header_lines: list[str]
    build: str | None
    contig_style: str
    index: str | None  # path of a .tbi/.csi index, if present and usable
    header_contigs: dict[str, int | None] = field(default_factory=dict)
    has_fields: dict[str, str] = field(default_factory=dict)  # FORMAT field -> Type
    stat: tuple[int, ...] = ()  # (size, mtime_ns, ctime_ns, inode, device) when the checksum was taken
    warnings: list[str] = field(default_factory=list)  # htslib's non-fatal messages on opening the header

    @property
    def file_id(self) -> str:
        return "f" + self.sha256[:24]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def sniff_format(path: str) -> str:
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b":
        is_bgzf = len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"
        with gzip.open(path, "rb") as gz:
            try:
                magic = gz.read(5)
            except (OSError, EOFError, zlib.error) as exc:
                raise BadInputFileError(path, f"corrupt gzip data ({exc})") from None
        if magic[:3] == b"BCF":
            return "bcf"
        return "vcf.gz" if is_bgzf else "vcf.gzip"
    if head[:3] == b"BCF":
        return "bcf"  # uncompressed BCF
    return "vcf"


def file_state(path: str) -> tuple[int, ...]:
    """What changes when a file's bytes change (or the name points to another file): size, modification and
    change times (ns), inode and device."""
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def check_unchanged(src: Source) -> None:
    """Refuse a file that changed since its checksum was taken: the lake would record a checksum that does not
    describe the records read (issue 15.3). Called just before the commit."""
    try:
        now = file_state(src.path)
    except OSError as exc:
        raise BadInputFileError(src.path, f"cannot be read any more ({exc.strerror or exc}); nothing was changed") \
            from None
    if src.stat and now != src.stat:
        raise BadInputFileError(
            src.path, "the file changed while it was being ingested (its size or modification time is not what it "
            "was when its checksum was taken); nothing was changed: ingest it again once it is complete")


COLUMN_CHECK_RECORDS = 1000


def check_sample_columns(path: str, fmt: str, n_samples: int, *, records: int = COLUMN_CHECK_RECORDS) -> None:
    """Refuse a text VCF whose first ``records`` data lines have more sample columns than the header names
    (htslib ignores the extra columns silently; usually a header that lost samples). BCF cannot have them."""
    if fmt == "bcf":
        return
    opener: Any = gzip.open if fmt in ("vcf.gz", "vcf.gzip") else open
    want = 9 + n_samples
    try:
        with opener(path, "rb") as fh:
            k = 0
            for line in fh:
                if line.startswith(b"#"):
                    continue
                k += 1
                got = line.count(b"\t") + 1
                if got > want:
                    raise BadInputFileError(path, f"{got - 9} sample columns but the header names {n_samples} "
                                            "(the extra columns would be ignored)", record=f"record {k}")
                if k >= records:
                    return
    except (OSError, EOFError, zlib.error):
        return  # unreadable data is reported, with its record, by the reader


def sha256_of(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def check_compression(path: str, fmt: str) -> None:
    """Refuse truncated compressed files before reading a single record."""
    if fmt in ("vcf.gz", "bcf") and sniff_gz(path):
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 28))
            tail = fh.read()
        if tail != BGZF_EOF:
            raise BadInputFileError(path, "truncated file: the BGZF end-of-file marker is missing (incomplete copy?)")
    elif fmt == "vcf.gzip":
        try:
            with gzip.open(path, "rb") as gz:
                while gz.read(1 << 20):
                    pass
        except (OSError, EOFError, zlib.error) as exc:
            raise BadInputFileError(path, f"truncated or corrupt gzip data ({exc})") from None


def sniff_gz(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def find_index(path: str, fmt: str) -> str | None:
    if fmt not in ("vcf.gz", "bcf"):
        return None
    for ext in (".csi", ".tbi") if fmt == "bcf" else (".tbi", ".csi"):
        cand = path + ext
        if os.path.exists(cand) and os.path.getmtime(cand) >= os.path.getmtime(path) - 1:
            return cand
    return None


class _Capture:
    """The temporary file fd 2 points at while reading, with a cheap "anything new?" check."""

    def __init__(self, fileno: int) -> None:
        self.fileno = fileno
        self.seen = 0

    def fork(self) -> _Capture:
        """A reader of the same capture from this reader's position on, with its own position (one per reader
        thread: a line read by one thread stays new to the others)."""
        other = _Capture(self.fileno)
        other.seen = self.seen
        return other

    def new_error(self) -> str | None:
        """The first new htslib error line written since the last call, if any (one fstat when quiet)."""
        size = os.fstat(self.fileno).st_size
        if size == self.seen:
            return None
        text = os.pread(self.fileno, size - self.seen, self.seen).decode("utf-8", "replace")
        self.seen = size
        for line in text.splitlines():
            if "[E::" in line:
                return line
        return None


_CURRENT: list[_Capture] = []


def htslib_error() -> str | None:
    """Error text htslib printed since the last call (while :func:`htslib_messages` is active).

    Call it right after cyvcf2 hands over a record and before touching its fields: on some parse errors htslib
    returns a half-filled record whose fields crash the process when read.
    """
    return _CURRENT[-1].new_error() if _CURRENT else None


def htslib_capture() -> _Capture | None:
    """The capture :func:`htslib_error` reads (None outside :func:`htslib_messages`), for a per-record loop that
    checks ``os.fstat(capture.fileno).st_size != capture.seen`` itself before calling ``capture.new_error()``."""
    return _CURRENT[-1] if _CURRENT else None


@contextlib.contextmanager
def htslib_messages() -> Iterator[list[str]]:
    """Capture C-level stderr (htslib's messages) into a list, filled when the block exits."""
    messages: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        _CURRENT.append(_Capture(tmp.fileno()))
        try:
            yield messages
        finally:
            _CURRENT.pop()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            messages.extend(line for line in text.splitlines() if line.strip())


_FATAL = re.compile(r"\[E::")


def fatal_messages(messages: list[str]) -> list[str]:
    return [m for m in messages if _FATAL.search(m)]


def header_samples(path: str, *, limit: int = 64 << 20) -> list[str]:
    """Sample names of a VCF/BCF read straight from its header text (without htslib: used when htslib refused
    the header, to keep the names out of the message that is passed on). Empty if the header cannot be read."""
    import struct

    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener: Any = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            head = fh.read(5)
            if head[:3] == b"BCF":
                (n,) = struct.unpack("<I", fh.read(4))
                text = fh.read(min(n, limit)).decode("utf-8", "replace")
            else:
                text = (head + fh.read(limit)).decode("utf-8", "replace")
    except (OSError, EOFError, zlib.error, struct.error):
        return []
    for line in text.split("\n"):
        if line.startswith("#CHROM"):
            return line.rstrip("\r").split("\t")[9:]
        if line and not line.startswith("#"):
            break
    return []


def redact_samples(text: str, samples: list[str]) -> str:
    """``text`` with every sample name replaced by ``sample column N`` (1-based): quoted names always, bare
    names of three characters or more (a one- or two-character name would hit ordinary numbers and words)."""
    if not samples or not text:
        return text
    index: dict[str, int] = {}
    for i, s in enumerate(samples, start=1):
        index.setdefault(s, i)
    out = re.sub(r"(['\"`])([^'\"`\n]*)\1",
                 lambda m: f"sample column {index[m.group(2)]}" if m.group(2) in index else m.group(0), text)
    names = sorted((s for s in index if len(s) >= 3 and s in out), key=len, reverse=True)
    if names:
        pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, names)) + r")(?![\w.-])")
        out = pattern.sub(lambda m: f"sample column {index[m.group(1)]}", out)
    return out


def scrub(messages: list[str], path: str) -> list[str]:
    """htslib messages about ``path`` with its sample names replaced by their column (they are passed on to
    the user, logs and reports: raw sample IDs never leave genolake)."""
    if not messages:
        return messages
    samples = header_samples(path)
    return [redact_samples(m, samples) for m in messages]


def message_text(msg: str) -> str:
    """An htslib message without its ``[E::function]`` / ``[W::function]`` prefix, as genolake's errors and
    warnings quote it."""
    return re.sub(r"^\[[EW]::[^\]]*\]\s*", "", msg).strip()


def _first_problem(messages: list[str]) -> str:
    bad = fatal_messages(messages) or messages
    return message_text(bad[0] if bad else "unreadable")


def open_vcf(path: str, samples: bool = True, warnings: list[str] | None = None,  # type: ignore[no-untyped-def]
             threads: int | None = None):
    """Open with cyvcf2, turning htslib failures into a BadInputFileError; htslib's other messages are added to
    ``warnings`` if given (the CLI prints one summary line per file). ``threads``: htslib's decompression
    threads for a BGZF file (None: decompress in the calling thread)."""
    from cyvcf2 import VCF

    with htslib_messages() as messages:
        try:
            vcf = VCF(path, gts012=False, lazy=True, threads=threads)
        except (OSError, Exception) as exc:  # cyvcf2 raises bare Exception for a bad header
            vcf = None
            error: Exception | None = exc
        else:
            error = None
    if vcf is None:
        detail = _first_problem(messages) if messages else str(error)
        raise BadInputFileError(path, f"cannot read the VCF header: {scrub([detail], path)[0]}")
    # htslib drops a meta-information line it cannot parse (e.g. ##pedigreeDB=<ftp://...>) and reads on: that
    # loses nothing genolake stores, so it is not fatal.
    fatal = [m for m in fatal_messages(messages) if "Could not parse the header line" not in m]
    if fatal:
        vcf.close()
        raise BadInputFileError(path, f"malformed header: {scrub([_first_problem(fatal)], path)[0]}")
    if warnings is not None:
        warnings.extend(scrub(messages, path))
    return vcf


_FIELD = re.compile(r"^##FORMAT=<ID=([^,>]+).*?Type=(\w+)")
_CONTIG = re.compile(r"^##contig=<ID=([^,>]+)(?:.*?length=(\d+))?")


def inspect_source(path: str | Path) -> Source:
    """Checksum, format, header checks and samples of one input file (no records read yet)."""
    path = str(path)
    if not os.path.exists(path):
        raise BadInputFileError(path, "no such file")
    if os.path.isdir(path):
        raise BadInputFileError(path, "is a folder, not a VCF/BCF file")
    if os.path.getsize(path) == 0:
        raise BadInputFileError(path, "empty file (no VCF header)")
    try:
        fmt = sniff_format(path)
        check_compression(path, fmt)
        before = file_state(path)
        digest, size = sha256_of(path)
        state = file_state(path)
    except OSError as exc:  # unreadable (permissions, I/O error): one line, not a traceback
        raise BadInputFileError(path, f"cannot read the file: {exc.strerror or exc}") from None
    if state != before or size != state[0]:
        raise BadInputFileError(path, "the file changed while its checksum was being taken; ingest it again once "
                                      "it is complete")
    header_warnings: list[str] = []
    vcf = open_vcf(path, warnings=header_warnings)
    try:
        raw = vcf.raw_header
        samples = list(vcf.samples)
    finally:
        vcf.close()
    lines = raw.rstrip("\n").split("\n")
    if not lines or not lines[0].startswith("##fileformat=VCF"):
        raise BadInputFileError(path, "header line 1 must be ##fileformat=VCFv4.x", record="line 1")
    if not lines[-1].startswith("#CHROM"):
        raise BadInputFileError(path, "missing #CHROM header line")
    cols = lines[-1].split("\t")
    if cols[:8] != ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]:
        raise BadInputFileError(path, "#CHROM header line must be tab-separated with the 8 fixed VCF columns")
    if not samples:
        raise BadInputFileError(path, "no sample columns: genolake stores genotypes (use `genolake annotate` for sites-only VCFs)")
    check_sample_columns(path, fmt, len(samples))
    seen: set[str] = set()
    for i, s in enumerate(samples):
        if s in seen:
            raise BadInputFileError(path, f"duplicate sample name in header (sample column {i + 1})")
        seen.add(s)
    fields: dict[str, str] = {}
    contigs: dict[str, int | None] = {}
    for line in lines:
        m = _FIELD.match(line)
        if m:
            fields[m.group(1)] = m.group(2)
        c = _CONTIG.match(line)
        if c:
            contigs[c.group(1)] = int(c.group(2)) if c.group(2) else None
    # FORMAT/GT undeclared in the header is tolerated (htslib assumes the standard definition); a record
    # without GT values is refused when it is read.
    return Source(
        path=path,
        format=fmt,
        sha256=digest,
        size=size,
        samples=samples,
        header_lines=lines,
        build=detect_build(lines, path),
        contig_style=style_of(list(contigs)) if contigs else "plain",
        index=find_index(path, fmt),
        header_contigs=contigs,
        has_fields=fields,
        stat=state,
        warnings=header_warnings,
    )
