"""GA4GH Beacon v2: request parsing, the ``g_variants`` query and the response envelopes.

Shapes follow ga4gh-beacon/beacon-v2 (framework and default model, vendored under ``schemas/beacon-v2``):
``beaconBooleanResponse``, ``beaconCountResponse``, ``beaconResultsetsResponse`` (one result set per institution
plus the joint cohort), ``beaconErrorResponse``; records are ``genomicVariations`` with ``variation`` (a
``LegacyVariation``) and ``frequencyInPopulations`` (``alleleFrequency`` plus ``alleleCount``, ``alleleNumber``,
``alleleCountHomozygous``, ``alleleCountHemizygous`` as the EGA reference implementation adds).

Coordinates: Beacon ``start`` is 0-based (VCF POS - 1). A sequence query (one ``start``, ``alternateBases``)
asks for the variants at POS = start + 1; a range query (``start`` and ``end``) for the variants whose POS - 1 lies
in [start, end) (the EGA implementation's rule: ``pos >= start`` and ``pos < end``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from genolake.errors import UserInputError

API_VERSION = "v2.0.0"
GRANULARITIES = ("boolean", "count", "record")
INCLUDE = ("ALL", "HIT", "MISS", "NONE")
VARIANT_SCHEMA = {"entityType": "genomicVariation", "schema": "beacon-g_variant-v2.0.0"}
MAX_RANGE = 5_000_000  # bases per range query
MAX_LIMIT = 100  # records per page (each is a point read of every table; pyarrow reads are not interruptible)
MAX_FILTERS = 3  # filters per query (each narrows the group counted: fewer filters, fewer differencing attacks)
_BASES = re.compile(r"^[ACGTUNRYSWKMBDHV.\-]*$")
_ASSEMBLIES = {
    "GRCh37": {"grch37", "hg19", "grch37.p13", "gcf_000001405.25", "b37", "hs37d5"},
    "GRCh38": {"grch38", "hg38", "grch38.p13", "grch38.p14", "gcf_000001405.39", "gcf_000001405.40", "hs38dh"},
}
_OPERATORS = {"=": "=", "!": "!=", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


class BeaconError(UserInputError):
    """A request the Beacon refuses: becomes a ``beaconErrorResponse`` with ``errorCode``."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class VariantQuery:
    """A parsed ``g_variants`` request."""

    reference_name: str | None = None
    start: list[int] = field(default_factory=list)
    end: list[int] = field(default_factory=list)
    reference_bases: str | None = None
    alternate_bases: str | None = None
    assembly_id: str | None = None
    variant_type: str | None = None
    filters: list[dict[str, Any]] = field(default_factory=list)
    skip: int = 0
    limit: int = 10
    granularity: str | None = None
    include: str = "HIT"
    raw: dict[str, Any] = field(default_factory=dict)  # the request parameters as received (for the summary)


def _int_list(name: str, v: Any) -> list[int]:
    if v is None or v == "" or v == []:
        return []
    items = v if isinstance(v, list) else str(v).split(",")
    out = []
    for x in items:
        if isinstance(x, bool):
            raise BeaconError(f"{name} must be integers, not {x!r}")
        try:
            n = int(str(x).strip())
        except ValueError:
            raise BeaconError(f"{name} must be integers (0-based), not {x!r}") from None
        if n < 0:
            raise BeaconError(f"{name} must be >= 0, not {n}")
        if n > 2**31:
            raise BeaconError(f"{name} {n} is beyond any chromosome")
        out.append(n)
    if len(out) > 2:
        raise BeaconError(f"{name} takes one or two values, not {len(out)}")
    return out


def _str(name: str, v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str | int) or isinstance(v, bool):
        raise BeaconError(f"{name} must be a string")
    s = str(v).strip()
    if len(s) > 1000:
        raise BeaconError(f"{name} is too long ({len(s)} characters; at most 1000)")
    return s


def _filters(v: Any) -> list[dict[str, Any]]:
    if v is None or v == "" or v == []:
        return []
    items = v if isinstance(v, list) else str(v).split(",")
    out = []
    for f in items:
        if isinstance(f, str):
            if f.strip():
                out.append({"id": f.strip()})
        elif isinstance(f, dict) and isinstance(f.get("id"), str):
            out.append(f)
        else:
            raise BeaconError(f"filters: each filter is a term ID string or an object with an id, not {f!r}")
    if len(out) > MAX_FILTERS:
        raise BeaconError(f"too many filters ({len(out)}); at most {MAX_FILTERS} per query")
    return out


def parse_params(params: dict[str, Any], *, filters: Any = None, pagination: dict[str, Any] | None = None,
                 granularity: Any = None, include: Any = None) -> VariantQuery:
    """A ``VariantQuery`` from GET query parameters or a POST body's request parameters."""
    known = {"referenceName", "start", "end", "referenceBases", "alternateBases", "assemblyId", "variantType",
             "filters", "skip", "limit", "requestedGranularity", "includeResultsetResponses", "requestedSchema",
             "geneId", "geneid", "variantMinLength", "variantMaxLength", "allele", "aminoacidChange", "datasets",
             "mateName"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise BeaconError(f"unknown request parameter {unknown[0]!r}")
    for unsupported in ("geneId", "geneid", "aminoacidChange", "allele", "variantMinLength", "variantMaxLength",
                        "mateName"):
        if params.get(unsupported) not in (None, ""):
            raise BeaconError(f"{unsupported} queries are not supported by this Beacon; use referenceName with "
                              "start (and end), or genolake's /v1/gene/{symbol}")
    q = VariantQuery()
    q.reference_name = _str("referenceName", params.get("referenceName"))
    q.start = _int_list("start", params.get("start"))
    q.end = _int_list("end", params.get("end"))
    for name in ("referenceBases", "alternateBases"):
        s = _str(name, params.get(name))
        if s is not None:
            s = s.upper()
            if not _BASES.match(s):
                raise BeaconError(f"{name} {s[:20]!r} is not IUPAC nucleotide codes")
        setattr(q, "reference_bases" if name == "referenceBases" else "alternate_bases", s)
    q.assembly_id = _str("assemblyId", params.get("assemblyId"))
    q.variant_type = _str("variantType", params.get("variantType"))
    q.filters = _filters(filters if filters is not None else params.get("filters"))
    page = pagination or {}
    for name in ("skip", "limit"):
        v = page.get(name, params.get(name))
        if v is None or v == "":
            continue
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise BeaconError(f"{name} must be an integer >= 0, not {v!r}") from None
        if n < 0 or isinstance(v, bool):
            raise BeaconError(f"{name} must be an integer >= 0, not {v!r}")
        setattr(q, name, n)
    if q.limit == 0 or q.limit > MAX_LIMIT:
        q.limit = MAX_LIMIT
    g = granularity if granularity is not None else params.get("requestedGranularity")
    if g is not None:
        if g not in GRANULARITIES:
            raise BeaconError(f"requestedGranularity must be one of {', '.join(GRANULARITIES)}, not {g!r}")
        q.granularity = g
    inc = include if include is not None else params.get("includeResultsetResponses")
    if inc is not None:
        if inc not in INCLUDE:
            raise BeaconError(f"includeResultsetResponses must be one of {', '.join(INCLUDE)}, not {inc!r}")
        q.include = inc
    q.raw = {k: v for k, v in params.items() if k not in ("skip", "limit", "requestedGranularity", "filters")}
    return q


def parse_body(body: Any) -> VariantQuery:
    """A POST ``beaconRequestBody``: parameters flat under ``query.requestParameters`` (EGA implementation) or
    nested under ``query.requestParameters.g_variant`` (Beacon docs)."""
    if not isinstance(body, dict):
        raise BeaconError("the request body must be a JSON object (a beaconRequestBody)")
    meta = body.get("meta", {})
    if meta is not None and not isinstance(meta, dict):
        raise BeaconError("meta must be an object")
    query = body.get("query", {})
    if not isinstance(query, dict):
        raise BeaconError("query must be an object")
    rp = query.get("requestParameters", {}) or {}
    if not isinstance(rp, dict):
        raise BeaconError("query.requestParameters must be an object")
    if "g_variant" in rp:
        nested = rp["g_variant"]
        if not isinstance(nested, dict):
            raise BeaconError("query.requestParameters.g_variant must be an object")
        rp = {**{k: v for k, v in rp.items() if k != "g_variant"}, **nested}
    pagination = query.get("pagination", {}) or {}
    if not isinstance(pagination, dict):
        raise BeaconError("query.pagination must be an object")
    return parse_params(rp, filters=query.get("filters"), pagination=pagination,
                        granularity=query.get("requestedGranularity"),
                        include=query.get("includeResultsetResponses"))


def check_assembly(q: VariantQuery, build: str) -> None:
    if q.assembly_id is None:
        return
    want = q.assembly_id.strip().lower()
    for b, names in _ASSEMBLIES.items():
        if want in names or want == b.lower():
            if b != build:
                raise BeaconError(f"assemblyId {q.assembly_id} does not match this Beacon's {build}")
            return
    raise BeaconError(f"unknown assemblyId {q.assembly_id!r}; this Beacon holds {build}")


def variant_type_of(ref: str, alt: str) -> str:
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "DEL" if len(ref) > len(alt) else "INS"


def type_matches(wanted: str | None, ref: str, alt: str) -> bool:
    if not wanted:
        return True
    w = wanted.strip().upper()
    t = variant_type_of(ref, alt)
    aliases = {"SNV": "SNP", "EFO:0001059": "SNP", "SO:0001483": "SNP", "SO:0000159": "DEL", "SO:0000667": "INS",
               "EFO:0030067": "DEL", "EFO:0030068": "INS"}
    w = aliases.get(w, w)
    if w == "INDEL":
        return t in ("DEL", "INS")
    return w == t


def bases_match(pattern: str | None, bases: str) -> bool:
    """``N`` is a wildcard; an empty or absent pattern matches anything."""
    if not pattern:
        return True
    if len(pattern) != len(bases):
        return False
    return all(p == "N" or p == b for p, b in zip(pattern, bases, strict=True))


# ------------------------------------------------------------------------------------------ envelopes
def info_meta(beacon_id: str, schemas: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"beaconId": beacon_id, "apiVersion": API_VERSION, "returnedSchemas": schemas or []}


def response_meta(beacon_id: str, q: VariantQuery, granularity: str, requested: str) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "requestedSchemas": [VARIANT_SCHEMA],
        "pagination": {"skip": q.skip, "limit": q.limit},
        "requestedGranularity": requested,
        "includeResultsetResponses": q.include,
        "requestParameters": {"g_variant": q.raw},  # values are objects (requestParameters.json)
        "testMode": False,
    }
    if q.filters:  # a list of strings in the response schema (Filters): "sex=female", "age>50"
        summary["filters"] = [f["id"] if "value" not in f else f"{f['id']}{f.get('operator', '=')}{f['value']}"
                              for f in q.filters]
    return {"beaconId": beacon_id, "apiVersion": API_VERSION, "returnedSchemas": [VARIANT_SCHEMA],
            "returnedGranularity": granularity, "receivedRequestSummary": summary, "testMode": False}


def error_body(beacon_id: str, code: int, message: str) -> dict[str, Any]:
    """A ``beaconErrorResponse`` (its ``meta`` is a full ``beaconResponseMeta``: nothing was granted)."""
    meta = {**info_meta(beacon_id), "returnedGranularity": "boolean", "receivedRequestSummary": {
        "apiVersion": API_VERSION, "requestedSchemas": [], "pagination": {"skip": 0, "limit": 0},
        "requestedGranularity": "boolean"}}
    return {"meta": meta, "error": {"errorCode": code, "errorMessage": message}}


def legacy_variation(contig: str, pos: int, ref: str, alt: str, build: str) -> dict[str, Any]:
    """A ``LegacyVariation`` with a VRS 1.3 ``SequenceLocation`` (0-based interbase interval)."""
    return {
        "variantType": variant_type_of(ref, alt),
        "referenceBases": ref,
        "alternateBases": alt,
        "location": {
            "type": "SequenceLocation",
            "sequence_id": f"{build}:{contig}",
            "interval": {"type": "SequenceInterval",
                         "start": {"type": "Number", "value": pos - 1},
                         "end": {"type": "Number", "value": pos - 1 + len(ref)}},
        },
    }
