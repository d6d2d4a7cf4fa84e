"""Evaluation results by commit, and rendered reports by asset and partition."""

import pytest

from collab_pipelines_tests.data_api.conftest import COMMIT_A, COMMIT_B
from collab_pipelines_tests.data_api.reports import REPORT_KEY, report_materialization


@pytest.mark.parametrize("commit", [COMMIT_A, COMMIT_A[:8], COMMIT_A[:5].upper()])
def test_evaluations_of_a_commit_with_their_metrics(api, commit):
    response = api.get(f"/v1/evaluations/{commit}")
    assert response.status_code == 200, response.text
    evaluations = response.json()["evaluations"]
    assert [e["evaluation_key"] for e in evaluations] == [f"delay-model:model@{COMMIT_A[:8]}"]
    assert evaluations[0]["result"]["status"] == "passed"
    assert evaluations[0]["result"]["evaluated_at"].startswith("2013-01-08T12:00:00")
    assert {m["metric"]: m["value"] for m in evaluations[0]["metrics"]} == {"auc": 0.81, "accuracy": 0.77}


def test_evaluation_problems(api):
    other = api.get(f"/v1/evaluations/{COMMIT_B[:12]}").json()["evaluations"]
    assert [e["result"]["message"] for e in other] == ["auc fell by 0.04"]
    unknown = api.get("/v1/evaluations/ffffeeee")
    assert unknown.status_code == 404 and "no evaluation of commit ffffeeee" in unknown.json()["detail"]
    bad = api.get("/v1/evaluations/zz%27--")
    assert bad.status_code == 400 and bad.json()["parameter"] == "commit"


def test_a_report_is_served_from_its_latest_materialization(sqlite_api):
    deployment = sqlite_api.deployment
    reports = deployment.state_dir / "reports"
    report_materialization(
        deployment.instance,
        reports / "a.html",
        asset_key="ops/delays",
        partition="2013-01-04",
        html="<html>day four, old</html>",
    )
    report_materialization(
        deployment.instance,
        reports / "b.html",
        asset_key="ops/delays",
        partition="2013-01-04",
        html="<html>day four</html>",
    )
    report_materialization(
        deployment.instance,
        reports / "c.html",
        asset_key="ops/delays",
        partition="2013-01-05",
        html="<html>day five</html>",
    )
    four = sqlite_api.get("/v1/reports/ops/delays", params={"partition": "2013-01-04"})
    assert four.status_code == 200 and four.text == "<html>day four</html>"
    assert four.headers["content-type"].startswith("text/html")
    assert four.headers["Content-Security-Policy"] == "sandbox"
    assert sqlite_api.get("/v1/reports/ops/delays").text == "<html>day five</html>"
    again = sqlite_api.get(
        "/v1/reports/ops/delays",
        params={"partition": "2013-01-04"},
        headers={"If-None-Match": four.headers["ETag"]},
    )
    assert again.status_code == 304


def test_report_paths_outside_the_state_folder_are_refused(sqlite_api, tmp_path):
    deployment = sqlite_api.deployment
    outside = tmp_path / "secret.html"
    report_materialization(deployment.instance, outside, asset_key="leaky_report", html="<html>secret</html>")
    refused = sqlite_api.get("/v1/reports/leaky_report")
    assert refused.status_code == 403 and "outside the project's shared folder" in refused.json()["detail"]
    assert "secret" not in refused.text
    sneaky = deployment.state_dir / "reports" / ".." / ".." / "secret.html"
    report_materialization(deployment.instance, sneaky, asset_key="sneaky_report")
    assert sqlite_api.get("/v1/reports/sneaky_report").status_code == 403


def test_report_problems(sqlite_api):
    deployment = sqlite_api.deployment
    assert sqlite_api.get("/v1/reports/never_made").status_code == 404
    missing = sqlite_api.get(f"/v1/reports/{REPORT_KEY}", params={"partition": "1999-01-01"})
    assert missing.status_code == 404 and "never been materialized" in missing.json()["detail"]
    report_materialization(
        deployment.instance, deployment.state_dir / "reports" / "gone.html", asset_key="gone"
    )
    gone = sqlite_api.get("/v1/reports/gone")
    assert gone.status_code == 404 and "no longer exists" in gone.json()["detail"]
    assert sqlite_api.get("/v1/reports/bad%20key").status_code == 400
