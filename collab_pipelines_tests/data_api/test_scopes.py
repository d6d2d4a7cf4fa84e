"""Scoped, expired and revoked tokens against a running server, on every route the app has.

A scoped token must find everything outside its scope missing, exactly as a missing thing is
(status and body), and the audit log must show no read of it.
"""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts

from collab_pipelines.data_api.app import create_app
from collab_pipelines.data_api.auth import TokenEntry, hash_token
from collab_pipelines.data_api.deps import ApiConfig
from collab_pipelines.data_api.scope import NOTHING, Scope
from collab_pipelines.data_api.server import main
from collab_pipelines.datasets import all_datasets
from collab_pipelines_tests.data_api.conftest import COMMIT_A, COMMIT_B
from collab_pipelines_tests.data_api.reports import report_materialization
from collab_pipelines_tests.data_api.scoped import SCOPED_DATASETS, audit_records, issue, names_read

# Its module-scoped services are built once, on one xdist worker (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("scopes")

DATASETS = all_datasets()
RUN = uuid.uuid4().hex[:8]
REPORT_IN, REPORT_OUT, REPORT_BY_EVALUATION = f"shared_{RUN}/daily", f"private_{RUN}", f"evaluation_{RUN}"
RAIN_KEY, DELAYS_KEY = f"rain:model@{COMMIT_A[:8]}", f"delay-model:model@{COMMIT_B[:8]}"
SCOPE = Scope(datasets=SCOPED_DATASETS, suites=("rain",), reports=(f"shared_{RUN}/*", f"evaluation_{RUN}"))
SUITE_ONLY = Scope(datasets=NOTHING, suites=("delay-*",), reports=NOTHING)


def app_routes() -> set[str]:
    """Every route the app serves: a new one fails `requests_for` until it is covered here."""
    app = create_app(ApiConfig(catalog=None, tokens=None, shared_dir=Path("."), audit=None))
    return {context.route.path for context in iter_route_contexts(app.router.routes)}


def requests_for(scope: Scope) -> list[tuple[str, dict, bool]]:
    """(path, query, in scope) for every route, with every dataset, commit and report."""
    cases: list[tuple[str, dict, bool]] = []
    for template in sorted(app_routes()):
        if template in ("/health", "/docs", "/openapi.json", "/v1/datasets"):
            cases.append((template, {}, True))
        elif template == "/docs-assets":
            cases.append(("/docs-assets/swagger-ui.css", {}, True))
        elif template == "/v1/datasets/{name}":
            cases += [(f"/v1/datasets/{n}", {}, scope.allows_dataset(d)) for n, d in DATASETS.items()]
        elif template == "/v1/datasets/{name}/rows":
            cases += [
                (f"/v1/datasets/{n}/rows", {"limit": 5}, scope.allows_dataset(d)) for n, d in DATASETS.items()
            ]
        elif template == "/v1/evaluations/{commit}":
            # Both commits' evaluations belong to the suite delay-model.
            cases += [
                (f"/v1/evaluations/{c}", {}, scope.allows_suite("delay-model")) for c in (COMMIT_A, COMMIT_B)
            ]
        elif template == "/v1/suites/{suite}/champion":
            # delay-model has evaluations and no champion yet: its answer is still 200.
            cases.append(("/v1/suites/delay-model/champion", {}, scope.allows_suite("delay-model")))
        elif template == "/v1/suites/{suite}":
            cases.append(("/v1/suites/delay-model", {}, scope.allows_suite("delay-model")))
        elif template.startswith("/v1/suites/{suite}/evaluations/{key}"):
            path = template.replace("{suite}", "delay-model").replace("{key}", DELAYS_KEY)
            cases.append((path, {}, scope.allows_suite("delay-model")))
        elif template == "/v1/reports/{asset_key:path}":
            cases += [
                (f"/v1/reports/{REPORT_IN}", {}, scope.allows_report(REPORT_IN, None)),
                (f"/v1/reports/{REPORT_OUT}", {}, scope.allows_report(REPORT_OUT, None)),
                (f"/v1/reports/{REPORT_BY_EVALUATION}", {}, scope.allows_report(REPORT_BY_EVALUATION, None)),
                (
                    f"/v1/reports/{REPORT_BY_EVALUATION}",
                    {"partition": DELAYS_KEY},
                    scope.allows_report(REPORT_BY_EVALUATION, DELAYS_KEY),
                ),
            ]
        else:
            raise AssertionError(f"route {template} is not covered by the scope tests")
    return cases


@pytest.fixture(scope="module")
def reports(sqlite_api):
    deployment = sqlite_api.deployment
    folder = deployment.state_dir / "reports" / RUN
    report_materialization(
        deployment.instance, folder / "in.html", asset_key=REPORT_IN, html="<html>in</html>"
    )
    report_materialization(
        deployment.instance, folder / "out.html", asset_key=REPORT_OUT, html="<html>out</html>"
    )
    # The newest materialization of the evaluation report is another suite's.
    for key in (RAIN_KEY, DELAYS_KEY):
        report_materialization(
            deployment.instance,
            folder / f"{key.split(':')[0]}.html",
            asset_key=REPORT_BY_EVALUATION,
            partition=key,
            html=f"<html>{key}</html>",
        )


def missing_body(api, path: str) -> dict:
    """What a truly missing dataset, commit, suite or report of this path's kind answers, in its words."""
    kind, _, value = path.removeprefix("/v1/").partition("/")
    value = value.removesuffix("/rows").removesuffix("/champion")
    if kind == "suites":
        value = value.split("/")[0]  # a suite's evaluations answer as the suite does
    stand_in = {
        "datasets": f"nothing_{RUN}",
        "evaluations": "ffffeeee",
        "suites": f"nothing-{RUN}",
        "reports": f"nothing_{RUN}",
    }[kind]
    response = api.get(path.replace(value, stand_in, 1))
    assert response.status_code == 404, response.text
    return {k: v.replace(stand_in, value) if isinstance(v, str) else v for k, v in response.json().items()}


@pytest.mark.parametrize("scope", [SCOPE, SUITE_ONLY], ids=["datasets-and-rain", "delay-suites-only"])
def test_a_scoped_token_reads_its_scope_and_finds_nothing_else(sqlite_api, reports, scope):
    token = issue(sqlite_api, "scoped", scope)
    allowed = {n for n, d in DATASETS.items() if scope.allows_dataset(d)}
    assert allowed == ({"airlines", "airports", "weather"} if scope is SCOPE else set())
    for path, query, in_scope in requests_for(scope):
        response = sqlite_api.get(path, token=token.token, params=query)
        if in_scope:
            assert response.status_code == 200, (path, query, response.text)
        else:
            assert response.status_code == 404, (path, query, response.text)
            missing = missing_body(sqlite_api, path)
            if query.get("partition"):
                missing["detail"] = missing["detail"].replace(
                    " has never", f" partition {DELAYS_KEY} has never"
                )
            assert response.json() == missing, (path, query)

    listed = sqlite_api.get("/v1/datasets", token=token.token).json()["datasets"]
    assert {d["name"] for d in listed} == allowed
    document = sqlite_api.get("/openapi.json", token=token.token).json()
    per_dataset = {p.split("/")[3] for p in document["paths"] if p.endswith("/rows") and "{name}" not in p}
    assert per_dataset == allowed
    text = str(document)
    for name in set(DATASETS) - allowed:
        assert f"/v1/datasets/{name}/" not in text and f"'{name}'" not in text, name

    records = audit_records(sqlite_api, token.name)
    shown_reports = {REPORT_IN, REPORT_BY_EVALUATION} if scope is SCOPE else set()
    in_scope = allowed | shown_reports | {s for s in ("rain", "delay-model") if scope.allows_suite(s)}
    assert names_read(records) == in_scope - {"rain"}  # no rain evaluation exists to be read
    assert "openapi" in {r["read"] for r in records}


def test_an_evaluation_report_shows_a_scoped_token_its_own_suites_latest(sqlite_api, reports):
    token = issue(sqlite_api, "rain", SCOPE)
    assert sqlite_api.get(f"/v1/reports/{REPORT_BY_EVALUATION}").text == f"<html>{DELAYS_KEY}</html>"
    own = sqlite_api.get(f"/v1/reports/{REPORT_BY_EVALUATION}", token=token.token)
    assert own.status_code == 200 and own.text == f"<html>{RAIN_KEY}</html>"
    [record] = audit_records(sqlite_api, token.name)
    assert (record["read"], record["report"], record["partition"]) == (
        "report",
        REPORT_BY_EVALUATION,
        RAIN_KEY,
    )


def test_rows_reads_are_logged_with_dataset_partition_and_row_count(sqlite_api):
    token = issue(sqlite_api, "rows", Scope(datasets=("flights",), suites=NOTHING, reports=NOTHING))
    response = sqlite_api.get(
        "/v1/datasets/flights/rows", token=token.token, params={"partition": "2013-01-02", "limit": 7}
    )
    assert response.status_code == 200 and len(response.json()["data"]) == 7
    # More rows than a chunk (500): the page streams, and the count is written when it ends.
    week = sqlite_api.get(
        "/v1/datasets/flights/rows",
        token=token.token,
        params={
            "partition_from": "2013-01-01",
            "partition_to": "2013-01-07",
            "limit": 100_000,
            "format": "csv",
        },
    )
    assert week.status_code == 200
    rows = len(week.text.splitlines()) - 1
    assert rows > 500
    records = audit_records(sqlite_api, token.name)
    assert [(r["read"], r["dataset"], r["partition"], r["rows"]) for r in records] == [
        ("rows", "flights", "2013-01-02", 7),
        ("rows", "flights", "2013-01-01..2013-01-07", rows),
    ]
    text = (sqlite_api.deployment.state_dir / "api_audit.jsonl").read_text()
    assert token.token not in text and hash_token(token.token) not in text


def refused_everywhere(api, token: str, words: str) -> None:
    for path, query, _in_scope in requests_for(Scope()):
        response = api.get(path, token=token, params=query)
        if path in ("/health", "/docs", "/docs-assets/swagger-ui.css"):
            assert response.status_code == 200, path  # they read nothing
            continue
        assert response.status_code == 401, (path, response.text)
        assert words in response.json()["detail"], (path, response.text)


def test_an_expired_token_is_refused_everywhere(sqlite_api, reports):
    name = f"expired-{RUN}"
    token = "expired-" + uuid.uuid4().hex
    entry = TokenEntry(name=name, sha256=hash_token(token), expires=datetime.now(UTC) - timedelta(minutes=1))
    with (sqlite_api.deployment.state_dir / "api_tokens").open("a") as tokens:
        tokens.write(entry.line() + "\n")
    refused_everywhere(sqlite_api, token, "this token expired at")
    assert audit_records(sqlite_api, name) == []


def test_a_token_revoked_while_the_server_runs_is_refused_at_once(sqlite_api, reports, capsys):
    issued = issue(sqlite_api, "revoked", SCOPE)
    assert sqlite_api.get("/v1/datasets", token=issued.token).status_code == 200
    tokens = sqlite_api.deployment.state_dir / "api_tokens"
    assert main(["tokens", "revoke", issued.name, "--file", str(tokens)]) == 0
    assert f"revoked 1 token(s) named '{issued.name}'" in capsys.readouterr().out
    refused_everywhere(sqlite_api, issued.token, "this token was revoked at")
    assert [r["read"] for r in audit_records(sqlite_api, issued.name)] == ["datasets"]
    assert sqlite_api.get("/v1/datasets").status_code == 200  # others' tokens are unaffected


def test_without_a_token_the_document_names_no_dataset(sqlite_api):
    document = sqlite_api.get("/openapi.json", token=None)
    assert document.status_code == 200
    assert not [p for p in document.json()["paths"] if p.startswith("/v1/datasets/") and "{name}" not in p]
    text = document.text
    # Word-bounded: `weather` is also part of `weather_observations_uploads`.
    leaked = [n for n in DATASETS if f'"{n}"' in text or f"/{n}/" in text or f'"{n},' in text]
    assert not leaked
    assert sqlite_api.get("/openapi.json", token="not-a-token").status_code == 401
