"""Bearer tokens: required everywhere but /health, configured hashed, issued by the CLI."""

import httpx
import pytest

from collab_pipelines.data_api.auth import TokenConfigError, TokenStore, hash_token
from collab_pipelines.data_api.server import main

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


def test_a_token_issued_by_the_command_works_at_once_and_only_its_hash_is_stored(sqlite_api, capsys):
    tokens = sqlite_api.deployment.state_dir / "api_tokens"
    assert main(["token", "alice", "--file", str(tokens)]) == 0
    token = capsys.readouterr().out.strip()
    assert len(token) >= 40
    stored = tokens.read_text()
    assert token not in stored and f"alice {hash_token(token)}\n" in stored
    assert tokens.stat().st_mode & 0o077 == 0
    # The running server re-reads the file: no restart to grant a token, none to revoke one.
    assert sqlite_api.get("/v1/datasets", token=token).status_code == 200
    tokens.write_text(stored.replace(f"alice {hash_token(token)}\n", ""))
    assert sqlite_api.get("/v1/datasets", token=token).status_code == 401
    assert sqlite_api.get("/v1/datasets").status_code == 200  # the environment's token is unaffected


def test_the_server_refuses_to_start_without_tokens(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLLAB_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("COLLAB_API_TOKENS", "")
    monkeypatch.delenv("COLLAB_API_TOKENS_FILE", raising=False)
    assert main(["serve", "--port", "9"]) == 2
    assert "no API token is configured: run `collab-data-api token <name>`" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "file", "words"),
    [
        ("alice:abc", None, "is not followed by a SHA-256"),
        (f"bad name:{hash_token('x')}", None, "token name"),
        ("", "alice\n", "expected 'name sha256hex'"),
        ("", f"alice {hash_token('x')} extra\n", "found 3 fields"),
    ],
)
def test_malformed_token_entries_are_refused_with_their_place(tmp_path, monkeypatch, env, file, words):
    monkeypatch.setenv("COLLAB_API_TOKENS", env)
    path = tmp_path / "tokens"
    if file is not None:
        path.write_text(file)
    monkeypatch.setenv("COLLAB_API_TOKENS_FILE", str(path))
    with pytest.raises(TokenConfigError, match=words):
        TokenStore.from_environment()


def test_tokens_from_the_environment_and_a_file_both_count(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAB_API_TOKENS", f"bob:{hash_token('b-token')},{hash_token('c-token')}")
    path = tmp_path / "tokens"
    path.write_text(f"# the team\nalice {hash_token('a-token')}\n\n")
    monkeypatch.setenv("COLLAB_API_TOKENS_FILE", str(path))
    store = TokenStore.from_environment()
    assert [store.name_for(t) for t in ("a-token", "b-token", "c-token", "d-token")] == [
        "alice",
        "bob",
        "env-2",
        None,
    ]
