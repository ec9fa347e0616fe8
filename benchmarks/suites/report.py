"""Turn a run's results into ratios, threshold checks, the issues' targets, a markdown table, JSON and a plot."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.suites import SUITES
from benchmarks.suites.common import Comparison, Config, Measure, Results, fmt_value

THRESHOLDS = Path(__file__).resolve().parent.parent / "thresholds.toml"


# ---------------------------------------------------------------- ratios and CI thresholds
def ratio(c: Comparison, measures: dict[str, Measure]) -> float | None:
    """genolake's advantage over the peer: > 1 means genolake is faster (or smaller)."""
    g, p = measures.get(c.genolake), measures.get(c.peer)
    if g is None or p is None or not g.value or not p.value:
        return None
    return g.value / p.value if c.kind == "rate" else p.value / g.value


def load_thresholds(tier: str, path: Path = THRESHOLDS) -> dict[str, float]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    table = data.get(tier, {})
    return {str(k): float(v) for k, v in table.items()}


def evaluate(results: Results, tier: str, path: Path = THRESHOLDS) -> list[str]:
    """Fill each comparison's ratio, threshold and verdict; return the failures (messages)."""
    thresholds = load_thresholds(tier, path)
    failures: list[str] = []
    known = {c.key for c in results.comparisons}
    for c in results.comparisons:
        c.ratio = ratio(c, results.measures)
        c.threshold = thresholds.get(c.key)
        if c.ratio is None or c.threshold is None:
            continue
        c.ok = c.ratio >= c.threshold
        if not c.ok:
            failures.append(f"{c.key}: genolake at {c.ratio:.2f}x its peer ({c.what}), below the "
                            f"threshold {c.threshold:.2f}x in {path.name} [{tier}]")
    ran = set(results.seconds)
    for key in sorted(set(thresholds) - known):
        suite = key.split(".", 1)[0].split("_", 1)[0]  # scaling_<n>.x belongs to scaling
        if suite in ran or suite not in SUITES:  # a suite left out by --suites makes none of its comparisons
            failures.append(f"{key}: threshold in {path.name} [{tier}] names no comparison the harness makes")
    return failures


# ---------------------------------------------------------------- targets stated in the issues
@dataclass(frozen=True)
class Target:
    issue: str
    text: str
    source: str  # "ratio:<comparison>" or "measure:<key>"
    op: str  # ">=", "<=", "<", ">"
    value: float
    peers: tuple[str, ...] = ()  # measures shown as the peer's figure (a ratio's own peer is always shown)


TARGETS = (
    Target("#2 ingest", "1 worker >= 0.8x plain cyvcf2 iteration", "ratio:ingest.w1_vs_cyvcf2", ">=", 0.8),
    Target("#2 ingest", "2 workers >= 1.7x plain cyvcf2 iteration", "ratio:ingest.w2_vs_cyvcf2", ">=", 1.7),
    Target("#2 ingest", "lake size <= 1.0x the .vcf.gz", "ratio:storage.lake_vs_vcf_gz", ">=", 1.0),
    Target("#3 query", "lake.variant() median <= 5 ms", "measure:queries.point", "<=", 5.0, ("queries.point_pysam",)),
    Target("#3 query", "carriers of one variant median <= 20 ms", "measure:queries.carriers", "<=", 20.0,
           ("queries.carriers_pysam",)),
    Target("#3 query", "1 Mb region with frequencies median <= 50 ms", "measure:queries.region", "<=", 50.0,
           ("queries.region_pysam",)),
    Target("#3 query", "`genolake query variant` cold, whole process <= 0.6 s", "measure:cli.genolake_variant",
           "<=", 0.6, ("cli.bcftools_view",)),
    Target("#3 query", "10x the samples: point-query median grows < 1.5x", "measure:scaling.point_growth_10x",
           "<", 1.5, ("scaling.point_pysam_growth_10x",)),
    Target("#4 aggregate", ">= 10x faster than Hail", "ratio:aggregate.vs_hail", ">=", 10.0),
    Target("#4 aggregate", "faster than bcftools merge + fill-tags", "ratio:aggregate.vs_bcftools", ">", 1.0),
    Target("#5 annotate", "faster than bcftools annotate", "ratio:annotate.vs_bcftools", ">", 1.0),
    Target("#12 vcf out", "annotate-vcf >= 2x bcftools annotate -a SITES", "ratio:vcfout.annotate_vs_bcftools", ">=",
           2.0),
    Target("#14 assoc", "Fisher, 25k variants x 500 samples <= 1 s", "measure:assoc.fisher", "<=", 1.0,
           ("assoc.bcftools_contrast",)),
    Target("#14 assoc", "Fisher >= 2x faster than bcftools +contrast", "ratio:assoc.fisher_vs_bcftools", ">=", 2.0),
    Target("#14 assoc", "logistic, 3 covariates, 25k x 1,000 <= 10 s", "measure:assoc.logistic", "<=", 10.0,
           ("assoc.logistic_hail", "assoc.logistic_statsmodels")),
    Target("#14 assoc", "logistic faster than Hail logistic_regression_rows", "ratio:assoc.logistic_vs_hail", ">",
           1.0),
    Target("#14 assoc", "PCA of 3 x 1,000 samples in seconds (<= 10 s)", "measure:assoc.pca", "<=", 10.0),
    Target("#11 serve", "point g_variants p50 <= 3 ms (1 client, warm)", "measure:serve.boolean_c1_p50", "<=", 3.0),
    Target("#11 serve", "point g_variants p99 <= 20 ms (1 client, warm)", "p99:serve.boolean_c1_p50", "<=", 20.0),
    Target("#11 serve", ">= 500 requests/s with 32 clients", "measure:serve.boolean_c32_rps", ">=", 500.0),
    # issue 10: the genotype store, rebuilt (stated for 3 x 1,000 samples x ~100k sites: the full tier)
    Target("#10 store", "lake <= 0.5x the .vcf.gz, GT-only cohort", "ratio:storage.lake_vs_vcf_gz_gt", ">=", 2.0,
           ("storage.vcf_zarr_gt",)),
    Target("#10 store", "lake <= 0.3x the .vcf.gz, GT:GQ:DP:AD cohort", "ratio:storage.lake_vs_vcf_gz", ">=",
           1 / 0.3, ("storage.vcf_zarr",)),
    # the peer column also shows the ceiling of any ingest that reads with cyvcf2 on the 2 cores (ingest suite)
    Target("#10 store", "ingest in process >= 1.0x plain cyvcf2 iteration", "ratio:ingest.w0_vs_cyvcf2", ">=", 1.0,
           ("ingest.cyvcf2_ceiling_2_cores",)),
    Target("#10 store", "ingest, 2 workers >= 1.6x plain cyvcf2 iteration", "ratio:ingest.w2_vs_cyvcf2", ">=", 1.6,
           ("ingest.cyvcf2_ceiling_2_cores",)),
    Target("#10 store", "ingest default never slower than --workers 0 (>= 0.95x: timing noise)",
           "ratio:ingest.default_vs_w0", ">=", 0.95),
    # issue 10's latency targets are genolake's own latency: its queries in a pass of their own (the interleaved
    # figure, each query after a pysam fetch, is shown beside it)
    Target("#10 store", "lake.variant() median <= 2 ms", "measure:queries.point_alone", "<=", 2.0,
           ("queries.point", "queries.point_pysam")),
    Target("#10 store", "lake.variant() never slower than pysam fetch + count", "ratio:queries.point_vs_pysam", ">=",
           1.0),
    Target("#10 store", "1,000 -> 50,000 samples: point-query median grows <= 1.3x",
           "measure:scaling.point_alone_growth_50x", "<=", 1.3,
           ("scaling.point_growth_50x", "scaling.point_pysam_growth_50x")),
    Target("#10 store", "carriers median <= 3 ms", "measure:queries.carriers_alone", "<=", 3.0,
           ("queries.carriers", "queries.carriers_pysam")),
    Target("#10 store", "1 Mb region with joint frequencies median <= 10 ms", "measure:queries.region", "<=", 10.0,
           ("queries.region_pysam",)),
    Target("#10 store", "`genolake query variant` cold, whole process <= 0.35 s", "measure:cli.genolake_variant",
           "<=", 0.35, ("cli.bcftools_view",)),
    Target("#10 store", "aggregate (joint + institutions + one --by) <= 3 s", "measure:aggregate.genolake", "<=", 3.0,
           ("aggregate.hail", "aggregate.bcftools")),
    Target("#10 store", "aggregate >= 20x faster than Hail", "ratio:aggregate.vs_hail", ">=", 20.0),
    Target("#10 store", "aggregate >= 30x faster than bcftools merge + fill-tags", "ratio:aggregate.vs_bcftools", ">=",
           30.0),
)


PEER_LABELS = {  # where the tool name alone would be ambiguous
    "ingest.genolake_w0": "genolake --workers 0",
    "queries.point": "genolake interleaved with pysam",
    "queries.carriers": "genolake interleaved with pysam",
    "scaling.point_growth_50x": "genolake interleaved with pysam",
    "ingest.cyvcf2_ceiling_2_cores": "ceiling of any ingest reading with cyvcf2 on 2 cores:",
}


def _measure_cell(m: Measure) -> str:
    return f"{PEER_LABELS.get(m.key, m.tool)} {fmt_value(m.value, m.unit)}"


def target_rows(results: Results) -> list[dict[str, Any]]:
    """Each target: the figure, whether it is met, and the peer's figure from the same run."""
    comps = {c.key: c for c in results.comparisons}
    ms = results.measures
    rows = []
    for t in TARGETS:
        kind, key = t.source.split(":", 1)
        figure: float | None = None
        shown = "not measured"
        peer_keys = list(t.peers)
        if kind == "ratio" and key in comps:
            peer_keys.insert(0, comps[key].peer)
        if kind == "ratio" and key in comps and comps[key].ratio is not None:
            c = comps[key]
            figure = c.ratio
            g = ms[c.genolake]
            shown = f"{figure:.2f}x ({fmt_value(g.value, g.unit)})"
            if key.startswith("storage.lake_vs_") and figure:
                shown = f"lake = {1 / figure:.2f}x the {_peer_name(c.peer)} ({fmt_value(g.value, g.unit)})"
        elif kind == "p99" and key in results.measures and results.measures[key].p95 is not None:
            figure = results.measures[key].p95  # the serve suite stores p99 in the p95 slot (see its note)
            shown = fmt_value(figure, results.measures[key].unit)
        elif kind == "measure" and key in results.measures:
            m = results.measures[key]
            figure = m.value
            shown = fmt_value(m.value, m.unit)
            if m.unit == "x":  # a growth: say between which sizes (another tier may have another pair)
                shown += f" ({m.what})"
        met = None if figure is None else _holds(figure, t.op, t.value)
        peers = [_measure_cell(ms[k]) for k in dict.fromkeys(peer_keys) if k in ms]
        rows.append({"issue": t.issue, "target": t.text, "figure": figure, "shown": shown, "met": met,
                     "peer": "; ".join(peers) or "-"})
    return rows


def _peer_name(measure_key: str) -> str:
    if "vcf_zarr" in measure_key:
        return "vcf2zarr store"
    return ".vcf.gz" if "vcf_gz" in measure_key else measure_key


def _holds(x: float, op: str, v: float) -> bool:
    return {">=": x >= v, "<=": x <= v, "<": x < v, ">": x > v}[op]


# ---------------------------------------------------------------- machine and naming
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    info: dict[str, Any] = {
        "host": socket.gethostname().split(".")[0], "cpu": cpu, "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**30, 1), "python": platform.python_version(), "platform": platform.platform(),
    }
    versions: dict[str, str] = {}
    for mod in ("genolake", "cyvcf2", "pysam", "duckdb", "pyarrow", "dask", "deltalake", "msprime", "hail"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            continue
    if shutil.which("bcftools"):
        out = subprocess.run(["bcftools", "--version"], capture_output=True, text=True, check=False).stdout
        versions["bcftools"] = out.splitlines()[0].split()[-1] if out else "?"
    info["versions"] = versions
    return info


def git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent.parent
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() or None


def stem(tier: str, machine: dict[str, Any], when: datetime) -> str:
    name = f"{when:%Y-%m-%d}-{machine['host']}"
    return name if tier == "full" else f"{name}-{tier}"


# ---------------------------------------------------------------- markdown
def cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(results: Results, cfg: Config, machine: dict[str, Any], meta: dict[str, Any],
             plot: str | None) -> str:
    coh = results.extra.get("cohort", {})
    sites = coh.get("sites")
    lines = [
        f"# genolake benchmarks ({cfg.tier} tier)",
        "",
        f"{meta['date']} on `{machine['host']}`: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gb']} GB RAM; genolake commit {meta.get('commit') or '?'}; "
        f"run took {meta['seconds'] / 60:.1f} min; load average at start {meta.get('load_start')}.",
        "",
        f"Cohort (seeded msprime, seed {cfg.seed}): {cfg.institutions} institutions x {cfg.samples:,} samples x "
        f"{cfg.mb:g} Mb" + (f" ({sites:,} sites)" if isinstance(sites, int) else "")
        + (f", {coh['vcf_gz_bytes'] / 1e6:.1f} MB of .vcf.gz" if coh.get("vcf_gz_bytes") else "") + ".",
        "",
        "## genolake vs peers (same run)",
        "",
        "Advantage = how many times faster (or smaller) genolake is than the peer; below 1 the peer wins. "
        "CI fails when it drops below the threshold (benchmarks/thresholds.toml).",
        "",
        "| comparison | genolake | peer | advantage | CI threshold |",
        "|---|---|---|---|---|",
    ]
    m = results.measures
    for c in results.comparisons:
        if c.ratio is None:
            continue
        g, p = m[c.genolake], m[c.peer]
        thr = "-" if c.threshold is None else f">= {c.threshold:.2f}x " + ("ok" if c.ok else "**FAIL**")
        lines.append(f"| {cell(c.what)} | {fmt_value(g.value, g.unit)} | {fmt_value(p.value, p.unit)} ({p.tool}) | "
                     f"{c.ratio:.2f}x | {thr} |")
    lines += ["", "## Targets from the issues", "", "| issue | target | figure | peer, same run | met |",
              "|---|---|---|---|---|"]
    for r in target_rows(results):
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['issue']} | {cell(r['target'])} | {cell(r['shown'])} | {cell(r['peer'])} | {met} |")
    if cfg.tier != "full":
        lines += ["", f"(The targets are stated for the full cohort; these figures come from the {cfg.tier} tier.)"]
    lines += storage_lines(results.extra.get("storage") or {})
    lines += ["", "## All measures", "", "| measure | tool | what | median | p95 | n | note |",
              "|---|---|---|---|---|---|---|"]
    for x in m.values():
        p95 = "-" if x.p95 is None else fmt_value(x.p95, x.unit)
        lines.append(f"| `{x.key}` | {x.tool} | {cell(x.what)} | {fmt_value(x.value, x.unit)} | {p95} | {x.n} | "
                     f"{cell(x.note)} |")
    if results.skipped or results.errors:
        lines += ["", "## Not measured", ""]
        lines += [f"- `{s.key}`: {s.reason}" for s in results.skipped]
        lines += [f"- `{s.key}`: **FAILED** {s.reason}" for s in results.errors]
    if plot:
        lines += ["", "## Scaling", "", f"![latency vs cohort size]({plot})"]
    if results.seconds:
        lines += ["", "Suite wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in results.seconds.items()) + "."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- storage breakdown
STORAGE_COHORTS = (("main", "GT:GQ:DP:AD cohort"), ("gt", "GT-only cohort"))


def storage_lines(storage: dict[str, Any], *, share: float = 0.02) -> list[str]:
    """Markdown: MB and bits per stored genotype per table and per column, for each storage cohort.

    A table (or column) gets its own row when it holds at least ``share`` of its lake in some cohort; the rest
    are summed into one row per table (columns) or one row for the lake (tables).
    """
    cohorts = [(k, label, storage[k]) for k, label in STORAGE_COHORTS if k in storage]
    if not cohorts:
        return []

    def big(rows_of: Any) -> list[str]:
        """Names whose bytes reach ``share`` of the lake in some cohort (by bytes in the first cohort)."""
        names: dict[str, int] = {}
        for _, _, d in cohorts:
            for name, b in rows_of(d).items():
                if b >= share * d["total_bytes"]:
                    names[name] = max(names.get(name, 0), b)
        first = rows_of(cohorts[0][2])
        return sorted(names, key=lambda n: -first.get(n, names[n]))

    def row(label: str, bytes_of: Any, *, optional: bool = False) -> list[str]:
        """One row (none when ``optional`` and every cohort has 0 bytes there)."""
        cells = []
        values = [bytes_of(d) for _, _, d in cohorts]
        if optional and not any(values):
            return []
        for (_, _, d), b in zip(cohorts, values, strict=True):
            cells.append("- | -" if b is None else f"{b / 1e6:.2f} | {8 * b / d['genotypes']:.3f}")
        return [f"| {label} | " + " | ".join(cells) + " |"]

    def tables(d: dict[str, Any]) -> dict[str, int]:
        return {n: t["parquet_bytes"] for n, t in d["tables"].items()}

    head = " | ".join(f"{label}: MB | bits/genotype" for _, label, _ in cohorts)
    lines = ["", "## Storage: bits per stored genotype", "",
             "Genotypes = records x samples of the input VCFs (" + "; ".join(
                 f"{label}: {d['genotypes']:,}" for _, label, d in cohorts) + "). Column bytes are the compressed "
             "column chunks in the Parquet footers of the files each Delta table's current version references.",
             "", f"| table / column | {head} |", "|---|" + "---|---|" * len(cohorts)]
    shown_tables = big(tables)
    for name in shown_tables:
        lines += row(f"`{name}` (Parquet)", lambda d, n=name: d["tables"].get(n, {}).get("parquet_bytes"))
        cols = big(lambda d, n=name: d["tables"].get(n, {}).get("columns", {}))
        for col in cols:
            lines += row(f"&nbsp;&nbsp;`{col}`",
                         lambda d, n=name, c=col: d["tables"].get(n, {}).get("columns", {}).get(c))

        def rest(d: dict[str, Any], n: str = name, cols: list[str] = cols) -> int | None:
            t = d["tables"].get(n)
            if t is None:
                return None
            return sum(v for c, v in t["columns"].items() if c not in cols)

        lines += row("&nbsp;&nbsp;other columns", rest, optional=True)
    lines += row("other tables (Parquet)", lambda d: sum(
        t["parquet_bytes"] for n, t in d["tables"].items() if n not in shown_tables), optional=True)
    lines += row("Parquet footers and page indexes (in the rows above)", lambda d: sum(
        t["footer_bytes"] for t in d["tables"].values()))
    lines += row("Delta logs (all tables)", lambda d: d["delta_log_bytes"])
    lines += row("files no table version references", lambda d: sum(
        t["unreferenced_bytes"] for t in d["tables"].values()), optional=True)
    lines += row("other files of the lake", lambda d: d["other_bytes"], optional=True)
    lines += row("**whole lake**", lambda d: d["total_bytes"])
    lines += row("the .vcf.gz files (peer)", lambda d: d["vcf_gz_bytes"])
    lines += row("vcf2zarr stores (peer)", lambda d: d.get("vcf_zarr_bytes"), optional=True)
    return lines


# ---------------------------------------------------------------- plot
def _panel(ax: Any, series: list[dict[str, Any]], lines: tuple[tuple[str, str, str], ...], *, ylabel: str,
           title: str) -> None:
    """One log-log panel of the scaling plot: a line per (series key, label, style) that has points."""
    for key, label, style in lines:
        pts = [(p["samples"], p[key]) for p in series if key in p]
        if pts:
            ax.plot([a for a, _ in pts], [b for _, b in pts], style, label=label)
    ax.set(xscale="log", yscale="log", xlabel="samples in the cohort", ylabel=ylabel, title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plot_scaling(results: Results, path: Path) -> bool:
    series: list[dict[str, Any]] = results.extra.get("scaling") or []
    if len(series) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["samples"] for p in series]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    _panel(ax1, series, (("point", "lake.variant (genolake)", "o-"), ("carriers", "lake.carriers (genolake)", "s-"),
                         ("point_pysam", "pysam fetch + AC/AN", "^--"), ("carriers_pysam", "pysam fetch + carriers", "v--")),
           ylabel="median latency (ms)", title="Point query and carriers")
    _panel(ax2, series, (("aggregate_genolake_s", "genolake aggregate (2 workers)", "o-"),
                         ("aggregate_bcftools_s", "bcftools +fill-tags", "^--"),
                         ("ingest_seconds", "genolake ingest (in process)", "s:")),
           ylabel="seconds", title="Aggregate and ingest time")
    fig.suptitle(f"genolake scaling: one institution per size, same sites ({xs[0]:,} to {xs[-1]:,} samples)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- write everything
def write(results: Results, cfg: Config, out: Path, meta: dict[str, Any]) -> tuple[Path, Path, str]:
    """Write <stem>.json, <stem>.md and <stem>.png (when there is a scaling series); return paths and the table."""
    machine = machine_info()
    name = stem(cfg.tier, machine, meta["started"])
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    plotted = plot_scaling(results, png)
    md = markdown(results, cfg, machine, meta, png.name if plotted else None)
    doc = {
        "tier": cfg.tier, "date": meta["date"], "seconds": meta["seconds"], "commit": meta.get("commit"),
        "machine": machine, "load_average": {"start": meta.get("load_start"), "end": meta.get("load_end")},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "targets": target_rows(results), **results.to_json(),
    }
    (out / f"{name}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    (out / f"{name}.md").write_text(md)
    return out / f"{name}.json", out / f"{name}.md", md


def now() -> datetime:
    return datetime.now(UTC)
