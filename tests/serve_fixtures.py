"""A lake, a policy and a real `genolake serve` process for the serve and release tests.

The lake is the repository's sample data (data/sample_vcfs: three institutions of 100 1000 Genomes samples each,
chr20, with phenotypes), aggregated by sex. Servers run as separate processes (`python -m genolake serve`) on a
free localhost port and are talked to with httpx. Responses are validated against the vendored Beacon v2 JSON
schemas (tests/data/beacon-v2) with a local resolver: nothing is fetched from the network.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["TOKENS", "serve_lake", "served", "start_server", "validate"]

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample_vcfs"
SCHEMAS = Path(__file__).resolve().parent / "data" / "beacon-v2"
RAW = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
TOKENS = {"reg": "registered-token-0001", "north": "north-member-token-0002", "south": "south-member-token-0003"}


def policy_text(audit: Path, *, min_count: int = 20, per_hour: int = 100_000) -> str:
    from genolake.policy import token_digest

    return f"""
[disclosure]
min_count = {min_count}

[[tokens]]
name = "analyst"
sha256 = "{token_digest(TOKENS['reg'])}"
tier = "registered"

[[tokens]]
name = "north-analyst"
sha256 = "{token_digest(TOKENS['north'])}"
tier = "member"
institution = "north"

[[tokens]]
name = "south-analyst"
sha256 = "{token_digest(TOKENS['south'])}"
tier = "member"
institution = "south"

[budget]
queries_per_hour = {per_hour}

[audit]
path = "{audit.name}"
"""


def build_lake(path: Path, *, aggregate: bool = True) -> Path:
    from genolake.ingest.pipeline import ingest
    from genolake.phenotypes import load_phenotypes

    for inst, name in (("north", "north.vcf.gz"), ("south", "south.vcf"), ("east", "east.bcf")):
        ingest(path, inst, [SAMPLE / name], workers=0)
        load_phenotypes(path, inst, SAMPLE / f"{inst}.phenotypes.tsv")
    if aggregate:
        from genolake.compute.aggregate import aggregate as run_aggregate

        run_aggregate(path, by=["sex"], workers=0)
    return path


@pytest.fixture(scope="session")
def serve_lake(tmp_path_factory: pytest.TempPathFactory, _session_key_dir: Path) -> Path:
    """The sample-data lake with allele_frequencies (by sex); read-only for the tests that share it."""
    return build_lake(tmp_path_factory.mktemp("serve") / "lake")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen  # type: ignore[type-arg]
    policy: Path | None
    audit: Path | None
    log: Path

    def client(self, token: str | None = None) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(lake: Path, folder: Path, *, policy: str | None = None, extra: list[str] | None = None) -> Server:
    """`python -m genolake serve` on a free port; returns when /api/info answers."""
    import httpx

    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "genolake", "serve", "--lake", str(lake), "--port", str(port := free_port())]
    pol_path = audit = None
    if policy is not None:
        pol_path = folder / "policy.toml"
        pol_path.write_text(policy)
        args += ["--policy", str(pol_path)]
        audit = folder / "audit.jsonl"
    log = folder / "server.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(log, "wb") as fh:
        proc = subprocess.Popen(args + (extra or []), stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/api/info", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return Server(url, proc, pol_path, audit, log)


@pytest.fixture(scope="session")
def served(serve_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on the shared lake with the three-token policy (min_count 20)."""
    folder = tmp_path_factory.mktemp("served")
    srv = start_server(serve_lake, folder, policy=policy_text(folder / "audit.jsonl"))
    yield srv
    srv.stop()


# ------------------------------------------------------------------------------- schema validation
_VALIDATORS: dict[str, Any] = {}
# VRS 1.3 is not vendored: a stand-in that tells its kinds apart by `type` (so the oneOf of the Beacon variation
# picks LegacyVariation for a genolake record) and checks a Location only for being an object
VRS_STANDIN = {"definitions": {
    "Location": {"type": "object"},
    "MolecularVariation": {"type": "object", "required": ["type"],
                           "properties": {"type": {"enum": ["Allele", "Haplotype"]}}},
    "SystemicVariation": {"type": "object", "required": ["type"],
                          "properties": {"type": {"enum": ["CopyNumber", "Genotype"]}}},
}}


def _registry() -> Any:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    def retrieve(uri: str) -> Resource:  # type: ignore[type-arg]
        if uri.startswith("https://w3id.org/ga4gh/schema/vrs/"):
            return Resource.from_contents(VRS_STANDIN, default_specification=DRAFT202012)  # not vendored (README)
        if uri.startswith(RAW):
            path = SCHEMAS / uri[len(RAW):]
        elif uri.startswith("file://"):
            path = Path(uri[len("file://"):])
        else:
            raise LookupError(f"schema {uri} is not vendored (no network at test time)")
        return Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT202012)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


def validate(instance: Any, schema: str) -> None:
    """Validate against a vendored schema, e.g. ``framework/json/responses/beaconInfoResponse.json``."""
    import jsonschema

    v = _VALIDATORS.get(schema)
    if v is None:
        path = SCHEMAS / schema
        doc = json.loads(path.read_text())
        doc = {k: val for k, val in doc.items() if k != "$id"}
        doc["$id"] = path.as_uri()
        v = _VALIDATORS[schema] = jsonschema.Draft202012Validator(doc, registry=_registry())
    errors = sorted(v.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema}: {errors[0].message} at {list(errors[0].path)}"


def copy_lake(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
