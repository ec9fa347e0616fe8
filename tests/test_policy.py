"""policy.toml parsing and token checks (genolake/policy.py), and the audit summary (genolake/serve/audit.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genolake.policy import ANONYMOUS, Policy, PolicyError, token_digest


def write(tmp: Path, text: str) -> Path:
    p = tmp / "policy.toml"
    p.write_text(text)
    return p


GOOD = f"""
[disclosure]
min_count = 11
[[tokens]]
name = "a"
sha256 = "{token_digest('tok-a')}"
tier = "registered"
[[tokens]]
name = "m"
sha256 = "{token_digest('tok-m').upper()}"
tier = "member"
institution = "north"
[budget]
queries_per_hour = 7
[audit]
path = "logs/audit.jsonl"
"""


def test_good_policy(tmp_path: Path) -> None:
    pol = Policy.load(write(tmp_path, GOOD))
    assert pol.min_count == 11 and pol.queries_per_hour == 7
    assert pol.audit_path == tmp_path / "logs" / "audit.jsonl"
    assert pol.authenticate(None) is ANONYMOUS
    a = pol.authenticate("Bearer tok-a")
    m = pol.authenticate("bearer  tok-m ")
    assert a is not None and (a.name, a.tier, a.institution) == ("a", "registered", None)
    assert m is not None and (m.name, m.tier, m.institution) == ("m", "member", "north")
    for bad in ("Bearer tok-b", "Bearer ", "Basic dG9rLWE=", "tok-a", f"Bearer {token_digest('tok-a')}"):
        assert pol.authenticate(bad) is None, bad  # the digest itself is not a token
    assert len(pol.digest) == 64 and "min_count=11" in pol.describe()


def test_defaults_and_boolean_only() -> None:
    pol = Policy.boolean_only()
    assert pol.min_count == 20 and pol.tokens == [] and pol.audit_path is None
    assert pol.authenticate("Bearer anything") is None


@pytest.mark.parametrize("text,message", [
    ("[disclosure\n", "not valid TOML"),
    ("[nosuch]\n", "unknown section"),
    ("[disclosure]\nmin_count = 0\n", "min_count must be an integer >= 1"),
    ("[disclosure]\nmin_count = 'twenty'\n", "min_count must be an integer >= 1"),
    ("[budget]\nqueries_per_hour = -1\n", "queries_per_hour must be an integer >= 1"),
    ("[[tokens]]\nname = 'x'\nsha256 = 'secret-token'\ntier = 'registered'\n", "sha256 must be 64 hex digits"),
    (f"[[tokens]]\nname = 'x'\nsha256 = '{'a' * 64}'\ntier = 'admin'\n", "tier must be 'registered' or 'member'"),
    (f"[[tokens]]\nname = 'x'\nsha256 = '{'a' * 64}'\ntier = 'member'\n", "needs institution"),
    (f"[[tokens]]\nname = 'x'\nsha256 = '{'a' * 64}'\ntier = 'registered'\ninstitution = 'n'\n", "for member tokens only"),
    (f"[[tokens]]\nname = 'x'\nsha256 = '{'a' * 64}'\ntier = 'registered'\n[[tokens]]\nname = 'x'\n"
     f"sha256 = '{'b' * 64}'\ntier = 'registered'\n", "used twice"),
    (f"[[tokens]]\nname = 'x'\nsha256 = '{'a' * 64}'\ntier = 'registered'\ntoken = 'plain'\n", "unknown key"),
])
def test_bad_policies_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match=message) as info:
        Policy.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "nope.toml")


def test_audit_summary_counts_and_skips_torn_lines(tmp_path: Path) -> None:
    from genolake.serve.audit import AuditLog, summarise

    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    log.write({"principal": "m", "endpoint": "/v1/variant", "status": 200, "results": 1, "suppressed": 3,
               "granularity": "record", "params": {"variant": "20-1-A-T"}})
    log.write({"principal": "anonymous", "endpoint": "/api/g_variants", "status": 429, "results": 0,
               "params": {"x": "y" * 2000}})
    log.close()
    path = tmp_path / "a" / "audit.jsonl"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with open(path, "a") as fh:
        fh.write('{"principal": "torn')
    lines = path.read_text().splitlines()
    assert "truncated" in json.loads(lines[1])["params"]
    s = summarise(path)
    assert s["requests"] == 2 and s["unreadable_lines"] == 1 and s["withheld_counts"] == 3
    assert s["denied"] == {"anonymous 429": 1} and s["by_granularity"] == {"record": 1}
