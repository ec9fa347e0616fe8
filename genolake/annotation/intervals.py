"""Gene models and variant-interval overlaps.

Coordinates are 1-based and inclusive (as in GTF/GFF3 and VCF). A variant covers its reference span:
``[pos, pos + len(ref) - 1]``; an insertion or a symbolic allele covers ``pos`` only. A variant overlaps an
interval when ``start <= variant_end and end >= pos`` -- a variant on the first or last base of a gene is
in the gene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

REGION_CLASSES = ("coding_exon", "utr", "noncoding_exon", "intron", "genic", "intergenic")


@dataclass
class Intervals:
    """Sorted-by-start intervals with a running maximum of ends (for overlap search)."""

    start: np.ndarray
    end: np.ndarray
    runmax: np.ndarray
    order: np.ndarray  # original index of each sorted interval

    @classmethod
    def build(cls, start: list[int] | np.ndarray, end: list[int] | np.ndarray) -> Intervals:
        s = np.asarray(start, dtype=np.int64)
        e = np.asarray(end, dtype=np.int64)
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        runmax = np.maximum.accumulate(e) if e.size else e
        return cls(s, e, runmax, order)

    def __len__(self) -> int:
        return int(self.start.size)

    def pairs(self, qstart: np.ndarray, qend: np.ndarray, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
        """All (query index, interval index) with interval.start <= qend and interval.end >= qstart."""
        if not len(self) or not qstart.size:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        qs_out, iv_out = [], []
        for c0 in range(0, qstart.size, chunk):
            qs, qe = qstart[c0:c0 + chunk], qend[c0:c0 + chunk]
            hi = np.searchsorted(self.start, qe, side="right")  # intervals starting at or before the end
            lo = np.searchsorted(self.runmax, qs, side="left")  # before lo every interval ends before qs
            counts = np.maximum(hi - lo, 0)
            total = int(counts.sum())
            if not total:
                continue
            q = np.repeat(np.arange(qs.size, dtype=np.int64), counts)
            offs = np.repeat(np.cumsum(counts) - counts, counts)
            cand = np.repeat(lo, counts) + (np.arange(total, dtype=np.int64) - offs)
            keep = self.end[cand] >= qs[q]
            qs_out.append(q[keep] + c0)
            iv_out.append(self.order[cand[keep]])
        if not qs_out:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        return np.concatenate(qs_out), np.concatenate(iv_out)

    def any_overlap(self, qstart: np.ndarray, qend: np.ndarray) -> np.ndarray:
        out = np.zeros(qstart.size, dtype=bool)
        q, _ = self.pairs(qstart, qend)
        out[q] = True
        return out


@dataclass
class ContigGenes:
    """Genes of one contig, and (for GTF/GFF3) the intervals of their transcript features."""

    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    symbol: list[str | None] = field(default_factory=list)
    gene_id: list[str | None] = field(default_factory=list)
    biotype: list[str | None] = field(default_factory=list)
    strand: list[str | None] = field(default_factory=list)
    features: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # class -> (starts, ends)
    _index: dict[str, Intervals] = field(default_factory=dict, repr=False)

    def add_gene(self, start: int, end: int, symbol: str | None, gene_id: str | None, biotype: str | None,
                 strand: str | None) -> None:
        self.start.append(start)
        self.end.append(end)
        self.symbol.append(symbol)
        self.gene_id.append(gene_id)
        self.biotype.append(biotype)
        self.strand.append(strand)

    def add_feature(self, cls: str, start: int, end: int) -> None:
        s, e = self.features.setdefault(cls, ([], []))
        s.append(start)
        e.append(end)

    def index(self, name: str) -> Intervals:
        if name not in self._index:
            if name == "gene":
                self._index[name] = Intervals.build(self.start, self.end)
            else:
                s, e = self.features.get(name, ([], []))
                self._index[name] = Intervals.build(s, e)
        return self._index[name]

    def identity(self) -> np.ndarray:
        """A code per gene, equal for genes with the same (symbol, ID)."""
        if "_identity" not in self._index:
            codes: dict[tuple[str | None, str | None], int] = {}
            ident = [codes.setdefault((s, i), len(codes)) for s, i in zip(self.symbol, self.gene_id, strict=True)]
            self._index["_identity"] = np.asarray(ident, dtype=np.int64)  # type: ignore[assignment]
        return self._index["_identity"]  # type: ignore[return-value]

    def __getstate__(self) -> dict[str, object]:  # the search index is rebuilt where it is used
        state = dict(self.__dict__)
        state["_index"] = {}
        return state


@dataclass
class GeneModel:
    """Genes per lake contig from one source; ``structured`` if transcript features give region classes."""

    kind: str  # gtf | gff3 | list
    contigs: dict[str, ContigGenes]
    structured: bool
    coordinates: str  # how start/end were read, e.g. "1-based inclusive"

    @property
    def n_genes(self) -> int:
        return sum(len(c.start) for c in self.contigs.values())


def variant_ends(pos: np.ndarray, ref_len: np.ndarray) -> np.ndarray:
    """Last reference base a variant covers (1-based, inclusive)."""
    return pos + np.maximum(ref_len, 1) - 1


def annotate_genes(
    genes: ContigGenes | None, pos: np.ndarray, ref_len: np.ndarray, *, structured: bool,
) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """(gene_symbols, gene_ids, biotypes, region_class) Arrow arrays, one entry per variant of one contig.

    Genes are listed in order of gene start, each (symbol, ID) once; region class is the first that applies of
    coding_exon (a CDS, start or stop codon), utr, noncoding_exon (an exon outside CDS and UTR features, i.e. of
    a non-coding transcript), intron (inside a transcript), genic (inside a gene: gene lists, or GTF genes
    without transcript features) and intergenic.
    """
    n = pos.size
    region = np.full(n, REGION_CLASSES.index("intergenic"), dtype=np.int8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    chosen = np.empty(0, dtype=np.int64)
    if genes is not None and genes.start and n:
        end = variant_ends(pos, ref_len)
        q, g = genes.index("gene").pairs(pos, end)
        if q.size:
            starts = np.asarray(genes.start, dtype=np.int64)[g]
            order = np.lexsort((g, starts, q))
            q, g = q[order], g[order]
            ident = genes.identity()[g]  # the same (symbol, ID) listed twice (PLINK's X and XY copies) counts once
            composite = q * (int(ident.max()) + 1) + ident
            _, first = np.unique(composite, return_index=True)
            keep = np.sort(first)
            q, g = q[keep], g[keep]
            chosen = g
            counts = np.bincount(q, minlength=n)
            offsets[1:] = np.cumsum(counts)
            region[counts > 0] = REGION_CLASSES.index("genic")
        if structured:
            for cls, name in (("transcript", "intron"), ("exon", "noncoding_exon"), ("utr", "utr"),
                              ("coding", "coding_exon")):
                if cls in genes.features:
                    region[genes.index(cls).any_overlap(pos, end)] = REGION_CLASSES.index(name)
    off = pa.array(offsets, pa.int32())
    take = pa.array(chosen, pa.int64())
    lists = []
    for values in (genes.symbol, genes.gene_id, genes.biotype) if genes is not None else ([], [], []):
        flat = pa.array(values, pa.string()).take(take) if len(chosen) else pa.array([], pa.string())
        lists.append(pa.ListArray.from_arrays(off, flat))
    if genes is None:
        lists = [pa.ListArray.from_arrays(off, pa.array([], pa.string()))] * 3
    classes = pa.array(list(REGION_CLASSES), pa.string()).take(pa.array(region.astype(np.int64)))
    return lists[0], lists[1], lists[2], classes
