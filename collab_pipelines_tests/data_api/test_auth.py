"""Bearer tokens: required everywhere but /health and the docs, configured hashed, issued by the CLI."""

import json
import re
from datetime import UTC, datetime

import httpx
import pytest

from collab_pipelines.data_api.audit import AUDIT_LOG_ENV, AuditLog
from collab_pipelines.data_api.auth import (
    TokenConfigError,
    TokenStore,
    hash_token,
    parse_line,
    read_tokens_file,
)
from collab_pipelines.data_api.scope import Scope
from collab_pipelines.data_api.server import main
from collab_pipelines.data_api.tokens import parse_when

PROTECTED = [
    "/v1/datasets",
    "/v1/datasets/flights",
    "/v1/datasets/flights/rows",
    "/v1/evaluations/1a2b3c4d",
    "/v1/reports/daily_delay_report",
]


@pytest.mark.parametrize("path", PROTECTED)
def test_every_endpoint_but_health_needs_a_valid_token(sqlite_api, path):
    missing = sqlite_api.get(path, token=None)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    assert "Authorization: Bearer" in missing.json()["detail"]
    wrong = sqlite_api.get(path, token="not-" + "a-token")
    assert wrong.status_code == 401 and wrong.json()["detail"] == "this token is not valid"
    basic = httpx.get(sqlite_api.url + path, auth=("user", "pass"))
    assert basic.status_code == 401


def test_health_needs_no_token_and_says_nothing_else(sqlite_api):
    response = sqlite_api.get("/health", token=None)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_token_issued_by_the_command_works_at_once_and_only_its_hash_is_stored(
    sqlite_api, capsys, monkeypatch
):
    tokens = sqlite_api.deployment.state_dir / "api_tokens"
    monkeypatch.setenv(AUDIT_LOG_ENV, str(sqlite_api.deployment.state_dir / "api_audit.jsonl"))
    assert main(["token", "alice", "--file", str(tokens)]) == 0
    printed = capsys.readouterr()
    token = printed.out.strip()
    assert "It reads everything." in printed.err  # no scope flag: full access, as before scopes
    assert len(token) >= 40
    stored = tokens.read_text()
    assert token not in stored and f"alice {hash_token(token)}\n" in stored
    assert tokens.stat().st_mode & 0o077 == 0
    # The running server re-reads the file: no restart to grant a token, none to revoke one.
    assert sqlite_api.get("/v1/datasets", token=token).status_code == 200
    tokens.write_text(stored.replace(f"alice {hash_token(token)}\n", ""))
    assert sqlite_api.get("/v1/datasets", token=token).status_code == 401
    assert sqlite_api.get("/v1/datasets").status_code == 200  # the environment's token is unaffected


def test_issuing_a_token_again_replaces_the_old_one_and_the_audit_log_says_so(
    sqlite_api, capsys, monkeypatch
):
    state = sqlite_api.deployment.state_dir
    tokens, log = state / "api_tokens", state / "api_audit.jsonl"
    monkeypatch.setenv(AUDIT_LOG_ENV, str(log))  # the server's own audit log
    assert main(["token", "rerun", "--file", str(tokens)]) == 0
    old = capsys.readouterr().out.strip()
    assert sqlite_api.get("/v1/datasets", token=old).status_code == 200

    assert main(["token", "rerun", "--datasets", "airlines", "--file", str(tokens)]) == 0
    printed = capsys.readouterr()
    new = printed.out.strip()
    assert "the token named 'rerun' that was in force is revoked" in printed.err
    refused = sqlite_api.get("/v1/datasets", token=old)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    listed = sqlite_api.get("/v1/datasets", token=new)
    assert listed.status_code == 200 and [d["name"] for d in listed.json()["datasets"]] == ["airlines"]
    # One line revoked, one added: the name has exactly one token in force.
    lines = [line for line in tokens.read_text().splitlines() if line.startswith("rerun ")]
    assert len(lines) == 2 and "revoked=" in lines[0] and "revoked=" not in lines[1]
    actions = [
        (r["read"], r.get("action"), r.get("revoked"))
        for r in map(json.loads, log.read_text().splitlines())
        if r["token"] == "rerun" and r["read"] == "token"
    ]
    assert actions == [("token", "issued", None), ("token", "replaced", 1)]
    assert main(["audit", "--log", str(log), "--token", "rerun"]) == 0
    assert "\trerun\ttoken\treplaced\t" in capsys.readouterr().out


def test_the_server_refuses_to_start_without_tokens(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLLAB_API_TOKENS", "")
    monkeypatch.delenv("COLLAB_API_TOKENS_FILE", raising=False)
    assert main(["serve", "--port", "9"]) == 2
    assert "no API token is configured (or every one is revoked or expired): run `collab-data-api token" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("env", "file", "words"),
    [
        ("alice:abc", None, "is not followed by a SHA-256"),
        (f"bad name:{hash_token('x')}", None, "token name"),
        ("", "alice\n", "tokens:1: expected 'name sha256hex"),
        ("", f"alice {hash_token('x')} extra\n", "tokens:1: field 3 'extra' is not key=value"),
        ("", f"# team\nalice {hash_token('x')} colour=red\n", "tokens:2: field 'colour': unknown field"),
        ("", f"alice {hash_token('x')} datasets=a,b;c\n", "field 'datasets': 'b;c' is not a name or glob"),
        ("", f"alice {hash_token('x')} expires=soon\n", "tokens:1: field 'expires'"),
        ("", f"alice {hash_token('x')} expires=2027-01-01T00:00\n", "has no time zone"),
        ("", f"alice {hash_token('x')} suites=a suites=b\n", "suites= is given twice"),
    ],
)
def test_malformed_token_entries_are_refused_with_their_place(tmp_path, monkeypatch, env, file, words):
    monkeypatch.setenv("COLLAB_API_TOKENS", env)
    path = tmp_path / "tokens"
    if file is not None:
        path.write_text(file)
    monkeypatch.setenv("COLLAB_API_TOKENS_FILE", str(path))
    with pytest.raises(TokenConfigError, match=re.escape(words)):
        TokenStore.from_environment()


def test_tokens_from_the_environment_and_a_file_both_count(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAB_API_TOKENS", f"bob:{hash_token('b-token')},{hash_token('c-token')}")
    path = tmp_path / "tokens"
    path.write_text(f"# the team\nalice {hash_token('a-token')}\n\n")
    monkeypatch.setenv("COLLAB_API_TOKENS_FILE", str(path))
    store = TokenStore.from_environment()
    found = [store.entry_for(t) for t in ("a-token", "b-token", "c-token", "d-token")]
    assert [e.name if e else None for e in found] == ["alice", "bob", "env-2", None]
    assert all(e.scope.full for e in found if e)


def test_a_scoped_line_reads_back_as_written_and_old_lines_keep_full_access(tmp_path):
    digest = hash_token("x")
    path = tmp_path / "tokens"
    path.write_text(
        f"old {digest}\n"
        f"bob {digest} datasets=seattle_*,flights suites=rain reports=- expires=2027-01-31T10:00:00+01:00\n"
    )
    (_, old), (_, bob) = read_tokens_file(path)
    assert old.scope.full and old.expires is None
    assert bob.scope == Scope(datasets=("seattle_*", "flights"), suites=("rain",), reports=())
    assert bob.expires == datetime(2027, 1, 31, 9, tzinfo=UTC)
    assert bob.line() == (
        f"bob {digest} datasets=seattle_*,flights suites=rain reports=- expires=2027-01-31T09:00:00Z"
    )
    assert parse_line(bob.line(), "again") == bob


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("12h", datetime(2026, 1, 2, 0, tzinfo=UTC)),
        ("2027-03-01", datetime(2027, 3, 1, tzinfo=UTC)),
        ("2027-03-01T08:00+02:00", datetime(2027, 3, 1, 6, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_span_or_a_utc_time(text, expected):
    assert parse_when(text, now=datetime(2026, 1, 1, 12, tzinfo=UTC)) == expected


def test_tokens_are_listed_and_revoked_by_name_without_printing_a_hash(tmp_path, capsys, monkeypatch):
    path = tmp_path / "tokens"
    monkeypatch.setenv(AUDIT_LOG_ENV, str(tmp_path / "audit.jsonl"))
    assert (
        main(
            [
                "token",
                "carol",
                "--datasets",
                "seattle_*",
                "--suites",
                "rain",
                "--expires",
                "30d",
                "--file",
                str(path),
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert main(["tokens", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "carol\tin force\texpires " in listed
    assert "datasets seattle_*; suites rain; reports none" in listed
    assert token not in listed and hash_token(token) not in listed
    assert main(["tokens", "revoke", "carol", "--file", str(path)]) == 0
    capsys.readouterr()
    assert main(["tokens", "list", "--file", str(path)]) == 0
    assert "carol\trevoked at " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["tokens", "revoke", "carol", "--file", str(path)])
    assert "no unrevoked token is named 'carol'" in capsys.readouterr().err


def test_the_audit_command_filters_by_token_dataset_and_time(tmp_path, capsys):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record("ann", "rows", dataset="flights", partition="2013-01-05", rows=989)
    log.record("ben", "datasets", datasets=["flights", "weather"], rows=2)
    log.record("ann", "report", report="ops/delays")
    assert main(["audit", "--log", str(log.path), "--token", "ann"]) == 0
    lines = [line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()]
    assert lines == [["ann", "rows", "flights", "2013-01-05", "989"], ["ann", "report", "ops/delays", "", ""]]
    assert main(["audit", "--log", str(log.path), "--dataset", "weather", "--json"]) == 0
    assert [json.loads(line)["token"] for line in capsys.readouterr().out.splitlines()] == ["ben"]
    assert main(["audit", "--log", str(log.path), "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
