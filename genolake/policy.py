"""The access and disclosure policy of `genolake serve` and `genolake release` (``policy.toml``).

```toml
[disclosure]
min_count = 20                 # counts from 1 to min_count-1 are never shown (All of Us rule)
[[tokens]]
name = "north-analyst"         # appears in the audit log
sha256 = "<hex sha256 of the bearer token>"
tier = "member"                # "registered" or "member"
institution = "north"          # members only
[budget]
queries_per_hour = 1000        # per token, and per client address for anonymous requests
[audit]
path = "audit.jsonl"           # relative to the policy file's folder
```

Without a policy file the server is boolean-only (the Beacon default) and the release refuses to run.
Tokens are never stored: only their SHA-256, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genolake.errors import UserInputError

TIERS = ("anonymous", "registered", "member")
DEFAULT_MIN_COUNT = 20
DEFAULT_QUERIES_PER_HOUR = 1000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PolicyError(UserInputError):
    """policy.toml is malformed: the message names the file and the key."""


@dataclass(frozen=True)
class Token:
    name: str
    sha256: bytes
    tier: str
    institution: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: a token's holder, or anonymous (by client address)."""

    name: str
    tier: str
    institution: str | None = None

    @property
    def counts(self) -> bool:
        return self.tier in ("registered", "member")


ANONYMOUS = Principal("anonymous", "anonymous")


@dataclass
class Policy:
    min_count: int = DEFAULT_MIN_COUNT
    tokens: list[Token] = field(default_factory=list)
    queries_per_hour: int = DEFAULT_QUERIES_PER_HOUR
    audit_path: Path | None = None
    source: Path | None = None
    digest: str = "none"  # sha256 of the policy file (for the release header and the audit log)

    @classmethod
    def boolean_only(cls) -> Policy:
        """No policy file: anonymous boolean answers only, the Beacon default."""
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read and check ``policy.toml``; every problem is one line naming the file and the key."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read the policy file ({exc.strerror})") from None
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{p}: not valid TOML ({exc})") from None
        return cls.from_dict(doc, source=p, digest=hashlib.sha256(raw).hexdigest())

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: Path | None = None, digest: str = "none") -> Policy:
        where = str(source) if source else "policy"
        unknown = set(doc) - {"disclosure", "tokens", "budget", "audit"}
        if unknown:
            raise PolicyError(f"{where}: unknown section [{sorted(unknown)[0]}]; known: disclosure, tokens, budget, audit")
        disc = _table(doc, "disclosure", where)
        min_count = disc.get("min_count", DEFAULT_MIN_COUNT)
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
            raise PolicyError(f"{where}: [disclosure] min_count must be an integer >= 1, not {min_count!r}")
        budget = _table(doc, "budget", where)
        qph = budget.get("queries_per_hour", DEFAULT_QUERIES_PER_HOUR)
        if not isinstance(qph, int) or isinstance(qph, bool) or qph < 1:
            raise PolicyError(f"{where}: [budget] queries_per_hour must be an integer >= 1, not {qph!r}")
        audit = _table(doc, "audit", where)
        audit_path = None
        if "path" in audit:
            if not isinstance(audit["path"], str) or not audit["path"]:
                raise PolicyError(f"{where}: [audit] path must be a file name")
            ap = Path(audit["path"])
            audit_path = ap if ap.is_absolute() or source is None else source.parent / ap
        tokens = []
        raw_tokens = doc.get("tokens", [])
        if not isinstance(raw_tokens, list):
            raise PolicyError(f"{where}: tokens must be an array of tables ([[tokens]])")
        names: set[str] = set()
        for i, t in enumerate(raw_tokens, start=1):
            at = f"{where}: [[tokens]] #{i}"
            if not isinstance(t, dict):
                raise PolicyError(f"{at}: must be a table")
            extra = set(t) - {"name", "sha256", "tier", "institution"}
            if extra:
                raise PolicyError(f"{at}: unknown key {sorted(extra)[0]!r}")
            name = t.get("name")
            if not isinstance(name, str) or not name.strip():
                raise PolicyError(f"{at}: needs a name")
            if name in names:
                raise PolicyError(f"{at}: name {name!r} is used twice")
            names.add(name)
            digest_hex = str(t.get("sha256", "")).lower()
            if not _HEX64.match(digest_hex):
                raise PolicyError(f"{at} ({name}): sha256 must be 64 hex digits (sha256sum of the token), "
                                  "never the token itself")
            tier = t.get("tier")
            if tier not in ("registered", "member"):
                raise PolicyError(f"{at} ({name}): tier must be 'registered' or 'member', not {tier!r}")
            inst = t.get("institution")
            if tier == "member" and (not isinstance(inst, str) or not inst):
                raise PolicyError(f"{at} ({name}): a member token needs institution = \"...\"")
            if tier == "registered" and inst is not None:
                raise PolicyError(f"{at} ({name}): institution is for member tokens only")
            tokens.append(Token(name, bytes.fromhex(digest_hex), tier, inst))
        return cls(min_count=min_count, tokens=tokens, queries_per_hour=qph, audit_path=audit_path,
                   source=source, digest=digest)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of an ``Authorization`` header: ANONYMOUS without one, None for a wrong token.

        Every token's digest is compared (constant time per comparison, and no early exit), so the time taken
        does not say which token, or how much of one, matched.
        """
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        digest = hashlib.sha256(value.strip().encode("utf-8")).digest()
        found: Token | None = None
        for t in self.tokens:
            if hmac.compare_digest(digest, t.sha256):
                found = t
        if found is None:
            return None
        return Principal(found.name, found.tier, found.institution)

    def describe(self) -> str:
        """One line for headers and logs: what the policy applies."""
        return (f"min_count={self.min_count};tiers=anonymous:boolean,registered:counts,member:counts+own-rows;"
                f"queries_per_hour={self.queries_per_hour};policy_sha256={self.digest}")


def _table(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    v = doc.get(name, {})
    if not isinstance(v, dict):
        raise PolicyError(f"{where}: [{name}] must be a table")
    return v


def token_digest(token: str) -> str:
    """The ``sha256 = "..."`` value for a token (what `sha256sum` prints for it without a newline)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
