"""The evaluation reports on a suite that is not the demo's: a rain classifier on weather stations.

Everything here is made by the test: the dataset, a model repository with its collab.toml, the
suites file, and the evaluation tables, written by the evaluation's own functions from the
predictions of real scikit-learn classifiers.
"""

import subprocess
from pathlib import Path

import dagster as dg
import nbformat
import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression

from collab_pipelines.evaluation.gates import compare
from collab_pipelines.evaluation.records import metrics_frame, results_row, write_evaluation
from collab_pipelines.evaluation.scoring import compute_metrics
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import assert_published_clean, execute, materializations

SUITE = "rain-model"
CONTRACT = """
[model]
entry_point = "model:build"

[data]
dataset = "station_readings"
target = "rained"
time_column = "read_at"
row_id = "reading_id"
features = "features:build"
slices = ["station", "season"]

[evaluation]
metrics = ["roc_auc", "accuracy", "recall"]
test_days = 5

[gates.roc_auc]
min = 0.55
max_drop = 0.01
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def readings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 1500
    frame = pd.DataFrame(
        {
            "reading_id": np.arange(10_000, 10_000 + n),
            "read_at": pd.Timestamp("2024-03-01") + pd.to_timedelta(rng.integers(0, 15 * 24, n), unit="h"),
            "station": rng.choice(["north_ridge", "harbour", "valley"], n),
            "season": "spring",
            "humidity": rng.uniform(20, 100, n),
            "pressure_hpa": rng.normal(1013, 8, n),
        }
    )
    logit = (frame["humidity"] - 65) / 8 - (frame["pressure_hpa"] - 1013) / 6
    frame["rained"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame.sort_values("read_at", ignore_index=True)


def predictions(frame: pd.DataFrame, key: str, features: list[str], split_at) -> pd.DataFrame:
    train, test = frame[frame["read_at"] < split_at], frame[frame["read_at"] >= split_at]
    model = LogisticRegression().fit(train[features], train["rained"])
    score = model.predict_proba(test[features])[:, 1]
    return pd.DataFrame(
        {
            "evaluation_key": key,
            "row_id": test["reading_id"].astype(str).to_numpy(),
            "time": test["read_at"].to_numpy(),
            "y_true": test["rained"].astype("Int64").to_numpy(),
            "y_pred": pd.array((score > 0.5).astype(int), dtype="Int64"),
            "y_score": score,
        }
    )


def evaluate(warehouse, key, sha, preds, baseline_key=None, baseline=None, status="passed", message=""):
    metrics = ("roc_auc", "accuracy", "recall")
    values = compute_metrics(metrics, preds)
    comparisons = compare(metrics, preds, baseline, values, gated=metrics)
    row = results_row(
        key,
        SUITE,
        {"model": sha},
        f"run-{sha[:6]}",
        status=status,
        message=message,
        baseline_key=baseline_key,
        split_at=pd.Timestamp("2024-03-11"),
        data_through="2024-03-15",
        data_version="v1",
        train_rows=1000,
        test_rows=len(preds),
        seconds=1.0,
    )
    write_evaluation(warehouse, key, row, metrics_frame(key, comparisons), preds)


def rain_suite(state_dir: Path, tmp_path: Path) -> tuple[str, str]:
    """The suite's repository with two commits, and the suites file naming it."""
    repo = tmp_path / "rain-model"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "collab.toml").write_text(CONTRACT)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one feature")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "model.py").write_text("# two features now\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "two features")
    second = git(repo, "rev-parse", "HEAD")
    (state_dir / "suites.yaml").write_text(
        yaml.safe_dump({"suites": {SUITE: {"repositories": {"model": {"location": str(repo)}}}}})
    )
    return first, second


def test_the_evaluation_report_explains_a_rain_model_commit(state_dir, instance, tmp_path):
    first, second = rain_suite(state_dir, tmp_path)
    warehouse = Warehouse()
    frame = readings()
    warehouse.replace("station_readings", frame)
    split_at = pd.Timestamp("2024-03-11")
    base_key, key = f"{SUITE}:model@{first[:10]}", f"{SUITE}:model@{second[:10]}"
    base = predictions(frame, base_key, ["humidity"], split_at)
    mine = predictions(frame, key, ["humidity", "pressure_hpa"], split_at)
    evaluate(warehouse, base_key, first, base)
    evaluate(warehouse, key, second, mine, base_key, base)

    instance.add_dynamic_partitions("evaluation_commits", [base_key, key])
    result = execute(jobs.evaluation_report_job, instance, partition=key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    metadata = materializations(instance, "evaluation_report")[key]
    notebook = nbformat.read(metadata["notebook"], as_version=4)
    text = nbformat.writes(notebook)
    assert not any(o.output_type == "error" for c in notebook.cells for o in c.get("outputs", []))
    # The suite's own names, from its collab.toml at the commit.
    for name in ("station_readings", "rained", "read_at", "reading_id", SUITE):
        assert name in text, f"{name} is not in the report"
    # Every metric with its change and interval, and the gates in words.
    for metric in ("roc_auc", "accuracy", "recall"):
        assert metric in text
    assert "90% interval of the change" in text and "roc_auc floor 0.55: met" in text
    # The metric per day of the test window: one row per day.
    for day in pd.date_range("2024-03-11", "2024-03-15"):
        assert day.strftime("%Y-%m-%d") in text, f"no per-day figure for {day.date()}"
    # Slices, and the changed rows with their features.
    for value in ("station = north_ridge", "station = harbour", "station = valley", "season = spring"):
        assert value in text
    changed = (mine.set_index("row_id")["y_pred"] != base.set_index("row_id")["y_pred"]).sum()
    assert changed > 0 and f"{changed:,} of {len(mine):,} shared rows changed" in text
    assert "humidity" in text and "pressure_hpa" in text
    assert "flight" not in text.lower() and "delay" not in text.lower()
    assert "<img" in Path(metadata["html_path"]).read_text() or "image/png" in text
    assert_published_clean(Path(metadata["notebook"]), Path(metadata["html_path"]))

    # The trend across commits names both, marked with their verdicts.
    trend = execute(jobs.evaluation_trend_job, instance)
    assert trend.success
    trend_text = nbformat.writes(
        nbformat.read(materializations(instance, "evaluation_trend")[None]["notebook"], as_version=4)
    )
    assert f"Suite `{SUITE}`: 2 commit(s), 2 passed" in trend_text
    assert first[:10] in trend_text and second[:10] in trend_text


def test_per_day_metrics_of_one_reading_a_day_are_shown_where_computable_and_the_rest_explained(
    state_dir, instance, tmp_path
):
    first, second = rain_suite(state_dir, tmp_path)
    days = pd.date_range("2024-03-01", "2024-03-15")
    # Rain on alternate days before the split; on 2024-03-11 and 03-14 only in the test window.
    rained = [day.day % 2 for day in days[:10]] + [1, 0, 0, 1, 0]
    frame = pd.DataFrame(
        {
            "reading_id": np.arange(500, 500 + len(days)),
            "read_at": days + pd.Timedelta(hours=9),
            "station": "harbour",
            "season": "spring",
            "humidity": [90.0 if wet else 30.0 for wet in rained],
            "pressure_hpa": 1013.0,
            "rained": rained,
        }
    )
    warehouse = Warehouse()
    warehouse.replace("station_readings", frame)
    split_at = pd.Timestamp("2024-03-11")
    base_key, key = f"{SUITE}:model@{first[:10]}", f"{SUITE}:model@{second[:10]}"
    base = predictions(frame, base_key, ["pressure_hpa"], split_at)
    mine = predictions(frame, key, ["humidity"], split_at)
    assert len(mine) == 5 and mine["time"].dt.date.nunique() == 5  # one row a day
    evaluate(warehouse, base_key, first, base)
    evaluate(warehouse, key, second, mine, base_key, base)
    instance.add_dynamic_partitions("evaluation_commits", [base_key, key])

    result = execute(jobs.evaluation_report_job, instance, partition=key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    notebook = nbformat.read(materializations(instance, "evaluation_report")[key]["notebook"], as_version=4)
    [cell] = [c for c in notebook.cells if c.source.startswith("daily = ")]
    shown = nbformat.writes(nbformat.v4.new_notebook(cells=[cell]))
    assert not any(output.output_type == "error" for output in cell.outputs)
    # Accuracy is a number every day; AUC on no day (one label a day); recall on the rainy days.
    assert "NaN" not in shown and "nan" not in shown
    assert "accuracy" in shown and "accuracy: omitted" not in shown
    assert "roc_auc: omitted on all 5 days: a single class of label, and roc_auc needs both." in shown
    assert "roc_auc (baseline): omitted on all 5 days" in shown
    assert (
        "recall: omitted on 3 of 5 days (2024-03-12, 2024-03-13, 2024-03-15): "
        "no positive label, which recall divides by."
    ) in shown
    [table] = [
        o for o in cell.outputs if "text/html" in o.get("data", {}) and "accuracy" in o.data["text/html"]
    ]
    assert "roc_auc" not in table.data["text/html"] and "recall" in table.data["text/html"]


@dg.op
def failing_fit() -> None:
    raise dg.Failure(
        description="rain-model:model@cccccccccc: fit failed: ValueError: humidity has NaN",
        metadata={
            "stage": "fit",
            "traceback": dg.MetadataValue.md("```\nTraceback: in fit\nValueError: humidity has NaN\n```"),
        },
    )


@dg.job
def failing_evaluation_job() -> None:
    failing_fit()


def test_a_failed_commit_gets_a_report_with_its_stage_message_and_traceback(state_dir, tmp_path, monkeypatch):
    home = tmp_path / "dagster-home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        failed_run = failing_evaluation_job.execute_in_process(instance=instance, raise_on_error=False)
        key = f"{SUITE}:model@cccccccccc"
        row = results_row(
            key,
            SUITE,
            {"model": "c" * 40},
            failed_run.run_id,
            status="failed",
            message=f"{key} (model@cccccccccc): fit failed: ValueError: humidity has NaN",
        )
        predictions_empty = pd.DataFrame(
            columns=["evaluation_key", "row_id", "time", "y_true", "y_pred", "y_score"]
        )
        write_evaluation(Warehouse(), key, row, metrics_frame(key, {}), predictions_empty)
        instance.add_dynamic_partitions("evaluation_commits", [key])
        result = execute(jobs.evaluation_report_job, instance, partition=key)
        assert result.success, "a failed commit's report renders; it is not a failed report run"
        text = nbformat.writes(
            nbformat.read(materializations(instance, "evaluation_report")[key]["notebook"], as_version=4)
        )
    assert "**Stage:** `fit`" in text
    assert "ValueError: humidity has NaN" in text and "Traceback: in fit" in text


def test_a_report_whose_upstream_partition_is_missing_says_which(warehouse, instance):
    day = "2013-02-20"  # the warehouse holds 2013-01-01..07 only
    result = execute(jobs.probe_report_job, instance, partition=day)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.event_specific_data.user_failure_data
    assert f"dataset flights has no rows for partition '{day}'" in data.description
    notebook = nbformat.read(data.metadata["notebook"].value, as_version=4)
    top = notebook.cells[0].source
    assert "Not rendered: missing inputs" in top and f"partition '{day}'" in top and "flights" in top
    assert not materializations(instance, "probe_report"), "a missing day is not a materialized report"
