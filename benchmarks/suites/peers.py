"""The query peers: what a user without genolake does with the indexed VCFs (pysam, cyvcf2).

Each answers the question genolake answers, like for like: a point query fetches the record from every
institution's file and counts AC/AN from the genotypes; carriers lists the samples holding the allele; a
region query returns every record's AC/AN. Contig names are matched whichever way a file spells them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _other_style(contig: str) -> str:
    return contig.removeprefix("chr") if contig.startswith("chr") else "chr" + contig


class PysamPeer:
    """pysam ``VariantFile.fetch`` on the indexed VCFs, files opened once (as ``genolake.open``)."""

    def __init__(self, vcfs: list[Path]) -> None:
        import pysam

        self.files = [pysam.VariantFile(str(v)) for v in vcfs]
        self.contigs = [set(f.header.contigs) for f in self.files]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def _contig(self, i: int, contig: str) -> str | None:
        if contig in self.contigs[i]:
            return contig
        other = _other_style(contig)
        return other if other in self.contigs[i] else None

    def _records(self, contig: str, start: int, end: int) -> Any:
        """(file index, record) for records starting in [start, end], 1-based inclusive."""
        for i, f in enumerate(self.files):
            c = self._contig(i, contig)
            if c is None:
                continue
            for rec in f.fetch(c, start - 1, end):
                if start <= rec.pos <= end:
                    yield i, rec

    def point(self, contig: str, pos: int, ref: str, alt: str) -> tuple[int, int]:
        """Joint (AC, AN) of one biallelic-split allele, summed over the files that hold the record."""
        ac = an = 0
        for _, rec in self._records(contig, pos, pos):
            if rec.ref != ref or alt not in (rec.alts or ()):
                continue
            k = rec.alts.index(alt) + 1
            for s in rec.samples.values():
                for a in s.allele_indices:
                    if a is not None:
                        an += 1
                        ac += a == k
        return ac, an

    def carriers(self, contig: str, pos: int, ref: str, alt: str) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for i, rec in self._records(contig, pos, pos):
            if rec.ref != ref or alt not in (rec.alts or ()):
                continue
            k = rec.alts.index(alt) + 1
            out.extend((i, name) for name, s in rec.samples.items() if k in s.allele_indices)
        return out

    def region(self, contig: str, start: int, end: int) -> list[tuple[int, int, list[int], int]]:
        """(file, pos, AC per alt, AN) of every record in the region."""
        out = []
        for i, rec in self._records(contig, start, end):
            n_alt = len(rec.alts or ())
            ac = [0] * n_alt
            an = 0
            for s in rec.samples.values():
                for a in s.allele_indices:
                    if a is not None:
                        an += 1
                        if a > 0:
                            ac[a - 1] += 1
            out.append((i, rec.pos, ac, an))
        return out


class Cyvcf2Peer:
    """cyvcf2 region queries with numpy counting: the strongest plain-VCF peer (context)."""

    def __init__(self, vcfs: list[Path]) -> None:
        from cyvcf2 import VCF

        self.files = [VCF(str(v)) for v in vcfs]
        self.contigs = [set(f.seqnames) for f in self.files]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def region(self, contig: str, start: int, end: int) -> list[tuple[int, int, list[int], int]]:
        out = []
        for i, f in enumerate(self.files):
            c = contig if contig in self.contigs[i] else _other_style(contig)
            if c not in self.contigs[i]:
                continue
            for v in f(f"{c}:{start}-{end}"):
                if not start <= v.POS <= end:
                    continue
                g = v.genotype.array()[:, :-1]
                an = int((g >= 0).sum())
                ac = [int((g == k).sum()) for k in range(1, len(v.ALT) + 1)]
                out.append((i, v.POS, ac, an))
        return out
