"""Helpers for the aggregate tests (no tests here): test data, the bcftools oracle, lakes with phenotypes.

The oracle for `genolake aggregate` is `bcftools merge -m none` of the institutions' files with absent sites filled
as 0/0 exactly where the lake counts them (a `--absent-as-ref` file everywhere, a `--callable-regions` file inside
its BED, other files never; the fill is bcftools' own `merge -0` against a file listing every site), split with
`bcftools norm -m-`, then `bcftools +fill-tags -- -S groups` with one group per (scope, stratum).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA_DIRS = [REPO / "tests" / "data", REPO / "tests" / "data" / "edge", REPO.parent / "shared" / "data" / "vcf",
             REPO.parent / "shared" / "data" / "edge", REPO.parent / "shared" / "data" / "meta"]
PANEL = "integrated_call_samples_v3.20130502.ALL.panel"

Key = tuple[str, int, str, str]


def data_path(name: str) -> Path:
    """A test data file from tests/data (or ../shared/data); skips the test if neither has it."""
    for d in DATA_DIRS:
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} not found in tests/data or ../shared/data")
    raise AssertionError


def need_bcftools() -> None:
    if shutil.which("bcftools") is None or shutil.which("bgzip") is None:
        pytest.skip("bcftools/bgzip not on PATH")


def sh(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


@contextmanager
def key_dir(path: Path) -> Iterator[None]:
    """Point GENOLAKE_KEY_DIR at ``path`` (keys never go to the user's home in tests)."""
    old = os.environ.get("GENOLAKE_KEY_DIR")
    os.environ["GENOLAKE_KEY_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GENOLAKE_KEY_DIR", None)
        else:
            os.environ["GENOLAKE_KEY_DIR"] = old


def panel() -> dict[str, dict[str, str]]:
    """1000 Genomes phase 3 panel: sample -> population, super_population, sex."""
    out = {}
    for line in data_path(PANEL).read_text().splitlines()[1:]:
        f = line.split("\t")
        if len(f) >= 4:
            out[f[0]] = {"population": f[1], "super_population": f[2], "sex": f[3]}
    return out


def panel_id(sample: str) -> str:
    """Hail's sample.vcf names samples like ``C1046::HG02024``; the panel knows ``HG02024``."""
    return sample.split("::")[-1]


def write_phenotypes(path: Path, samples: list[str], columns: dict[str, dict[str, Any]]) -> Path:
    """A phenotype TSV (``sample_id`` + one column per name; None -> NA) for ``load_phenotypes``."""
    names = sorted(columns)
    lines = ["\t".join(["sample_id", *names])]
    for s in samples:
        lines.append("\t".join([s, *("NA" if columns[n].get(s) is None else str(columns[n][s]) for n in names)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def load_phenotypes_tsv(lake: Path, institution: str, path: Path) -> None:
    """Load a phenotype TSV with the phenotypes module (the `phenotypes` view contract)."""
    try:
        from genolake.phenotypes import load_phenotypes
    except ImportError:  # pragma: no cover - the phenotypes stage is another module
        pytest.skip("genolake.phenotypes.load_phenotypes is not available")
    load_phenotypes(lake, institution, path)


def subset(src: Path, dst: Path, samples: list[str], *, min_ac: int = 0) -> Path:
    """``bcftools view -s`` (optionally only records with >= ``min_ac`` alt alleles in the subset), indexed."""
    args: list[str | Path] = ["bcftools", "view", "-s", ",".join(samples)]
    if min_ac:
        args += ["-c", str(min_ac)]
    sh(*args, "-Oz", "-o", dst, src)
    sh("bcftools", "index", "-f", "-t", dst)
    return dst


@dataclass
class Inst:
    name: str
    vcf: Path
    samples: list[str]
    mode: str = "no_call"  # no_call | ref | callable
    bed: Path | None = None


def oracle_vcf(tmp: Path, insts: list[Inst], all_sites: Path) -> Path:
    """Merged VCF of the institutions with absent sites 0/0 where the lake counts them, split per alt allele."""
    parts = []
    for inst in insts:
        if inst.mode == "no_call":
            parts.append(inst.vcf)
            continue
        other = all_sites
        if inst.mode == "callable":
            assert inst.bed is not None
            other = tmp / f"{inst.name}.sites_in_bed.vcf.gz"
            sh("bcftools", "view", "-T", inst.bed, "-Oz", "-o", other, all_sites)
            sh("bcftools", "index", "-f", "-t", other)
        both = tmp / f"{inst.name}.with_sites.vcf.gz"
        sh("bcftools", "merge", "-m", "none", "-0", "--force-samples", "-Oz", "-o", both, inst.vcf, other)
        filled = tmp / f"{inst.name}.filled.vcf.gz"
        sh("bcftools", "view", "-s", ",".join(inst.samples), "-Oz", "-o", filled, both)
        sh("bcftools", "index", "-f", "-t", filled)
        parts.append(filled)
    merged = tmp / "oracle.merged.vcf.gz"
    if len(parts) > 1:
        sh("bcftools", "merge", "-m", "none", "-Oz", "-o", merged, *parts)
    else:
        sh("bcftools", "view", "-Oz", "-o", merged, parts[0])
    split = tmp / "oracle.split.vcf.gz"
    sh("bcftools", "norm", "-m-", "-Oz", "-o", split, merged)
    return split


def fill_tags(vcf: Path, groups: dict[str, list[str]], tmp: Path) -> dict[Key, dict[str, int]]:
    """INFO AN, AC, AC_Hom, AC_Hemi (total and per group) of ``bcftools +fill-tags -- -S groups``."""
    # bcftools 1.16's -S parser rejects sample names of 1-2 characters (`smpl <= str.s+1`): prefix every name
    names = tmp / "oracle.rename.txt"
    names.write_text("".join(f"{s} smpl_{s}\n" for s in sh("bcftools", "query", "-l", vcf).split()))
    renamed = tmp / "oracle.renamed.vcf.gz"
    sh("bcftools", "reheader", "-s", names, "-o", renamed, vcf)
    vcf = renamed
    gfile = tmp / "oracle.groups.txt"
    gfile.write_text("".join(f"smpl_{s}\t{','.join(g)}\n" for s, g in groups.items() if g))
    text = sh("bcftools", "+fill-tags", vcf, "--", "-S", gfile, "-t", "AN,AC,AC_Hom,AC_Hemi")
    out: dict[Key, dict[str, int]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        info: dict[str, int] = {}
        for kv in f[7].split(";"):
            k, _, v = kv.partition("=")
            if k.startswith(("AC", "AN")) and v and v != ".":
                info[k] = int(v.split(",")[0])
        out[(f[0], int(f[1]), f[3], f[4])] = info
    return out


def group_name(scope: str, stratum: str) -> str:
    """A bcftools group (INFO suffix) for a (scope, stratum) pair."""
    safe = stratum.replace("=", "_EQ_").replace(":", "_").replace(" ", "_").replace("-", "_").replace(".", "_")
    return f"{scope}__{safe}"


def lake_rows(lake: Path) -> dict[Key, dict[tuple[str, str], dict[str, Any]]]:
    """allele_frequencies keyed by (contig, pos, ref, alt) then (scope, stratum)."""
    from genolake.compute.aggregate import read_frequencies

    out: dict[Key, dict[tuple[str, str], dict[str, Any]]] = {}
    for r in read_frequencies(lake).to_pylist():
        out.setdefault((r["contig"], r["pos"], r["ref"], r["alt"]), {})[(r["scope"], r["stratum"])] = r
    return out


def original_keys(lake: Path) -> dict[Key, Key]:
    """Lake key (normalised) -> key as in the VCF record (orig_pos, orig_ref, orig_alt), as `norm -m-` writes it."""
    from genolake.store import LakeStore

    t = LakeStore.open(lake).read_table("variants", columns=["contig", "pos", "ref", "alt", "orig_pos", "orig_ref",
                                                              "orig_alt"])
    out: dict[Key, Key] = {}
    for r in t.to_pylist():
        out[(r["contig"], r["pos"], r["ref"], r["alt"])] = (r["contig"], r["orig_pos"], r["orig_ref"], r["orig_alt"])
    return out


def compare_with_oracle(lake: Path, oracle: dict[Key, dict[str, int]], memberships: dict[str, list[tuple[str, str]]],
                        *, prefix: str = "", skip: set[Key] = frozenset()) -> int:  # type: ignore[assignment]
    """Assert every lake row of a (scope, stratum) in ``memberships`` equals the oracle's group; return rows checked.

    ``memberships``: sample -> the (scope, stratum) pairs it belongs to (the groups written to the oracle).
    """
    rows = lake_rows(lake)
    orig = original_keys(lake)
    pairs = sorted({p for ps in memberships.values() for p in ps})
    assert {orig[k] for k in rows} <= set(oracle), "lake sites missing from the oracle"
    checked = 0
    for key, by in rows.items():
        if orig[key] in skip:
            continue
        o = oracle[orig[key]]
        for scope, stratum in pairs:
            g = group_name(scope, stratum)
            row = by.get((scope, prefix + stratum))
            an = o.get(f"AN_{g}", 0)
            if row is None:
                # a stratum row is left out only where no sample of it counts (then bcftools has AN 0 too)
                assert stratum != "all" and an == 0, (key, scope, stratum, o)
                continue
            assert (row["ac"], row["an"]) == (o.get(f"AC_{g}", 0), an), (key, scope, stratum, row, o)
            assert row["nhomalt"] * 2 == o.get(f"AC_Hom_{g}", 0), (key, scope, stratum)
            assert row["nhemi"] == o.get(f"AC_Hemi_{g}", 0), (key, scope, stratum)
            assert row["af"] == (row["ac"] / row["an"] if row["an"] else None)
            checked += 1
        # the whole joint cohort also equals the ungrouped totals
        j = by[("joint", prefix + "all")]
        assert (j["ac"], j["an"]) == (o["AC"], o["AN"]), key
    return checked
