"""`genolake serve`, `genolake audit` and `genolake release` (thin: parse, call the library, print).

Registered on the main app by :func:`register`. FastAPI and uvicorn are imported inside `serve` only, so the
other commands (and `genolake query`) never load them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from genolake.cli_common import FormatOpt, LakeOpt, stderr_console

PolicyOpt = Annotated[Path | None, typer.Option("--policy", help="policy.toml (tokens, min_count, budget, audit).")]


def serve_cmd(
    lake: LakeOpt,
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    policy: PolicyOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes (each opens the lake).")] = 1,
    query_seconds: Annotated[float, typer.Option("--query-seconds", help="Time limit per query.")] = 10.0,
) -> None:
    """Serve the lake as a GA4GH Beacon v2 (/api) and genolake's JSON API (/v1), under the policy."""
    try:
        import uvicorn

        from genolake.serve.app import create_app
    except ImportError as exc:
        from genolake.errors import MissingExtraError

        raise MissingExtraError("serve", exc.name or "fastapi") from None
    from genolake.policy import Policy
    from genolake.store import LakeStore

    LakeStore.open(lake)  # a missing lake: one line, exit 2
    pol = Policy.load(policy) if policy else None
    if pol is None:
        stderr_console().print("genolake serve: no --policy: boolean answers only, no tokens", soft_wrap=True)
    logging.getLogger("genolake.serve").setLevel(logging.INFO)
    logging.getLogger("genolake.serve").propagate = False
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s genolake.serve %(message)s"))
    logging.getLogger("genolake.serve").addHandler(handler)
    cfg = dict(host=host, port=port, access_log=False, log_level="warning", limit_concurrency=256,
               h11_max_incomplete_event_size=16 * 1024, timeout_keep_alive=5)
    if workers > 1:
        os.environ["GENOLAKE_SERVE_LAKE"] = str(Path(lake).resolve())
        if policy:
            os.environ["GENOLAKE_SERVE_POLICY"] = str(Path(policy).resolve())
        os.environ["GENOLAKE_SERVE_QUERY_SECONDS"] = str(query_seconds)
        uvicorn.run("genolake.serve.app:create_app_from_env", factory=True, workers=workers, **cfg)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(lake, pol, query_seconds=query_seconds), **cfg)  # type: ignore[arg-type]


def audit_cmd(
    lake: LakeOpt,
    policy: PolicyOpt = None,
    log_file: Annotated[Path | None, typer.Option("--log", help="The audit log (default: [audit] path of the policy, "
                                                                 "else LAKE/audit.jsonl).")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Summarise the server's audit log: requests per token, endpoint, status; results; withheld counts."""
    from genolake.errors import UserInputError
    from genolake.output import emit_object
    from genolake.policy import Policy
    from genolake.serve.audit import summarise

    path = log_file
    if path is None and policy is not None:
        path = Policy.load(policy).audit_path
    if path is None:
        path = Path(lake) / "audit.jsonl"
    if not path.exists():
        raise UserInputError(f"{path}: no audit log there (give --policy with an [audit] path, or --log)")
    emit_object(summarise(path), fmt)


def release_cmd(
    lake: LakeOpt,
    policy: Annotated[Path, typer.Option("--policy", help="policy.toml: its [disclosure] min_count is applied.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Sites VCF to write (.vcf.gz, bgzipped + indexed).")],
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Also write the same columns as Parquet.")] = None,
) -> None:
    """A sites-only VCF of allele_frequencies in gnomAD naming (AC_joint, AC_<institution>, ...) under the policy."""
    from genolake.policy import Policy
    from genolake.release import release

    report = release(lake, Policy.load(policy), output, parquet=parquet)
    stderr_console().print(
        f"wrote {report['vcf']}: {report['records']:,} variants, {report['fields']} INFO fields, "
        f"{report['withheld']:,} values withheld (min_count {report['min_count']})"
        + (f"; {report['parquet']}" if report.get("parquet") else ""), soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `serve`, `audit` and `release` to the main app."""
    app.command("serve")(serve_cmd)
    app.command("audit")(audit_cmd)
    app.command("release")(release_cmd)
