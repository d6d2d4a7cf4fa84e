"""`collab-eval champion` and `GET /v1/suites/{suite}/champion` against a real data API server."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from collab_pipelines.data_api.scope import NOTHING, Scope
from collab_pipelines.data_api.tokens import issue_token
from collab_pipelines.evaluation.champion import demote, promote
from collab_pipelines.evaluation.suites import parse_suites
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.evaluation.test_cli import COMMITS, TOKEN, api  # noqa: F401 - the server fixture

PASSED_KEY = f"delays:model@{COMMITS['passed'][:10]}"
SUITES = parse_suites(
    {"suites": {name: {"repositories": {"model": {"location": "/x"}}} for name in ("delays", "other")}},
    "suites.yaml",
)


def champion(url: str, suite: str, *extra: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "collab-eval"
    env = {"PATH": os.environ["PATH"], "COLLAB_API_URL": url, "COLLAB_API_TOKEN": TOKEN}
    return subprocess.run(
        [str(script), "champion", suite, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_cli_prints_the_champion_and_its_history(api):  # noqa: F811
    none = champion(api, "delays")
    assert none.returncode == 1 and none.stdout.strip() == "delays: no champion", none.stderr

    warehouse = Warehouse()
    promote(warehouse, SUITES["delays"], PASSED_KEY, "ada", "best recall so far", "run-p1")
    demote(warehouse, SUITES["delays"], "bob", "the data drifted", "run-d1")
    promote(warehouse, SUITES["delays"], PASSED_KEY, "ada", "the drift was a bad export", "run-p2")

    shown = champion(api, "delays")
    assert shown.returncode == 0, shown.stderr
    [line] = shown.stdout.splitlines()
    assert line.startswith(f"delays: champion {PASSED_KEY}, promoted 20")
    assert line.endswith(" by ada: the drift was a bad export")

    lines = champion(api, "delays", "--history").stdout.splitlines()
    assert len(lines) == 4
    assert lines[1].split("  ", 1)[1] == f"promote {PASSED_KEY} (was none) by ada: best recall so far"
    assert lines[2].split("  ", 1)[1] == f"demote  no champion (was {PASSED_KEY}) by bob: the data drifted"

    answer = json.loads(champion(api, "delays", "--history", "--json").stdout)
    assert answer["champion"]["run_id"] == "run-p2" and answer["champion"]["commits"] == {
        "model": COMMITS["passed"]
    }
    assert [c["action"] for c in answer["history"]] == ["promote", "demote", "promote"]
    assert "history" not in json.loads(champion(api, "delays", "--json").stdout)

    unknown = champion(api, "never-evaluated")
    assert unknown.returncode == 4 and "knows no suite 'never-evaluated'" in unknown.stderr


def test_the_endpoint_answers_a_full_token_and_hides_other_suites_from_a_scoped_one(api, state_dir):  # noqa: F811
    promote(Warehouse(), SUITES["delays"], PASSED_KEY, "ada", "best recall so far", "run-p1")
    scoped, _ = issue_token(
        "other-only", state_dir / "api_tokens", Scope(datasets=NOTHING, suites=("other",))
    )

    def get(path: str, token: str) -> httpx.Response:
        return httpx.get(api + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    full = get("/v1/suites/delays/champion", TOKEN)
    assert full.status_code == 200, full.text
    body = full.json()
    assert body["champion"]["evaluation_key"] == PASSED_KEY and body["champion"]["by"] == "ada"
    assert [c["previous_key"] for c in body["history"]] == [None]

    own = get("/v1/suites/other/champion", scoped)
    assert own.status_code == 200 and own.json() == {"suite": "other", "champion": None, "history": []}
    hidden = get("/v1/suites/delays/champion", scoped)
    missing = get("/v1/suites/nothing-here/champion", TOKEN)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text == missing.text.replace("nothing-here", "delays")
    # The whole table, every suite side by side, is not the scoped token's either.
    assert get("/v1/datasets/champion_history/rows", scoped).status_code == 404
    rows = get("/v1/datasets/champion_history/rows", TOKEN).json()["data"]
    assert [(r["suite"], r["evaluation_key"]) for r in rows] == [("delays", PASSED_KEY)]

    records = [json.loads(line) for line in (state_dir / "api_audit.jsonl").read_text().splitlines()]
    reads = [(r["token"], r["read"], r.get("suites")) for r in records if r["read"] == "champion"]
    assert reads == [("ci", "champion", ["delays"]), ("other-only", "champion", ["other"])]
