"""The ASGI app of `genolake serve` (FastAPI on uvicorn; docs/SERVING.md says why).

Every request goes through :func:`_handle`: authenticate (Bearer token, constant-time), check the budget,
run the query on the lake thread with a time limit, write one audit line and one log line. Errors are Beacon
error responses (``{"meta": ..., "error": {"errorCode", "errorMessage"}}``): 400 for a bad request, 401/403 for
access, 404, 413 for a too large body, 429 past the budget, 503 past the time limit; never a 500 for user input.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from genolake import __version__
from genolake.errors import GenolakeError, UserInputError
from genolake.policy import ANONYMOUS, Policy, Principal
from genolake.serve import beacon as bc
from genolake.serve.audit import AuditLog
from genolake.serve.service import Forbidden, Outcome, Service

log = logging.getLogger("genolake.serve")

MAX_BODY = 64 * 1024
QUERY_SECONDS = 10.0
MAX_AUDIT_CELLS = 200  # withheld cells named per audit line
INFORMATIONAL = frozenset({"/api", "/api/info", "/api/service-info", "/api/configuration", "/api/map",
                           "/api/entry_types", "/api/filtering_terms", "/openapi.json"})
_ERR = {"description": "Beacon error response (beaconErrorResponse)",
        "content": {"application/json": {"schema": {"type": "object", "required": ["meta", "error"],
                                                    "properties": {"meta": {"type": "object"},
                                                                   "error": {"type": "object"}}}}}}
ERRORS: dict[int | str, dict[str, Any]] = {400: _ERR, 401: _ERR, 403: _ERR, 404: _ERR, 413: _ERR, 429: _ERR,
                                           503: _ERR}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False, default=str).encode()


class Watchdog:
    """One thread that interrupts the lake's DuckDB connection when a query passes its deadline."""

    def __init__(self, interrupt: Any, tick: float = 0.05) -> None:
        self._interrupt = interrupt
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._tick = tick
        self._thread = threading.Thread(target=self._run, name="genolake-watchdog", daemon=True)
        self._thread.start()

    def arm(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def disarm(self) -> None:
        self._deadline = None

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            d = self._deadline
            if d is not None and time.monotonic() > d:
                self._deadline = None
                log.warning("query past its time limit: interrupted")
                self._interrupt()


class Budget:
    """Requests per hour per principal (token name, or client address for anonymous requests)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._seen: dict[str, deque[float]] = {}

    def take(self, who: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if len(self._seen) > 100_000:  # many addresses: forget those with nothing left in the window
            self._seen = {k: v for k, v in self._seen.items() if v and now - v[-1] < 3600}
        q = self._seen.setdefault(who, deque())
        while q and now - q[0] >= 3600:
            q.popleft()
        if len(q) >= self.per_hour:
            return False
        q.append(now)
        return True


def create_app(lake: str | Path, policy: Policy | None = None, *, query_seconds: float = QUERY_SECONDS,
               max_body: int = MAX_BODY, refresh_seconds: float = 0.5) -> FastAPI:
    """The app over ``lake`` under ``policy`` (None: boolean-only, no tokens)."""
    pol = policy or Policy.boolean_only()
    service = Service(lake, pol, refresh_seconds=refresh_seconds)
    audit = AuditLog(pol.audit_path)
    budget = Budget(pol.queries_per_hour)
    watchdog = Watchdog(service.interrupt)
    beacon_id = service.beacon_id

    app = FastAPI(
        title="genolake Beacon v2 and JSON API",
        version=__version__,
        description="GA4GH Beacon v2 (g_variants) and genolake's own /v1 API over a genolake lake, under a "
                    "disclosure-control policy (docs/SERVING.md). Tokens: Authorization: Bearer <token>.",
        docs_url=None, redoc_url=None,
    )
    app.state.service = service

    def error(code: int, message: str) -> JSONResponse:
        return JSONResponse(bc.error_body(beacon_id, code, message), status_code=code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body"))
        return error(400, f"invalid request: {where}: {first.get('msg', 'malformed')}".strip())

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        msg = {404: f"no such endpoint: {request.url.path}", 405: "method not allowed"}.get(exc.status_code,
                                                                                          str(exc.detail))
        return error(exc.status_code, msg)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:  # pragma: no cover - a bug
        log.exception("internal error on %s", request.url.path)
        return error(500, "internal error (logged on the server)")

    @app.on_event("shutdown")
    def _close() -> None:
        watchdog.stop()
        audit.close()

    async def _handle(request: Request, endpoint: str, params: dict[str, Any], work: Any) -> Response:
        """Authenticate, budget, run ``work(principal)`` on the lake thread, audit and log."""
        t0 = time.perf_counter()
        client = request.client.host if request.client else "?"
        principal: Principal | None = pol.authenticate(request.headers.get("authorization"))
        outcome: Outcome | None = None
        status = 200
        try:
            if principal is None:
                raise Forbidden("the Bearer token is not valid", 401)
            who = principal.name if principal is not ANONYMOUS else f"address:{client}"
            if endpoint not in INFORMATIONAL and not budget.take(who):
                raise Forbidden(f"query budget of {pol.queries_per_hour} per hour used up; try again later", 429)
            # the query runs on the event loop's thread: one lake connection, requests served one at a time
            # (a thread hop costs more than a cached answer); the watchdog interrupts DuckDB past the limit
            watchdog.arm(query_seconds)
            try:
                service.maybe_refresh()
                outcome = work(principal)
            except duckdb.InterruptException:
                raise Forbidden(f"the query took longer than {query_seconds:g} s and was stopped", 503) from None
            finally:
                watchdog.disarm()
            status = outcome.status
            resp: Response = JSONResponse(outcome.body, status_code=status, headers=outcome.headers)
        except Forbidden as exc:
            status = exc.code
            resp = error(status, str(exc))
            if status == 401:
                resp.headers["WWW-Authenticate"] = "Bearer"
        except bc.BeaconError as exc:
            status = exc.code
            resp = error(status, str(exc))
        except GenolakeError as exc:
            status = 400 if isinstance(exc, UserInputError) else 409
            resp = error(status, str(exc))
        ms = (time.perf_counter() - t0) * 1000
        name = principal.name if principal is not None else "invalid-token"
        tier = principal.tier if principal is not None else "none"
        audit.write({"principal": name, "tier": tier, "client": client, "endpoint": endpoint,
                     "method": request.method, "params": params, "status": status,
                     "granularity": outcome.granularity if outcome else None,
                     "results": outcome.results if outcome else 0,
                     "suppressed": outcome.suppressed if outcome else 0,
                     "withheld": outcome.withheld[:MAX_AUDIT_CELLS] if outcome else [], "ms": round(ms, 2)})
        log.info("%s %s %d %.1fms %s", request.method, request.url.path, status, ms, name)
        return resp

    async def _body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise Forbidden(f"request body larger than {max_body} bytes", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise Forbidden(f"request body larger than {max_body} bytes", 413)
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise bc.BeaconError(f"the request body is not JSON ({exc})") from None

    # ------------------------------------------------------------------ informational endpoints
    def info_response() -> dict[str, Any]:
        return {"meta": bc.info_meta(beacon_id), "response": {
            "id": beacon_id, "name": "genolake Beacon", "apiVersion": bc.API_VERSION, "environment": "prod",
            "organization": {"id": "genolake", "name": "genolake consortium"},
            "description": f"Allele counts and frequencies of a genolake lake ({service.build}), per institution "
                           f"and joint, under disclosure control (min_count {pol.min_count}).",
            "version": __version__, "info": {"lakeVersion": service.version(), "build": service.build}}}

    @app.get("/api", responses=ERRORS, tags=["beacon"])
    async def root(request: Request) -> Response:
        return await _handle(request, "/api", {}, lambda p: Outcome(info_response()))

    @app.get("/api/info", responses=ERRORS, tags=["beacon"])
    async def info(request: Request) -> Response:
        return await _handle(request, "/api/info", {}, lambda p: Outcome(info_response()))

    @app.get("/api/service-info", responses=ERRORS, tags=["beacon"])
    async def service_info(request: Request) -> Response:
        body = {"id": beacon_id, "name": "genolake Beacon",
                "type": {"group": "org.ga4gh", "artifact": "beacon", "version": bc.API_VERSION},
                "description": "GA4GH Beacon v2 over a genolake lake", "organization": {
                    "name": "genolake consortium", "url": "https://github.com/genolake"},
                "version": __version__, "environment": "prod"}
        return await _handle(request, "/api/service-info", {}, lambda p: Outcome(body))

    def configuration() -> dict[str, Any]:
        return {
            "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/json/"
                       "configuration/beaconConfigurationSchema.json",
            "maturityAttributes": {"productionStatus": "PROD"},
            "securityAttributes": {"defaultGranularity": "boolean",
                                   "securityLevels": ["PUBLIC", "REGISTERED", "CONTROLLED"]},
            "entryTypes": entry_types(),
        }

    def entry_types() -> dict[str, Any]:
        return {"genomicVariant": {
            "id": "genomicVariant", "name": "Genomic Variants",
            "ontologyTermForThisType": {"id": "ENSGLOSSARY:0000092", "label": "Variant"},
            "partOfSpecification": "Beacon v2.0.0",
            "description": "Split, normalised alleles of the lake with counts per institution and joint.",
            "defaultSchema": {"id": "beacon-g_variant-v2.0.0", "name": "Default schema for a genomic variation",
                              "referenceToSchemaDefinition": "https://raw.githubusercontent.com/ga4gh-beacon/"
                              "beacon-v2/main/models/json/beacon-v2-default-model/genomicVariations/"
                              "defaultSchema.json", "schemaVersion": "v2.0.0"},
            "nonFilteredQueriesAllowed": True}}

    @app.get("/api/configuration", responses=ERRORS, tags=["beacon"])
    async def configuration_ep(request: Request) -> Response:
        return await _handle(request, "/api/configuration", {},
                             lambda p: Outcome({"meta": bc.info_meta(beacon_id), "response": configuration()}))

    @app.get("/api/entry_types", responses=ERRORS, tags=["beacon"])
    async def entry_types_ep(request: Request) -> Response:
        return await _handle(request, "/api/entry_types", {}, lambda p: Outcome(
            {"meta": bc.info_meta(beacon_id), "response": {"entryTypes": entry_types()}}))

    @app.get("/api/map", responses=ERRORS, tags=["beacon"])
    async def map_ep(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        body = {"meta": bc.info_meta(beacon_id), "response": {
            "$schema": "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/framework/json/"
                       "configuration/beaconMapSchema.json",
            "endpointSets": {"genomicVariant": {"entryType": "genomicVariant", "rootUrl": f"{base}/api/g_variants",
                                                "openAPIEndpointsDefinition": f"{base}/openapi.json"}}}}
        return await _handle(request, "/api/map", {}, lambda p: Outcome(body))

    @app.get("/api/filtering_terms", responses=ERRORS, tags=["beacon"])
    async def filtering_terms(request: Request,
                              skip: Annotated[int, Query(ge=0, le=2**31)] = 0,
                              limit: Annotated[int, Query(ge=0, le=2**31)] = 0) -> Response:
        def work(p: Principal) -> Outcome:
            terms = service.filtering_terms()
            terms = terms[skip:skip + limit] if limit else terms[skip:]
            return Outcome({"meta": bc.info_meta(beacon_id), "response": {
                "resources": [{"id": "genolake", "name": "genolake phenotype columns (COLUMN=value)"}],
                "filteringTerms": terms}})

        return await _handle(request, "/api/filtering_terms", {"skip": skip, "limit": limit}, work)

    # ------------------------------------------------------------------ g_variants
    def g_work(q: bc.VariantQuery, requested: str | None) -> Any:
        def work(p: Principal) -> Outcome:
            req = requested or service.allowed(p)
            return service.g_variants(q, p, requested=req)
        return work

    @app.get("/api/g_variants", responses=ERRORS, tags=["beacon"])
    async def g_variants_get(
        request: Request,
        referenceName: Annotated[str | None, Query(max_length=100, description="chr20, 20 (either naming)")] = None,
        start: Annotated[str | None, Query(max_length=100, description="0-based start (one, or two comma-separated)")] = None,
        end: Annotated[str | None, Query(max_length=100, description="0-based exclusive end (one or two)")] = None,
        referenceBases: Annotated[str | None, Query(max_length=1000)] = None,
        alternateBases: Annotated[str | None, Query(max_length=1000)] = None,
        assemblyId: Annotated[str | None, Query(max_length=100)] = None,
        variantType: Annotated[str | None, Query(max_length=100)] = None,
        filters: Annotated[str | None, Query(max_length=1000, description="comma-separated terms, e.g. sex=female")] = None,
        skip: Annotated[int, Query(ge=0, le=2**31)] = 0,
        limit: Annotated[int, Query(ge=0, le=2**31)] = 10,
        requestedGranularity: Annotated[str | None, Query(pattern="^(boolean|count|record)$")] = None,
        includeResultsetResponses: Annotated[str | None, Query(pattern="^(ALL|HIT|MISS|NONE)$")] = None,
    ) -> Response:
        params = {k: v for k, v in {
            "referenceName": referenceName, "start": start, "end": end, "referenceBases": referenceBases,
            "alternateBases": alternateBases, "assemblyId": assemblyId, "variantType": variantType,
            "filters": filters, "skip": skip, "limit": limit, "requestedGranularity": requestedGranularity,
            "includeResultsetResponses": includeResultsetResponses}.items() if v is not None}
        try:
            q = bc.parse_params(params)
        except bc.BeaconError as exc:
            return await _handle(request, "/api/g_variants", params, _raise(exc))
        return await _handle(request, "/api/g_variants", params, g_work(q, q.granularity))

    @app.post("/api/g_variants", responses=ERRORS, tags=["beacon"], openapi_extra={"requestBody": {
        "required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "meta": {"type": "object"}, "query": {"type": "object"}}}}}}})
    async def g_variants_post(request: Request) -> Response:
        try:
            body = await _body(request)
            q = bc.parse_body(body)
        except (bc.BeaconError, Forbidden) as exc:
            return await _handle(request, "/api/g_variants", {}, _raise(exc))
        params = dict(q.raw, filters=q.filters, skip=q.skip, limit=q.limit)
        return await _handle(request, "/api/g_variants", params, g_work(q, q.granularity or "boolean"))

    # ------------------------------------------------------------------ genolake /v1
    @app.get("/v1/variant/{variant}", responses=ERRORS, tags=["genolake"])
    async def v1_variant(request: Request, variant: Annotated[str, PathParam(max_length=500)]) -> Response:
        """The `genolake query variant --format json` object, counts under disclosure control."""
        return await _handle(request, "/v1/variant", {"variant": variant},
                             lambda p: service.v1_variant(variant, p))

    @app.get("/v1/region/{region}", responses=ERRORS, tags=["genolake"])
    async def v1_region(request: Request, region: Annotated[str, PathParam(max_length=200)]) -> Response:
        """The `genolake query region --format json` rows (joint counts), under disclosure control."""
        return await _handle(request, "/v1/region", {"region": region}, lambda p: service.v1_region(region, p))

    @app.get("/v1/gene/{symbol}", responses=ERRORS, tags=["genolake"])
    async def v1_gene(request: Request, symbol: Annotated[str, PathParam(max_length=100)]) -> Response:
        """The `genolake query gene --format json` rows, under disclosure control (needs annotations)."""
        return await _handle(request, "/v1/gene", {"symbol": symbol}, lambda p: service.v1_gene(symbol, p))

    @app.get("/v1/carriers/{variant}", responses=ERRORS, tags=["genolake"])
    async def v1_carriers(request: Request, variant: Annotated[str, PathParam(max_length=500)]) -> Response:
        """Carriers (pseudonymised) of the member's own institution: `genolake query carriers --format json`."""
        return await _handle(request, "/v1/carriers", {"variant": variant},
                             lambda p: service.v1_carriers(variant, p))

    return app


def _raise(exc: Exception) -> Any:
    def work(p: Principal) -> Outcome:
        raise exc
    return work


def create_app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` worker processes (``genolake serve --workers N``)."""
    lake = os.environ["GENOLAKE_SERVE_LAKE"]
    pol_path = os.environ.get("GENOLAKE_SERVE_POLICY")
    policy = Policy.load(pol_path) if pol_path else None
    return create_app(lake, policy, query_seconds=float(os.environ.get("GENOLAKE_SERVE_QUERY_SECONDS",
                                                                       QUERY_SECONDS)))
