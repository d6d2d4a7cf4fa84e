"""The OpenAPI document: complete, served at /docs, and honoured under property-based testing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from collab_pipelines.data_api.scope import Scope
from collab_pipelines.datasets import all_datasets
from collab_pipelines_tests.data_api.conftest import TOKEN
from collab_pipelines_tests.data_api.reports import REPORT_KEY, report_materialization
from collab_pipelines_tests.data_api.scoped import SCOPED_DATASETS, audit_records, issue, names_read


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "anonymous"])
def test_every_parameter_has_a_description_and_an_example(sqlite_api, with_token):
    schema = sqlite_api.get("/openapi.json", token=TOKEN if with_token else None).json()
    assert schema["openapi"].startswith("3.")
    assert "Bearer" in schema["info"]["description"]
    parameters = [
        (path, p)
        for path, item in schema["paths"].items()
        for op in item.values()
        for p in op.get("parameters", [])
    ]
    assert len(parameters) >= (15 if with_token else 10)
    for path, parameter in parameters:
        assert parameter.get("description"), (path, parameter["name"])
        assert parameter.get("examples"), (path, parameter["name"])
    rows = schema["paths"]["/v1/datasets/{name}/rows"]["get"]
    assert set(rows["responses"]["200"]["content"]) == {
        "application/json",
        "application/x-ndjson",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    assert rows["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/health"]["get"]


def test_docs_are_served_without_a_token_and_fetch_the_document_with_one(sqlite_api):
    docs = httpx.get(sqlite_api.url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    # Everything the page loads is served here: nothing from a CDN a closed network cannot reach.
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert assets and all(asset.startswith("/docs-assets/") for asset in assets), assets
    for asset in assets:
        assert httpx.get(sqlite_api.url + asset).status_code == 200, asset
    # The page itself holds no data: after "Authorize" it fetches the token's own document.
    assert 'request.headers.Authorization = "Bearer " + token' in docs.text
    assert "ui.specActions.download" in docs.text


def schemathesis(api, token: str, arguments: list[str], *, hooks: bool) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        api.url + "/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        *arguments,
        "--max-examples",
        "40",
        "--seed",
        "777",
        "--request-timeout",
        "30",
    ]
    env = dict(os.environ)
    env.pop("SCHEMATHESIS_HOOKS", None)
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = "collab_pipelines_tests.data_api.schemathesis_hooks"
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=600, env=env)


def test_the_documents_examples_are_accepted_as_they_are(sqlite_api):
    """Swagger UI's "Try it out" and schemathesis send every parameter's example together: each
    operation's examples, generic ones included, must make a request the server accepts, with no
    hook to set them right."""
    result = schemathesis(sqlite_api, TOKEN, ["--phases", "examples"], hooks=False)
    summary = result.stdout.split("SUMMARY")[-1]
    assert result.returncode == 0 and "ST202" not in result.stdout, (
        result.stdout[-8000:] + result.stderr[-2000:]
    )
    assert "passed" in summary and "failed" not in summary


@pytest.mark.parametrize("scoped", [False, True], ids=["full", "scoped"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(sqlite_api, scoped):
    deployment = sqlite_api.deployment
    token = TOKEN
    if scoped:
        issued = issue(
            sqlite_api, "fuzz", Scope(datasets=SCOPED_DATASETS, suites=("rain",), reports=("ops/*",))
        )
        token = issued.token
    # The documented example report exists, so the fuzzer reaches the file-serving path too.
    report_materialization(
        deployment.instance,
        deployment.state_dir / "reports" / "example.html",
        partition="2013-01-05",
        html="<html><body>report</body></html>",
    )
    # Every check, "schema-valid requests are accepted" (ST202) included. The generic rows
    # operation is exercised through its per-dataset operations, which state each dataset's
    # columns and types; schemathesis_hooks.py applies the rules between parameters to the
    # cases it generates.
    result = schemathesis(
        sqlite_api,
        token,
        ["--exclude-path", "/v1/datasets/{name}/rows", "--phases", "examples,coverage,fuzzing"],
        hooks=True,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "passed" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]
    if scoped:
        records = audit_records(sqlite_api, issued.name)
        # The document schemathesis tested was the token's own, and nothing outside it was read.
        assert any(
            r["read"] == "openapi" and set(r["datasets"]) == {"airlines", "airports", "weather"}
            for r in records
        )
        assert any(r["read"] == "rows" for r in records)
        assert names_read(records) <= {"airlines", "airports", "weather"}
        assert REPORT_KEY not in names_read(records) and set(all_datasets()) & names_read(records)
