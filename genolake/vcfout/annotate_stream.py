"""Checks the records of `genolake annotate-vcf`'s input and hands them, with the lake keys of their alleles, to the
chunk writer (chunks of at most ``chunk_records`` records of one contig).

Two ways, one result: :class:`Checker` takes one record at a time and covers everything (multi-allelic records,
indels, ``--reference``, every error with the record it names). :func:`stream` takes a block of lines at a time
and checks its common records -- one REF and one ALT base, no ``--reference``, in order after the line before,
the sample count of the header -- with a few operations over the whole block; every other line of the block goes
through :class:`Checker`, in order, so a bad line fails exactly as it would alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import repeat
from operator import eq, itemgetter, ne
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genolake.contigs import to_style
from genolake.errors import BadInputFileError, UserInputError
from genolake.ingest.normalise import is_symbolic, left_align, trim

if TYPE_CHECKING:
    from genolake.vcfout.annotate_write import ChunkWriter

_BASES = frozenset("ACGTNacgtn")
_UPPER = frozenset("ACGTN")
_MIN_BLOCK = 16  # smaller blocks (BCF records, lines re-read after a read error) take the general way
_POS_DIGITS = 18  # a POS of at most this many digits fits int64


class Normaliser:
    """Split alleles to the lake's key: trimmed, and left-aligned when a reference FASTA is given (as ingest)."""

    def __init__(self, reference: Path | None, path: str) -> None:
        self.path = path
        self.fasta: Any = None
        self.by_bare: dict[str, str] = {}
        if reference is not None:
            import pysam

            if not Path(reference).exists():
                raise UserInputError(f"--reference {reference}: no such file")
            try:
                self.fasta = pysam.FastaFile(str(reference))
            except (OSError, ValueError) as exc:
                raise UserInputError(f"--reference {reference}: not a readable (indexed) FASTA: {exc}") from None
            from genolake.contigs import bare

            names = set(self.fasta.references)
            self.by_bare = {bare(n): n for n in names}
            self.names = names

    def key(self, chrom: str, pos: int, ref: str, alt: str, rec_no: int) -> tuple[int, str, str]:
        if self.fasta is None and len(ref) == 1 and len(alt) == 1:
            return pos, ref, alt
        if is_symbolic(alt):
            return pos, ref, alt
        if self.fasta is None:
            if len(ref) == 1 and len(alt) == 1:
                return pos, ref, alt
            return trim(pos, ref, alt)
        from genolake.contigs import bare

        name = chrom if chrom in self.names else self.by_bare.get(bare(chrom))
        if name is None:
            return trim(pos, ref, alt)
        fasta = self.fasta
        got = str(fasta.fetch(name, pos - 1, pos - 1 + len(ref))).upper()
        if got != ref:
            raise BadInputFileError(self.path, f"REF {ref} does not match the reference FASTA ({got})",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        return left_align(pos, ref, alt, lambda s, e: str(fasta.fetch(name, s, e)))


class Checker:
    """The general way: one record checked, its alleles split and normalised, appended to the writer's chunk."""

    def __init__(self, path: str, n_samples: int, style: str, normaliser: Normaliser, writer: ChunkWriter,
                 chunk_records: int) -> None:
        self.path = path
        self.n_samples = n_samples
        self.style = style
        self.normaliser = normaliser
        self.writer = writer
        self.chunk_records = chunk_records
        self.cur_chrom: str | None = None
        self.done: set[str] = set()
        self.last = 0

    def record(self, rec_no: int, fields: list[str]) -> None:
        path, n_samples, writer = self.path, self.n_samples, self.writer
        cur_chrom, last = self.cur_chrom, self.last
        if len(fields) < 8 or not fields[0]:
            raise BadInputFileError(path, "malformed data line (fewer than 8 tab-separated columns)",
                                    record=_after(rec_no, cur_chrom, last))
        chrom = fields[0]
        try:
            pos = int(fields[1])
        except ValueError:
            raise BadInputFileError(path, f"invalid POS {fields[1]!r}", record=_after(rec_no, cur_chrom, last)) from None
        if pos < 1:
            raise BadInputFileError(path, f"invalid POS {pos}", record=_after(rec_no, cur_chrom, last))
        if n_samples and (len(fields) < 9 or fields[8].count("\t") != n_samples):
            got = fields[8].count("\t") if len(fields) == 9 else 0
            raise BadInputFileError(path, f"{got} sample columns where the header names {n_samples}",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        if chrom != cur_chrom:
            writer.flush()
            if chrom in self.done:
                raise BadInputFileError(path, f"records of contig {chrom} are not contiguous (sort the file with "
                                        "`bcftools sort`)", record=f"record {rec_no} ({chrom}:{pos})")
            if cur_chrom is not None:
                self.done.add(cur_chrom)
            self.cur_chrom = chrom
            writer.contig = to_style(chrom, self.style)
        elif pos < last:
            raise BadInputFileError(path, f"position {pos} comes after {last} (sort the file with `bcftools sort`)",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        elif len(writer.rows) >= self.chunk_records:
            writer.flush()
        self.last = pos
        raw_ref = fields[3]
        ref = raw_ref.upper()
        if not ref or ref.strip("ACGTN"):
            raise BadInputFileError(path, f"invalid REF {raw_ref!r} (only A, C, G, T, N allowed)",
                                    record=f"record {rec_no} ({chrom}:{pos})")
        keys = []
        if fields[4] != ".":
            fasta = self.normaliser.fasta
            for a in fields[4].split(","):
                alt = a.upper()
                if not alt or alt == ref or (alt.strip("ACGTN") and not is_symbolic(alt)):
                    raise BadInputFileError(path, f"invalid ALT allele {a!r}", record=f"record {rec_no} ({chrom}:{pos})")
                keys.append((pos, ref, alt) if len(ref) == 1 and len(alt) == 1 and fasta is None
                            else self.normaliser.key(chrom, pos, ref, alt, rec_no))
        writer.add(fields, keys)

    def common(self, rows: list[list[str]], pos: list[int], refs: list[str], alts: list[str]) -> None:
        """Append records already known to be common and in order after the record before (same contig)."""
        writer, size = self.writer, self.chunk_records
        start = 0
        while start < len(rows):
            if len(writer.rows) >= size:
                writer.flush()
            end = min(len(rows), start + max(size - len(writer.rows), 1))
            writer.rows.extend(rows[start:end])
            writer.counts.extend([1] * (end - start))
            writer.pos.extend(pos[start:end])
            writer.ref.extend(refs[start:end])
            writer.alt.extend(alts[start:end])
            start = end
        self.last = pos[-1]


def stream(blocks: Iterable[list[str]], checker: Checker, progress: Callable[[int, int], None] | None) -> None:
    """Check every record of ``blocks`` (lists of record lines), hand them to the checker's writer in chunks."""
    rec_no = 0
    fast = checker.normaliser.fasta is None
    for lines in blocks:
        first = rec_no
        rows = [ln.split("\t", 8) for ln in lines]
        common = _common(rows, lines, checker) if fast and len(rows) >= _MIN_BLOCK else None
        if common is None:
            for fields in rows:
                rec_no += 1
                checker.record(rec_no, fields)
        else:
            mask, pos, refs, alts = common
            # runs of common lines, each other line on its own through the checker
            for i in [*np.flatnonzero(~mask).tolist(), len(rows)]:
                if rec_no - first < i:
                    a = rec_no - first
                    checker.common(rows[a:i], pos[a:i], refs[a:i], alts[a:i])
                    rec_no = first + i
                if i < len(rows):
                    rec_no += 1
                    checker.record(rec_no, rows[i])
        if progress is not None:
            for n in range((first // 10_000 + 1) * 10_000, rec_no + 1, 10_000):
                progress(n, 0)
    checker.writer.flush()
    if progress is not None:
        progress(rec_no, 1)


def _common(rows: list[list[str]], lines: list[str], chk: Checker
            ) -> tuple[np.ndarray, list[int], list[str], list[str]] | None:
    """Which lines of a block are common records (mask), with their POS and upper-case REF and ALT; None when the
    block has a line too short to look at (it fails, in the general way) or text that is not ASCII.

    Each check is made once over the whole block (a set, a join), and line by line only where that fails."""
    n = len(rows)
    if min(map(len, rows)) < 8 or not all(map(str.isascii, lines)):
        return None
    ok = np.ones(n, dtype=bool)
    pos_s = list(map(itemgetter(1), rows))
    if not (all(pos_s) and "".join(pos_s).isdigit() and max(map(len, pos_s)) <= _POS_DIGITS):
        ok = np.fromiter((s.isdigit() and len(s) <= _POS_DIGITS for s in pos_s), bool, n)
    pos = list(map(int, pos_s)) if ok.all() else [int(s) if good else 0 for s, good in zip(pos_s, ok.tolist(), strict=True)]
    pos_a = np.array(pos, dtype=np.int64)
    prev = np.empty(n, dtype=np.int64)
    prev[0], prev[1:] = chk.last, pos_a[:-1]
    if not ok.all():
        ok[1:] &= ok[:-1].copy()  # a POS not read here: the line after it goes the general way too
    ok &= (pos_a >= 1) & (pos_a >= prev)
    refs, alts = _bases(list(map(itemgetter(3), rows)), ok), _bases(list(map(itemgetter(4), rows)), ok)
    ok &= np.fromiter(map(ne, refs, alts), bool, n)
    chrom = list(map(itemgetter(0), rows))
    if chrom.count(chrom[0]) == n:
        ok[0] &= chrom[0] == chk.cur_chrom
    else:
        ok &= np.fromiter(map(eq, chrom, [chk.cur_chrom, *chrom[:-1]]), bool, n)  # a new contig: the general way
    if chk.n_samples:
        if all(len(r) == 9 for r in rows):
            tabs = list(map(str.count, map(itemgetter(8), rows), repeat("\t")))
            if tabs.count(chk.n_samples) != n:
                ok &= np.array(tabs) == chk.n_samples
        else:
            ok &= np.fromiter((len(r) == 9 and r[8].count("\t") == chk.n_samples for r in rows), bool, n)
    return ok, pos, refs, alts


def _bases(alleles: list[str], ok: np.ndarray) -> list[str]:
    """``alleles`` in upper case; ``ok`` cleared where one is not a single base."""
    kinds = set(alleles)
    if kinds <= _UPPER:
        return alleles
    up = list(map(str.upper, alleles))
    if not kinds <= _BASES:
        ok &= np.fromiter(map(_UPPER.__contains__, up), bool, len(up))
    return up


def _after(rec_no: int, chrom: str | None, pos: int) -> str:
    return f"record {rec_no}" + (f" (after {chrom}:{pos})" if chrom else "")
