"""Opening an annotation source: type, compression, checksum, build, contig naming and index checks.

Sources are read as text (VCF lines are split by hand, not parsed by htslib): ClinVar releases use INFO
keys their header does not declare, and an annotation job only needs a few INFO keys of each record.
An index (``.tbi``/``.csi``) is used only after checking that it belongs to the file: a plain-gzip file
that ships a tabix index (seen in the wild) or an index built for another file is detected, and the file
is read sequentially instead (or refused, when the user promised an index with ``--require-index``).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from genolake.contigs import canonical_build, detect_build, to_style
from genolake.errors import BadInputFileError, BuildMismatchError, UserInputError
from genolake.ingest.normalise import is_symbolic, left_align, trim
from genolake.ingest.reader import sha256_of

log = logging.getLogger(__name__)

KINDS = ("genes", "clinvar", "dbsnp", "frequencies")
VCF_KINDS = ("clinvar", "dbsnp", "frequencies")

_BUILD_WORDS = (
    (re.compile(r"grch38|hg38|\bb38\b|hs38|grch_38", re.I), "GRCh38"),
    (re.compile(r"grch37|hg19|\bb37|hs37|human_g1k_v37|grch_37|\bhg37", re.I), "GRCh37"),
)
_REFSEQ_CHROM = re.compile(r"^NC_0000(\d\d)\.\d+$")
_BASES = re.compile(r"^[ACGTN]+$")


@dataclass(frozen=True)
class SourceFile:
    """One annotation source as it was checked before any record is read (picklable, sent to workers)."""

    kind: str
    path: str
    sha256: str
    size: int
    compression: str  # bgzf | gzip | none | bcf
    build: str
    build_from: str  # header | --source-build | file name | assumed
    file_date: str | None
    header_lines: tuple[str, ...] = ()
    index: str | None = None  # a checked, usable index
    index_note: str | None = None  # why an index present next to the file is not used
    prefix: str = ""  # frequencies: the column prefix
    options: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def source_id(self) -> str:
        """Short version id of the source: the first 16 hex digits of the file's SHA-256."""
        return self.sha256[:16]

    def option(self, key: str, default: str = "") -> str:
        return dict(self.options).get(key, default)


def lake_contig(name: str, style: str) -> str:
    """A source contig renamed to the lake's style; RefSeq chromosome accessions (NC_000001.11) included."""
    m = _REFSEQ_CHROM.match(name)
    if m:
        n = int(m.group(1))
        name = {23: "X", 24: "Y"}.get(n, str(n))
    elif name.startswith("NC_012920"):
        name = "MT"
    return to_style(name, style)


def compression_of(path: str) -> str:
    """`bgzf`, `gzip` (plain, not block-gzipped: no random access), `bcf` or `none`."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b":
        if len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC":
            with gzip.open(path, "rb") as gz:
                try:
                    magic = gz.read(3)
                except (OSError, EOFError, zlib.error) as exc:
                    raise BadInputFileError(path, f"corrupt gzip data ({exc})") from None
            return "bcf" if magic == b"BCF" else "bgzf"
        return "gzip"
    if head[:3] == b"BCF":
        return "bcf"
    return "none"


def open_text(path: str, compression: str) -> Iterator[str]:
    """Lines of a text source (gzip, bgzip or plain), newline stripped; a corrupt stream raises clearly."""
    if compression == "bcf":
        raise BadInputFileError(path, "BCF annotation sources are not supported; convert with `bcftools view -Oz`")
    fh = gzip.open(path, "rt", encoding="utf-8", errors="replace") if compression in ("gzip", "bgzf") else \
        open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    n = 0
    try:
        for line in fh:
            n += 1
            yield line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise BadInputFileError(path, f"truncated or corrupt compressed data after line {n} ({exc})") from None
    finally:
        fh.close()


def read_vcf_header(path: str, compression: str) -> list[str]:
    """The header lines of a VCF annotation source; refuses a file that is not a VCF."""
    lines: list[str] = []
    for line in open_text(path, compression):
        if not line.startswith("#"):
            break
        lines.append(line)
    if not lines or not lines[0].startswith("##fileformat=VCF"):
        raise BadInputFileError(path, "not a VCF: line 1 must be ##fileformat=VCFv4.x", record="line 1")
    if not lines[-1].startswith("#CHROM"):
        raise BadInputFileError(path, "not a VCF: the #CHROM header line is missing")
    cols = lines[-1].split("\t")
    if cols[:8] != ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]:
        raise BadInputFileError(path, "#CHROM header line must be tab-separated with the 8 fixed VCF columns")
    return lines


def guess_build_words(text: str) -> str | None:
    for rx, build in _BUILD_WORDS:
        if rx.search(text):
            return build
    return None


def resolve_build(
    kind: str, path: str, header_lines: list[str], *, given: str | None, lake_build: str, vcf: bool,
) -> tuple[str, str]:
    """(build, how it was found) of a source; refuses a build that differs from the lake's."""
    header_build: str | None = None
    if vcf:
        header_build = detect_build(header_lines, path)
    else:
        for line in header_lines:
            low = line.lower()
            if any(w in low for w in ("genome-build", "genome-version", "assembly", "description", "reference", "build")):
                header_build = guess_build_words(line)
                if header_build:
                    break
    want = canonical_build(given) if given else None
    if header_build and want and header_build != want:
        raise BuildMismatchError(f"{path}: the header says {header_build} but --source-build {want} was given")
    if header_build:
        build, how = header_build, "header"
    elif want:
        build, how = want, "--source-build"
    else:
        named = guess_build_words(os.path.basename(path))
        if named:
            build, how = named, "file name"
        else:
            log.warning("%s: the reference build is not stated; assuming the lake's (%s). Pass --source-build to "
                        "say it", os.path.basename(path), lake_build)
            build, how = lake_build, "assumed"
    if build != lake_build:
        raise BuildMismatchError(
            f"{path}: {kind} source is {build} (from its {how}) but the lake holds {lake_build} data; "
            f"use a {lake_build} release of the source or lift it over"
        )
    return build, how


def file_date(header_lines: list[str]) -> str | None:
    for line in header_lines:
        for key in ("##fileDate=", "##date:", "#!genome-date", "##date="):
            if line.startswith(key):
                return line[len(key):].strip() or None
    return None


def find_index(path: str) -> str | None:
    for ext in (".tbi", ".csi"):
        if os.path.exists(path + ext):
            return path + ext
    return None


def check_index(path: str, compression: str, sample: list[tuple[str, int, str]]) -> tuple[str | None, str | None]:
    """(usable index, note) for a VCF source. ``sample`` holds (contig, pos, line) of its first records.

    An index is used only if the file is bgzipped, the index opens, and fetching the first records'
    positions through it returns exactly those records.
    """
    idx = find_index(path)
    if idx is None:
        return None, None
    if compression != "bgzf":
        return None, f"{os.path.basename(idx)} cannot be used: the file is {compression}-compressed, not bgzipped"
    import pysam

    from genolake.ingest.reader import htslib_messages

    try:
        with htslib_messages():
            tbx = pysam.TabixFile(path, index=idx, encoding="latin-1")
            try:
                contigs = set(tbx.contigs)
                for chrom, pos, line in sample:
                    if chrom not in contigs:
                        return None, f"{os.path.basename(idx)} does not list contig {chrom} (index of another file?)"
                    got = [_utf8(x) for x in tbx.fetch(chrom, pos - 1, pos) if x.split("\t", 2)[1] == str(pos)]
                    if line not in got:
                        return None, f"{os.path.basename(idx)} does not match the file (index of another file?)"
            finally:
                tbx.close()
    except (OSError, ValueError) as exc:
        return None, f"{os.path.basename(idx)} cannot be used ({exc})"
    return idx, None


def inspect_vcf_source(
    kind: str, path: str | Path, *, lake_build: str, given_build: str | None = None, require_index: bool = False,
    prefix: str = "", options: tuple[tuple[str, str], ...] = (),
) -> SourceFile:
    """Checksum, header, build and index of a VCF source, before reading its records."""
    path = str(path)
    _exists(path)
    compression = compression_of(path)
    header = read_vcf_header(path, compression)
    build, how = resolve_build(kind, path, header, given=given_build, lake_build=lake_build, vcf=True)
    sample: list[tuple[str, int, str]] = []
    if compression == "bgzf":
        for n, line in enumerate(open_text(path, compression)):
            if line.startswith("#") or not line:
                continue
            parts = line.split("\t", 2)
            if len(parts) < 3 or not parts[1].isdigit():
                raise BadInputFileError(path, "malformed record (need tab-separated CHROM, POS, ...)",
                                        record=f"line {n + 1}")
            sample.append((parts[0], int(parts[1]), line))
            if len(sample) >= 3:
                break
    index, note = check_index(path, compression, sample)
    if index is None and require_index:
        raise BadInputFileError(path, (note or "no .tbi/.csi index next to the file")
                                + "; --require-index was given: index it with `tabix -p vcf` (after `bgzip`) "
                                "or drop --require-index to read it sequentially")
    if note:
        log.warning("%s: %s; reading it sequentially", os.path.basename(path), note)
    digest, size = sha256_of(path)
    return SourceFile(kind=kind, path=os.path.abspath(path), sha256=digest, size=size, compression=compression,
                      build=build, build_from=how, file_date=file_date(header), header_lines=tuple(header),
                      index=index, index_note=note, prefix=prefix, options=options)


def _exists(path: str) -> None:
    if not os.path.exists(path):
        raise BadInputFileError(path, "no such file")
    if os.path.isdir(path):
        raise BadInputFileError(path, "is a folder, not a file")
    if os.path.getsize(path) == 0:
        raise BadInputFileError(path, "empty file")


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UserInputError(f"unknown annotation source type {kind!r}; use one of {', '.join(KINDS)}")
    return kind


# ---------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Region:
    """A lake region, 1-based inclusive."""

    contig: str
    start: int
    end: int


def vcf_lines(src: SourceFile, region: Region | None, style: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number or 0, lake contig, first 8 columns) of the source's records, in a region if given.

    In a region only records that overlap it are read (through the index); without one the whole file.
    """
    if region is not None and src.index is not None:
        import pysam

        tbx = pysam.TabixFile(src.path, index=src.index, encoding="latin-1")
        try:
            names = [c for c in tbx.contigs if lake_contig(c, style) == region.contig]
            for name in names:
                for raw in tbx.fetch(name, region.start - 1, region.end):
                    cols = _utf8(raw).split("\t", 8)
                    if len(cols) < 8:
                        raise BadInputFileError(src.path, "record has fewer than 8 tab-separated columns",
                                                record=f"{cols[0]}:{cols[1] if len(cols) > 1 else '?'}")
                    yield 0, region.contig, cols[:8]
        finally:
            tbx.close()
        return
    for n, line in enumerate(open_text(src.path, src.compression), start=1):
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t", 8)
        if len(cols) < 8:
            raise BadInputFileError(src.path, "record has fewer than 8 tab-separated columns", record=f"line {n}")
        yield n, lake_contig(cols[0], style), cols[:8]


def _utf8(line: str) -> str:
    """A line pysam decoded as latin-1 (never fails) back to its UTF-8 text."""
    return line if line.isascii() else line.encode("latin-1").decode("utf-8", "replace")


def split_alleles(
    pos: int, ref: str, alt_field: str, fetch: Callable[[int, int], str] | None = None,
) -> list[tuple[int, int, str, str]]:
    """(1-based alt index, pos, ref, alt) per ALT allele, normalised exactly as the ingest does.

    Missing (`.`) and spanning-deletion (`*`) alleles are skipped; symbolic alleles are kept as they are;
    alleles with other characters (IUPAC codes) are skipped. ``fetch`` (reference bases, 0-based
    half-open) left-aligns indels, as ``genolake ingest --reference`` does.
    """
    ref = ref.upper()
    out: list[tuple[int, int, str, str]] = []
    if not _BASES.match(ref):
        return out
    for i, alt in enumerate(alt_field.split(","), start=1):
        a = alt.upper()
        if a in (".", "*", "") or a == ref:
            continue
        if is_symbolic(a):
            out.append((i, pos, ref, a))
            continue
        if not _BASES.match(a):
            continue
        if fetch is not None:
            p, r, x = left_align(pos, ref, a, fetch)
        elif len(ref) == 1 and len(a) == 1:
            p, r, x = pos, ref, a
        else:
            p, r, x = trim(pos, ref, a)
        out.append((i, p, r, x))
    return out


def parse_info(info: str) -> dict[str, str]:
    """Raw INFO text to a dict (flags map to ""); works for keys the header does not declare."""
    out: dict[str, str] = {}
    if info in (".", ""):
        return out
    for item in info.split(";"):
        if not item:
            continue
        k, sep, v = item.partition("=")
        out[k] = v if sep else ""
    return out
