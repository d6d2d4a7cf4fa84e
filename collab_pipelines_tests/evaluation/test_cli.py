"""`collab-eval wait` against a real data API server (uvicorn) over a real warehouse."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from collab_pipelines import settings
from collab_pipelines.data_api.auth import TOKENS_ENV, TOKENS_FILE_ENV, hash_token
from collab_pipelines.evaluation.cli import verdict
from collab_pipelines.evaluation.gates import Comparison
from collab_pipelines.evaluation.records import (
    empty_predictions,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.e2e.processes import Service, free_port, wait_for

TOKEN = "tok-" + uuid.uuid4().hex
COMMITS = {
    "passed": "1111111111aaaaaaaaaa1111111111aaaaaaaaaa",
    "regressed": "2222222222bbbbbbbbbb2222222222bbbbbbbbbb",
    "failed": "3333333333cccccccccc3333333333cccccccccc",
}
NEVER_EVALUATED = "4444444444dddddddddd4444444444dddddddddd"
# A suite of two repositories: m1 passed with f1 (its own change), then f2 regressed with m1.
F1, F2, M1 = "5555555555" * 4, "6666666666" * 4, "7777777777" * 4
M1_OWN = f"pair:features@{F1[:10]}+model@{M1[:10]}"
F2_OWN = f"pair:features@{F2[:10]}+model@{M1[:10]}"
REASONS = {
    "passed": "every gate passed against delays:model@0000000000",
    "regressed": "roc_auc dropped by 0.0300 against delays:model@1111111111 (allowed 0.01); "
    "90% interval of the change [-0.0500, -0.0100] is below zero",
    "failed": "delays:model@3333333333 (model@3333333333): fit failed: ValueError: bad learning rate",
}


@pytest.fixture
def api(tmp_path, state_dir):
    warehouse = Warehouse()
    for status, sha in COMMITS.items():
        key = f"delays:model@{sha[:10]}"
        write_evaluation(
            warehouse,
            key,
            results_row(key, "delays", {"model": sha}, "run-1", status=status, message=REASONS[status]),
            metrics_frame(
                key,
                {} if status == "failed" else {"roc_auc": Comparison("roc_auc", 0.61, 0.64, -0.05, -0.01)},
            ),
            empty_predictions(),
        )
    for combination, commits, trigger, status in (
        (M1_OWN, {"features": F1, "model": M1}, "model/main", "passed"),
        (F2_OWN, {"features": F2, "model": M1}, "features/main", "regressed"),
    ):
        write_evaluation(
            warehouse,
            combination,
            results_row(combination, "pair", commits, "r", status=status, message=status, trigger=trigger),
            metrics_frame(combination, {}),
            empty_predictions(),
        )
    # Another suite's verdict on the same commit must not answer for this one.
    other = f"other:model@{COMMITS['passed'][:10]}"
    write_evaluation(
        warehouse,
        other,
        results_row(other, "other", {"model": COMMITS["passed"]}, "r", status="regressed", message="x"),
        metrics_frame(other, {}),
        empty_predictions(),
    )
    home = state_dir / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    env = {
        **os.environ,
        settings.STATE_DIR_ENV: str(state_dir),
        "DAGSTER_HOME": str(home),
        TOKENS_ENV: f"ci:{hash_token(TOKEN)}",
        TOKENS_FILE_ENV: str(state_dir / "api_tokens"),
    }
    script = Path(sys.executable).parent / "collab-data-api"
    service = Service("data-api-cli", [str(script), "serve", "--port", str(port)], env, tmp_path)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for("the data API's /health", healthy, timeout=90, interval=0.3, service=service)
        yield url
    finally:
        service.stop()


def wait(
    url: str, commit: str, *extra: str, token: str = TOKEN, suite: str = "delays"
) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "collab-eval"
    env = {"PATH": os.environ["PATH"], "COLLAB_API_URL": url, "COLLAB_API_TOKEN": token}
    return subprocess.run(
        [str(script), "wait", suite, commit, "--timeout", "2", "--interval", "0.5", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_exit_code_is_the_verdict_and_json_says_it_too(api):
    # One test, one server: the data API's start costs most of the time.
    for status, code in (("passed", 0), ("regressed", 1), ("failed", 2)):
        done = wait(api, COMMITS[status])
        assert done.returncode == code, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == f"delays:model@{COMMITS[status][:10]}: {status}"
        assert lines[1:] == [f"- {reason}" for reason in REASONS[status].split("; ")]
    done = wait(api, NEVER_EVALUATED)
    assert done.returncode == 3
    assert done.stdout.strip() == f"no verdict for delays at {NEVER_EVALUATED} within 2 s"

    done = wait(api, COMMITS["regressed"][:12], "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "regressed" and report["exit_code"] == 1
    assert report["evaluation_key"] == f"delays:model@{COMMITS['regressed'][:10]}"
    assert report["metrics"]["roc_auc"]["value"] == 0.61
    assert json.loads(wait(api, NEVER_EVALUATED, "--json").stdout)["status"] == "timeout"
    refused = wait(api, COMMITS["passed"], token="not-a-token")
    assert refused.returncode == 4 and "answered 401" in refused.stderr


def test_a_model_commit_is_answered_for_its_own_change_not_another_authors(api):
    # m1 passed with the features it came to; f2 regressed with it later: m1's CI passes.
    done = wait(api, M1, suite="pair")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"{M1_OWN}: passed",
        "- passed",
        "also judged with other repositories' commits (not counted in the exit code):",
        f"  {F2_OWN}: regressed",
    ]
    # The features author's own change is the regressed one.
    assert wait(api, F2[:8], suite="pair").returncode == 1
    # Asked for the combination with f2, m1 gets that verdict, named as such.
    paired = wait(api, M1, "--with", f"features={F2[:7]}", suite="pair")
    assert paired.returncode == 1 and paired.stdout.splitlines()[0] == f"{F2_OWN}: regressed"
    report = json.loads(wait(api, M1, "--json", suite="pair").stdout)
    assert report["evaluation_key"] == M1_OWN and report["combination"] == {"features": F1, "model": M1}
    assert report["trigger"] == "model/main"
    assert report["other_combinations"] == [{"evaluation_key": F2_OWN, "status": "regressed"}]
    # A combination never judged is waited for, and the timeout says which one.
    never = wait(api, M1, "--with", f"features={F1[:4]}0", suite="pair")
    assert never.returncode == 3 and f"(with features@{F1[:4]}0)" in never.stdout


def test_the_first_polls_combination_answers_each_author_whose_commit_made_it():
    def evaluation(key: str, commits: dict, trigger: str, status: str) -> dict:
        result = {"status": status, "commits": json.dumps(commits), "trigger": trigger, "evaluated_at": key}
        return {"evaluation_key": key, "result": result}

    # f1 and m1 were both new at the suite's first poll; f2 came later, with m1.
    first = evaluation(M1_OWN, {"features": F1, "model": M1}, "features/main, model/main", "passed")
    later = evaluation(F2_OWN, {"features": F2, "model": M1}, "features/main", "regressed")
    for sha in (F1, M1[:7]):
        assert verdict([first, later], "pair", sha) == (first, [later])
    assert verdict([first, later], "pair", F2)[0] is later
