"""Evaluation runs through Dagster: run retries leave a crashing commit alone, the model's
output and its environment's build reach the run's logs, the prediction-diff gate is blocking or advisory, and a
regressing commit's note reaches a clone of its repository."""

from pathlib import Path

import dagster as dg
import yaml
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from collab_pipelines.evaluation.assets import build_model_evaluation
from collab_pipelines.evaluation.feedback import note_text
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.evaluation.test_evaluation import (
    CONTRACT,
    GOOD,
    MODEL,
    checks,
    evaluate,
    metadata,
)
from collab_pipelines_tests.evaluation.test_sensor import Ticks

DEPLOY_DAGSTER_YAML = Path(__file__).parents[2] / "deploy" / "dagster.yaml"
# Without class weights the model predicts the majority class far more often: many labels
# change against the baseline while its ranking (roc_auc) stays about the same.
UNWEIGHTED = {
    "model.py": MODEL.replace('LogisticRegression(class_weight="balanced")', "LogisticRegression()")
}


def run_retries() -> dict:
    return {"run_retries": yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())["run_retries"]}


def run_as_the_sensor_asks(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The commit sensor's one run request, materialized with its tags."""
    for name in ("flights", "weather"):
        instance.report_runless_asset_event(dg.AssetMaterialization(name))
    [request] = Ticks(instance)().run_requests
    return dg.materialize(
        [build_model_evaluation()],
        partition_key=request.partition_key,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
        resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
    )


def test_a_crashing_commit_is_not_retried_with_run_retries_on(make_repo, suites, warehouse, state_dir):
    assert run_retries()["run_retries"]["enabled"]
    repo = make_repo("model")
    repo.commit("Broken", {**GOOD, "model.py": "def build(:\n"})
    suites.add("delays", {"model": repo})
    with dg.instance_for_test(overrides=run_retries()) as instance:
        result = run_as_the_sensor_asks(instance)
        assert not result.success
        step_starts = [e for e in result.all_events if e.event_type_value == "STEP_START"]
        assert len(step_starts) == 1  # the asset's retry policy did not retry it either
        assert should_retry(instance.get_run_by_id(result.run_id), instance) is False

        # The same instance does retry a failure that may pass next time: the test can fail.
        @dg.asset
        def flaky():
            raise ConnectionError("the database went away")

        control = dg.materialize([flaky], instance=instance, raise_on_error=False)
        assert should_retry(instance.get_run_by_id(control.run_id), instance) is True


def test_the_models_output_is_in_the_runs_logs_and_its_reported_values_in_metadata(
    ticks, instance, warehouse, suites, make_repo
):
    talking = MODEL.replace(
        "def build():",
        "from collab_eval import report\n\ndef build():\n"
        "    for epoch in range(2):\n"
        "        print(f'epoch {epoch}: building')\n"
        "    report(epochs=2, importances={'hour': 0.7})",
    )
    repo = make_repo("model")
    repo.commit("Talks", {**GOOD, "model.py": talking})
    suites.add("delays", {"model": repo})
    [key] = ticks.keys()
    result = evaluate(instance, key)
    assert result.success
    logged = [
        record.user_message
        for record in instance.all_logs(result.run_id)
        if record.user_message.startswith("[model ")
    ]
    assert "[model stdout] epoch 0: building" in logged and "[model stdout] epoch 1: building" in logged
    data = metadata(result)
    assert data["model/epochs"] == 2.0 and data["model/importances"] == {"hour": 0.7}


def environment_log(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        record.user_message.removeprefix("[environment] ")
        for record in instance.all_logs(run_id)
        if record.user_message.startswith("[environment] ")
    ]


def test_the_environments_build_is_in_the_runs_logs_as_it_happens_or_fails(
    ticks, instance, warehouse, suites, make_repo
):
    repo = make_repo("model")
    # pyjokes: small, pure Python, from the package index, and not a dependency of the project.
    repo.commit("Jokes", {**GOOD, "requirements.txt": "pyjokes==0.8.3\n"})
    repo.commit("Tweak", UNWEIGHTED)
    repo.commit("A package nobody published", {"requirements.txt": "collab-no-such-package-8d1f3a==1.0\n"})
    suites.add("delays", {"model": repo})
    built_key, cached_key, failing_key = ticks.keys()

    built = evaluate(instance, built_key)
    assert built.success
    logged = environment_log(instance, built.run_id)
    [install] = [line for line in logged if line.startswith("$ ") and " pip install " in line]
    assert install.endswith("/requirements.txt") and "--link-mode copy" in install
    assert any("pyjokes==0.8.3" in line for line in logged)  # uv's own words: what it installed
    assert sum(line.startswith("exit code 0 after ") for line in logged) == 2  # venv, then install
    assert any(line.startswith("requirements.txt: environment built in ") for line in logged)

    cached = evaluate(instance, cached_key)
    assert cached.success
    [reused] = environment_log(instance, cached.run_id)
    assert reused.startswith("requirements.txt: the cached environment ")

    failing = evaluate(instance, failing_key)
    assert not failing.success
    logged = environment_log(instance, failing.run_id)
    assert any(line.startswith("$ ") and line.endswith("/requirements.txt") for line in logged)
    assert any("collab-no-such-package-8d1f3a was not found" in line for line in logged)
    assert logged[-1].startswith("exit code 1 after ")


def test_a_blocking_prediction_diff_regresses_the_commit_and_its_note_reaches_a_clone(
    ticks, instance, warehouse, suites, make_repo, tmp_path
):
    blocking = CONTRACT.replace(
        "max_changed_predictions = 0.3", 'max_changed_predictions = 0.05\nprediction_diff = "blocking"'
    )
    repo = make_repo("model")
    remote = tmp_path / "remote.git"
    repo.git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    repo.commit("Baseline", {**GOOD, "collab.toml": blocking})
    changed = repo.commit("Drop the class weights", UNWEIGHTED)
    repo.git("push", "--quiet", "origin", "main")
    suites.add("delays", {"model": repo}, notes={"push": True})
    good_key, changed_key = ticks.keys()
    assert evaluate(instance, good_key).success
    result = evaluate(instance, changed_key)
    diff = checks(result)["prediction_diff"]
    assert not diff.passed and diff.severity == dg.AssetCheckSeverity.ERROR
    assert "blocking prediction_diff gate" in diff.description
    assert metadata(result)["verdict"] == "regressed"
    [row] = warehouse.read("evaluation_results", where={"evaluation_key": changed_key}).to_dict("records")
    assert row["status"] == "regressed" and row["prediction_diff"] == "blocking breach"
    assert row["changed_share"] > 0.05 and diff.description in row["message"]

    clone = tmp_path / "clone"
    repo.git("clone", "--quiet", str(remote), str(clone))
    repo.git("-C", str(clone), "fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    note = repo.git("-C", str(clone), "log", "-1", "--notes=collab", "--format=%N", changed)
    assert note.startswith(f"collab evaluation {changed_key}: regressed")
    assert f"- {diff.description}" in note and f"/runs/{result.run_id}" in note
    assert note_text  # the format is documented there


def test_an_advisory_prediction_diff_passes_the_commit_and_shows_the_breach(
    ticks, instance, warehouse, suites, make_repo
):
    advisory = CONTRACT.replace("max_changed_predictions = 0.3", "max_changed_predictions = 0.05")
    repo = make_repo("model")
    repo.commit("Baseline", {**GOOD, "collab.toml": advisory})
    repo.commit("Drop the class weights", UNWEIGHTED)
    suites.add("delays", {"model": repo})
    good_key, changed_key = ticks.keys()
    assert evaluate(instance, good_key).success
    result = evaluate(instance, changed_key)
    diff = checks(result)["prediction_diff"]
    assert not diff.passed and diff.severity == dg.AssetCheckSeverity.WARN
    assert "advisory prediction_diff gate" in diff.description
    assert checks(result)["metric_gates"].passed
    [row] = warehouse.read("evaluation_results", where={"evaluation_key": changed_key}).to_dict("records")
    assert row["status"] == "passed" and row["prediction_diff"] == "advisory breach"
    assert diff.description in row["message"]


def test_a_harness_error_after_the_model_returned_is_a_recorded_failure_not_a_retry(
    make_repo, suites, warehouse, state_dir, monkeypatch
):
    from collab_pipelines.evaluation import verdict

    def broken_gate(*args, **kwargs):  # a bug of the project's own, in the gates
        raise ZeroDivisionError("division by zero in the gates")

    monkeypatch.setattr(verdict, "compare", broken_gate)
    repo = make_repo("model")
    repo.commit("Good", GOOD)
    suites.add("delays", {"model": repo})
    with dg.instance_for_test(overrides=run_retries()) as instance:
        result = run_as_the_sensor_asks(instance)
        assert not result.success
        assert len([e for e in result.all_events if e.event_type_value == "STEP_START"]) == 1
        assert should_retry(instance.get_run_by_id(result.run_id), instance) is False
    [row] = warehouse.read("evaluation_results").to_dict("records")
    assert row["status"] == "failed"
    assert "the harness failed after the model returned (ZeroDivisionError" in row["message"]
    assert "the project's error, not the commit's" in row["message"]
