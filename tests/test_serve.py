"""`genolake serve` as a real process on localhost, talked to with httpx: every endpoint and tier, tokens,
disclosure control, budget, audit log, lake updates, malformed requests, and every Beacon response validated
against the vendored Beacon v2 JSON schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("jsonschema")

from serve_fixtures import *  # noqa: F403
from serve_fixtures import TOKENS, build_lake, copy_lake, policy_text, start_server, validate

R = "framework/json/responses/"
VARIANT = "20-1335865-T-C"  # the planted variant of data/sample_vcfs
GV = {"referenceName": "20", "start": "1335864", "alternateBases": "C", "referenceBases": "T"}
K = 20


def beacon_valid(body: dict[str, Any]) -> None:
    g = body["meta"].get("returnedGranularity")
    schema = {"boolean": "beaconBooleanResponse.json", "count": "beaconCountResponse.json",
              "record": "beaconResultsetsResponse.json"}[g]
    validate(body, R + schema)
    if g == "record":
        for rs in body["response"]["resultSets"]:
            for rec in rs["results"]:
                validate(rec, "models/json/beacon-v2-default-model/genomicVariations/defaultSchema.json")


def error_valid(resp: Any, code: int) -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    body = resp.json()
    validate(body, R + "beaconErrorResponse.json")
    assert body["error"]["errorCode"] == code
    return body


def no_small_counts(obj: Any, path: str = "") -> None:
    """No count from 1 to K-1 (allele numbers: 1 to 2K-1) anywhere in an answer."""
    counts = {"ac", "nhomalt", "nhemi", "carriers", "samples", "alleleCount", "alleleCountHomozygous",
              "alleleCountHemizygous"}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, int) and not isinstance(v, bool):
                if k in counts:
                    assert not 1 <= v < K, f"{path}.{k} = {v}"
                if k in ("an", "alleleNumber"):
                    assert not 1 <= v < 2 * K, f"{path}.{k} = {v}"
            no_small_counts(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            no_small_counts(v, f"{path}[{i}]")


# ----------------------------------------------------------------------------------- informational
@pytest.mark.parametrize("path,schema", [
    ("/api", "beaconInfoResponse.json"), ("/api/info", "beaconInfoResponse.json"),
    ("/api/configuration", "beaconConfigurationResponse.json"), ("/api/map", "beaconMapResponse.json"),
    ("/api/entry_types", "beaconEntryTypesResponse.json"),
    ("/api/filtering_terms", "beaconFilteringTermsResponse.json"),
    ("/api/service-info", "ga4gh-service-info-1-0-0-schema.json"),
])
def test_informational_endpoints_validate(served: Any, path: str, schema: str) -> None:
    with served.client() as c:
        r = c.get(path)
    assert r.status_code == 200, r.text
    validate(r.json(), R + schema)


def test_configuration_declares_security_and_filtering_terms_are_phenotypes(served: Any) -> None:
    with served.client() as c:
        conf = c.get("/api/configuration").json()["response"]
        terms = c.get("/api/filtering_terms").json()["response"]["filteringTerms"]
    assert conf["securityAttributes"]["defaultGranularity"] == "boolean"
    assert set(conf["securityAttributes"]["securityLevels"]) == {"PUBLIC", "REGISTERED", "CONTROLLED"}
    ids = {t["id"] for t in terms}
    assert {"sex=female", "sex=male"} <= ids


def test_openapi_document(served: Any) -> None:
    with served.client() as c:
        doc = c.get("/openapi.json").json()
    for p in ("/api/g_variants", "/v1/variant/{variant}", "/v1/region/{region}", "/v1/gene/{symbol}",
              "/v1/carriers/{variant}", "/api/filtering_terms"):
        assert p in doc["paths"]


# ----------------------------------------------------------------------------------- g_variants
def test_anonymous_gets_boolean_only(served: Any) -> None:
    with served.client() as c:
        r = c.get("/api/g_variants", params={**GV, "requestedGranularity": "record"})
        post = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": {"referenceName": "20", "start": [1335864], "alternateBases": "C"},
            "requestedGranularity": "record"}})
    for resp in (r, post):
        assert resp.status_code == 200
        body = resp.json()
        beacon_valid(body)
        assert body["meta"]["returnedGranularity"] == "boolean"
        assert body["responseSummary"] == {"exists": True}
        assert "response" not in body


def test_registered_record_matches_the_lake_under_disclosure(served: Any, serve_lake: Path) -> None:
    import genolake

    with served.client(TOKENS["reg"]) as c:
        body = c.get("/api/g_variants", params=GV).json()
    beacon_valid(body)
    assert body["meta"]["returnedGranularity"] == "record"
    sets = {rs["id"]: rs for rs in body["response"]["resultSets"]}
    assert set(sets) == {"joint", "north", "south", "east"}
    truth = {f["scope"]: f for f in genolake.open(serve_lake).variant(VARIANT)["frequencies"]}
    for scope, rs in sets.items():
        rec = rs["results"][0]
        assert rec["variantInternalId"] == VARIANT
        loc = rec["variation"]["location"]["interval"]
        assert (loc["start"]["value"], loc["end"]["value"]) == (1335864, 1335865)  # 0-based interbase
        pops = {p["population"]: p for p in rec.get("frequencyInPopulations", [{}])[0].get("frequencies", [])}
        if scope in pops:
            p = pops[scope]
            assert p["alleleCount"] == truth[scope]["ac"] and p["alleleNumber"] == truth[scope]["an"]
            assert p["alleleFrequency"] == pytest.approx(truth[scope]["af"])
            for field, col in (("alleleCountHomozygous", "nhomalt"), ("alleleCountHemizygous", "nhemi")):
                assert p[field] is None or p[field] == truth[scope][col]
    no_small_counts(body)


def test_post_flat_and_nested_and_count(served: Any) -> None:
    rp = {"referenceName": "20", "start": [1335864], "alternateBases": "C", "assemblyId": "GRCh37"}
    with served.client(TOKENS["reg"]) as c:
        flat = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": rp, "requestedGranularity": "record"}}).json()
        nested = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": {"g_variant": rp}, "requestedGranularity": "record"}}).json()
        count = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": rp, "requestedGranularity": "count"}}).json()
        default = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": rp}}).json()
    for b in (flat, nested, count, default):
        beacon_valid(b)
    assert flat["response"] == nested["response"]
    assert count["responseSummary"] == {"exists": True, "numTotalResults": 1}
    assert default["meta"]["returnedGranularity"] == "boolean"  # the Beacon default for POST


def test_range_query_pagination_and_misses(served: Any, serve_lake: Path) -> None:
    import genolake

    lk = genolake.open(serve_lake)
    t = lk.region("20:1200000-1250000", min_ac=1).to_pylist()
    with served.client(TOKENS["reg"]) as c:
        q = {"referenceName": "20", "start": "1199999", "end": "1250000", "requestedGranularity": "count"}
        count = c.get("/api/g_variants", params=q).json()
        p1 = c.get("/api/g_variants", params={**q, "requestedGranularity": "record", "limit": 3}).json()
        p2 = c.get("/api/g_variants", params={**q, "requestedGranularity": "record", "limit": 3, "skip": 3}).json()
        miss = c.get("/api/g_variants", params={"referenceName": "20", "start": "1335864",
                                                "alternateBases": "G"}).json()
        snv = c.get("/api/g_variants", params={**q, "variantType": "SNP"}).json()
    for b in (count, p1, p2, miss, snv):
        beacon_valid(b)
    assert count["responseSummary"]["numTotalResults"] == len(t)
    ids1 = [r["variantInternalId"] for r in p1["response"]["resultSets"][0]["results"]]
    ids2 = [r["variantInternalId"] for r in p2["response"]["resultSets"][0]["results"]]
    want = [f"{r['contig']}-{r['pos']}-{r['ref']}-{r['alt']}" for r in t]
    assert ids1 == want[:3] and ids2 == want[3:6]
    assert miss["responseSummary"]["exists"] is False and miss["response"]["resultSets"] == []
    n_snv = sum(1 for r in t if len(r["ref"]) == len(r["alt"]) == 1)
    assert snv["responseSummary"]["numTotalResults"] == n_snv


def test_filters_count_the_stratum_and_protect_its_complement(served: Any, serve_lake: Path) -> None:
    import genolake

    rows = genolake.open(serve_lake).region("20:1335865-1335865", where="sex = 'female'").to_pylist()
    row = next(r for r in rows if r["alt"] == "C")
    with served.client(TOKENS["reg"]) as c:
        body = c.get("/api/g_variants", params={**GV, "filters": "sex=female"}).json()
        post = c.post("/api/g_variants", json={"meta": {"apiVersion": "2.0"}, "query": {
            "requestParameters": {"referenceName": "20", "start": [1335864], "alternateBases": "C"},
            "filters": [{"id": "sex", "operator": "=", "value": "female"}], "requestedGranularity": "record"}}).json()
        bad = c.get("/api/g_variants", params={**GV, "filters": "sex=martian"})
    beacon_valid(body)
    beacon_valid(post)
    assert body["response"] == post["response"]
    (rs,) = body["response"]["resultSets"]
    assert rs["id"] == "joint|sex=female"
    pops = rs["results"][0].get("frequencyInPopulations", [{"frequencies": []}])[0]["frequencies"]
    rest_ac, rest_an = row["ac"] - row["where_ac"], row["an"] - row["where_an"]
    if row["where_ac"] >= K and rest_ac >= K and rest_an >= 2 * K and row["where_an"] >= 2 * K:
        assert pops[0]["alleleCount"] == row["where_ac"] and pops[0]["alleleNumber"] == row["where_an"]
    no_small_counts(body)
    error_valid(bad, 400)


def test_small_counts_are_withheld_with_their_complements(served: Any, serve_lake: Path) -> None:
    """A variant where one institution's AC is from 1 to K-1: null in the answer, and not recoverable as the
    joint minus the other institutions."""
    import genolake

    lk = genolake.open(serve_lake)
    rows = lk.sql("SELECT contig, pos, ref, alt FROM allele_frequencies WHERE stratum = 'all' AND scope <> 'joint' "
                  "GROUP BY ALL HAVING min(ac) BETWEEN 1 AND 19 AND max(ac) >= 20 ORDER BY pos LIMIT 3").to_pylist()
    assert rows, "the sample lake has variants with a small institution count"
    for r in rows:
        vid = f"{r['contig']}-{r['pos']}-{r['ref']}-{r['alt']}"
        with served.client(TOKENS["reg"]) as c:
            rep = c.get(f"/v1/variant/{vid}").json()
        no_small_counts(rep)
        freqs = {f["scope"]: f for f in rep["frequencies"]}
        insts = [s for s in freqs if s != "joint"]
        hidden = [s for s in insts if freqs[s]["ac"] is None]
        assert hidden
        assert "ac" in freqs[hidden[0]]["suppressed"] and freqs[hidden[0]]["af"] is None
        if freqs["joint"]["ac"] is not None:
            assert len(hidden) >= 2  # else joint - shown institutions = the withheld one
        assert rep["disclosure"]["min_count"] == K and rep["disclosure"]["withheld"] > 0


# ----------------------------------------------------------------------------------- tiers and tokens
def test_v1_variant_is_the_query_json_under_the_policy(served: Any, serve_lake: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "genolake", "query", "variant", VARIANT, "--lake", str(serve_lake),
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    cli = json.loads(out)
    with served.client(TOKENS["reg"]) as c:
        rep = c.get(f"/v1/variant/{VARIANT}").json()
    assert set(rep) == set(cli) | {"disclosure"}
    assert {k: v for k, v in rep["variant"].items() if k != "lake_version"} == cli["variant"]
    for mine, theirs in zip(rep["frequencies"], cli["frequencies"], strict=True):
        for k, v in theirs.items():
            assert mine[k] == v or (mine[k] is None and (k in mine["suppressed"] or k == "af"))


def test_member_sees_own_institution_rows_only(served: Any) -> None:
    with served.client(TOKENS["north"]) as north, served.client(TOKENS["south"]) as south:
        n = north.get(f"/v1/carriers/{VARIANT}")
        s = south.get(f"/v1/carriers/{VARIANT}")
    assert n.status_code == 200 and s.status_code == 200
    assert n.json() and {r["institution"] for r in n.json()} == {"north"}
    assert {r["institution"] for r in s.json()} == {"south"}
    assert not {r["sample_id"] for r in n.json()} & {r["sample_id"] for r in s.json()}


def test_member_sees_own_small_counts(served: Any, serve_lake: Path) -> None:
    import genolake

    lk = genolake.open(serve_lake)
    r = lk.sql("SELECT contig, pos, ref, alt, ac FROM allele_frequencies WHERE stratum = 'all' AND scope = 'north' "
               "AND ac BETWEEN 1 AND 19 ORDER BY pos LIMIT 1").to_pylist()[0]
    vid = f"{r['contig']}-{r['pos']}-{r['ref']}-{r['alt']}"
    with served.client(TOKENS["north"]) as c:
        rep = c.get(f"/v1/variant/{vid}").json()
    north = next(f for f in rep["frequencies"] if f["scope"] == "north")
    assert north["ac"] == r["ac"]


@pytest.mark.parametrize("path", [f"/v1/variant/{VARIANT}", "/v1/region/20:1335000-1336000",
                                  f"/v1/carriers/{VARIANT}", "/v1/gene/BRCA2"])
def test_anonymous_and_wrong_tokens_get_401(served: Any, path: str) -> None:
    with served.client() as anon, served.client("not-a-token") as wrong:
        error_valid(anon.get(path), 401)
        error_valid(wrong.get(path), 401)
        error_valid(wrong.get("/api/g_variants", params=GV), 401)
    import httpx

    r = httpx.get(served.url + path, headers={"Authorization": "Basic abc"})
    error_valid(r, 401)


def test_registered_cannot_read_rows(served: Any) -> None:
    with served.client(TOKENS["reg"]) as c:
        error_valid(c.get(f"/v1/carriers/{VARIANT}"), 403)


def test_region_and_gene(served: Any, serve_lake: Path) -> None:
    import genolake

    want = genolake.open(serve_lake).region("20:1200000-1250000").to_pylist()
    with served.client(TOKENS["reg"]) as c:
        rows = c.get("/v1/region/20:1200000-1250000").json()
        gene = c.get("/v1/gene/BRCA2")
    assert [(r["pos"], r["ref"], r["alt"]) for r in rows] == [(r["pos"], r["ref"], r["alt"]) for r in want]
    for mine, theirs in zip(rows, want, strict=True):
        assert mine["ac"] == theirs["ac"] or (mine["ac"] is None and 1 <= theirs["ac"] < K)
    no_small_counts(rows)
    error_valid(gene, 400)  # the lake is not annotated: the query's own message


# ----------------------------------------------------------------------------------- malformed requests
@pytest.mark.parametrize("params", [
    {"referenceName": "20", "start": "abc", "alternateBases": "C"},
    {"referenceName": "20", "start": "-5", "alternateBases": "C"},
    {"referenceName": "20", "start": "1,2,3", "end": "5"},
    {"referenceName": "20", "start": "100"},
    {"start": "100", "alternateBases": "C"},
    {"referenceName": "20", "start": "100", "end": "50"},
    {"referenceName": "20", "start": "0", "end": "900000000"},
    {"referenceName": "20", "start": "100", "alternateBases": "XYZ"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "assemblyId": "GRCh38"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "assemblyId": "mouse"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "requestedGranularity": "everything"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "skip": "-1"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "filters": "nosuch=1"},
    {"referenceName": "20", "start": "100", "alternateBases": "C", "filters": "a=1,b=2,c=3,d=4"},
    {"referenceName": "chr99", "start": "100", "alternateBases": "C"},
])
def test_malformed_get_is_400(served: Any, params: dict[str, str]) -> None:
    with served.client(TOKENS["reg"]) as c:
        error_valid(c.get("/api/g_variants", params=params), 400)


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"query": 5}', b'{"query": {"requestParameters": 5}}',
                                  b'{"query": {"requestParameters": {"start": [true]}}}',
                                  b'{"query": {"requestParameters": {"nosuch": 1}}}',
                                  b'{"query": {"pagination": {"limit": "x"}}}', b"\xff\xfe"])
def test_malformed_post_is_400(served: Any, body: bytes) -> None:
    with served.client(TOKENS["reg"]) as c:
        error_valid(c.post("/api/g_variants", content=body, headers={"content-type": "application/json"}), 400)


def test_too_large_body_and_unknown_paths(served: Any) -> None:
    with served.client(TOKENS["reg"]) as c:
        error_valid(c.post("/api/g_variants", content=b"{" + b" " * 70_000 + b"}"), 413)
        error_valid(c.get("/api/nothing"), 404)
        error_valid(c.get("/v1/variant/not-a-variant"), 400)
        error_valid(c.get("/v1/region/20:5-1"), 400)
        error_valid(c.delete("/api/g_variants"), 405)


# ----------------------------------------------------------------------------------- audit
def test_audit_log_one_line_per_request_and_no_ids(served: Any) -> None:
    before = served.audit.read_text().count("\n") if served.audit.exists() else 0
    with served.client(TOKENS["north"]) as c:
        rows = c.get(f"/v1/carriers/{VARIANT}").json()
        c.get("/api/g_variants", params=GV)
        c.get("/api/info")
    text = served.audit.read_text()
    lines = [json.loads(x) for x in text.splitlines()]
    assert len(lines) == before + 3
    last = lines[-3:]
    assert [e["endpoint"] for e in last] == ["/v1/carriers", "/api/g_variants", "/api/info"]
    assert all(e["principal"] == "north-analyst" and e["tier"] == "member" for e in last)
    assert last[0]["results"] == len(rows)
    assert isinstance(last[1]["withheld"], list) and len(last[1]["withheld"]) == last[1]["suppressed"]
    for r in rows:  # no pseudonym (nor raw ID) reaches the audit log
        assert r["sample_id"] not in text
    assert TOKENS["north"] not in text
    out = subprocess.run([sys.executable, "-m", "genolake", "audit", "--lake", "unused", "--policy",
                          str(served.policy), "--format", "json"], capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    assert summary["requests"] == len(lines)
    assert summary["by_principal"]["north-analyst"] >= 3


# ----------------------------------------------------------------------------------- budget, no policy, updates
def test_budget_answers_429(serve_lake: Path, tmp_path: Path) -> None:
    srv = start_server(serve_lake, tmp_path, policy=policy_text(tmp_path / "audit.jsonl", per_hour=3))
    try:
        with srv.client(TOKENS["reg"]) as c, srv.client() as anon:
            codes = [c.get("/api/g_variants", params=GV).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            error_valid(c.get(f"/v1/variant/{VARIANT}"), 429)
            assert c.get("/api/info").status_code == 200  # informational endpoints are not counted
            assert anon.get("/api/g_variants", params=GV).status_code == 200  # anonymous: its own budget
    finally:
        srv.stop()
    statuses = [json.loads(x)["status"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert statuses.count(429) == 2


def test_without_policy_boolean_only(serve_lake: Path, tmp_path: Path) -> None:
    srv = start_server(serve_lake, tmp_path)
    try:
        with srv.client(TOKENS["reg"]) as c, srv.client() as anon:
            error_valid(c.get("/api/g_variants", params=GV), 401)  # no tokens exist
            body = anon.get("/api/g_variants", params={**GV, "requestedGranularity": "record"}).json()
            beacon_valid(body)
            assert body["meta"]["returnedGranularity"] == "boolean"
    finally:
        srv.stop()


def test_lake_updates_are_picked_up_without_restart(serve_lake: Path, tmp_path: Path) -> None:
    """A new institution ingested while the server runs appears in the answers (and the cache is dropped)."""
    from serve_fixtures import SAMPLE

    from genolake.ingest.pipeline import ingest

    lake = copy_lake(serve_lake, tmp_path / "lake")
    srv = start_server(lake, tmp_path / "srv", policy=policy_text(tmp_path / "srv" / "audit.jsonl"))
    try:
        with srv.client(TOKENS["reg"]) as c:
            before = c.get("/api/g_variants", params=GV).json()
            v0 = c.get("/api/info").json()["response"]["info"]["lakeVersion"]
            assert {rs["id"] for rs in before["response"]["resultSets"]} == {"joint", "north", "south", "east"}
            # a fifth hospital's file: the south VCF with another header line (so another file checksum)
            text = (SAMPLE / "south.vcf").read_text().split("\n", 1)
            west = tmp_path / "west.vcf"
            west.write_text(text[0] + "\n##comment=west copy for the test\n" + text[1])
            ingest(lake, "west", [west], workers=0)
            deadline = time.monotonic() + 30
            while True:
                after = c.get("/api/g_variants", params=GV).json()
                if "west" in {rs["id"] for rs in after["response"]["resultSets"]}:
                    break
                assert time.monotonic() < deadline, "the server did not pick up the new commit"
                time.sleep(0.3)
            assert c.get("/api/info").json()["response"]["info"]["lakeVersion"] != v0
            beacon_valid(after)
    finally:
        srv.stop()


def test_bad_policy_is_one_line(serve_lake: Path, tmp_path: Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text('[[tokens]]\nname = "x"\nsha256 = "abc"\ntier = "registered"\n')
    r = subprocess.run([sys.executable, "-m", "genolake", "serve", "--lake", str(serve_lake), "--policy", str(pol)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "sha256 must be 64 hex digits" in r.stderr


# ----------------------------------------------------------------------------------- schemathesis
def test_schemathesis_against_openapi(served: Any, tmp_path: Path) -> None:
    """Property-based requests from /openapi.json (bounded): no 500, documented status codes."""
    if shutil.which("schemathesis") is None:
        pytest.skip("schemathesis not installed")
    r = subprocess.run(["schemathesis", "run", served.url + "/openapi.json", "--max-examples", "15",
                        "--checks", "not_a_server_error,status_code_conformance", "--phases", "examples,fuzzing",
                        "-H", f"Authorization: Bearer {TOKENS['north']}", "--workers", "1", "--no-color"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_build_lake_helper_is_importable() -> None:
    assert callable(build_lake)


def test_watchdog_interrupts_a_long_query(serve_lake: Path) -> None:
    """The query time limit: the server's watchdog interrupts the lake's DuckDB connection past its deadline
    (the server then answers 503)."""
    import duckdb

    from genolake.policy import Policy
    from genolake.serve.app import Watchdog
    from genolake.serve.service import Service

    svc = Service(serve_lake, Policy.boolean_only())
    dog = Watchdog(svc.interrupt, tick=0.02)
    try:
        dog.arm(0.2)
        t0 = time.monotonic()
        with pytest.raises(duckdb.InterruptException):
            svc.lake.engine.con.execute("SELECT count(*) FROM range(1000000000000) a, range(10) b").fetchall()
        assert time.monotonic() - t0 < 30
    finally:
        dog.stop()
