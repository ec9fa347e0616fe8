"""The audit log: one JSON line per request, appended to ``[audit] path`` of the policy; and its summary.

A line holds the time (UTC), who asked (token name or ``anonymous``, with the tier), the client address, the
endpoint, the request parameters (variant IDs, regions, filters: never a sample ID; a request cannot name one),
the granularity returned, the number of results, how many counts were withheld and which (``withheld``:
``north.ac``, ``sex=female.an``, prefixed with the variant for Beacon records; at most 200 per line), the HTTP
status and the time taken. Lines are written with one ``write`` on a file opened for appending (``O_APPEND``), so the lines of
several worker processes never interleave, and the file is never rewritten or truncated by genolake.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_PARAM_CHARS = 500


class AuditLog:
    """Appends audit lines; a no-op without a path."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            return
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **entry}
        params = entry.get("params")
        if params is not None:
            text = json.dumps(params, sort_keys=True, default=str)
            if len(text) > MAX_PARAM_CHARS:
                entry["params"] = {"truncated": text[:MAX_PARAM_CHARS]}
        line = (json.dumps(entry, sort_keys=True, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def summarise(path: Path) -> dict[str, Any]:
    """Requests per principal, endpoint, status and granularity; results and withheld counts; time span.

    A line that is not JSON (a torn write after a crash) is counted under ``unreadable_lines``.
    """
    per_principal: Counter[str] = Counter()
    per_endpoint: Counter[str] = Counter()
    per_status: Counter[str] = Counter()
    per_granularity: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    results = withheld = n = bad = 0
    first = last = None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            n += 1
            who = str(e.get("principal", "?"))
            per_principal[who] += 1
            per_endpoint[str(e.get("endpoint", "?"))] += 1
            status = str(e.get("status", "?"))
            per_status[status] += 1
            if status in ("401", "403", "429"):
                denied[f"{who} {status}"] += 1
            if e.get("granularity"):
                per_granularity[str(e["granularity"])] += 1
            results += int(e.get("results") or 0)
            withheld += int(e.get("suppressed") or 0)
            t = e.get("time")
            if t:
                first = t if first is None or t < first else first
                last = t if last is None or t > last else last
    return {
        "requests": n, "first": first, "last": last, "results": results, "withheld_counts": withheld,
        "by_principal": dict(per_principal.most_common()), "by_endpoint": dict(per_endpoint.most_common()),
        "by_status": dict(per_status.most_common()), "by_granularity": dict(per_granularity.most_common()),
        "denied": dict(denied.most_common()), "unreadable_lines": bad,
    }
