"""A suite of two repositories, a features one and a model one, pushed within one poll: each
combination's baseline comes from the commit graph whatever run ends first, each commit's note
lists every combination it was judged in, and a failure names the repository whose code raised."""

import multiprocessing

import dagster as dg
import pytest

from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.tuning import tune_model
from collab_pipelines_tests.e2e.processes import wait_for
from collab_pipelines_tests.evaluation.test_evaluation import (
    CONTRACT,
    FEATURES,
    MODEL,
    evaluate,
    failure_message,
)
from collab_pipelines_tests.evaluation.test_sensor import commit_at

# The first model waits in fit for a file the test creates: its evaluation is still running
# while the next combination's model has already returned.
GATED_MODEL = MODEL.replace(
    "def build():",
    "import os\nimport time\nfrom pathlib import Path\n\n"
    "def build():\n"
    "    gate = os.environ.get('MODEL_GATE')\n"
    "    while gate and not Path(gate).exists():\n"
    "        time.sleep(0.05)",
)
GATED_CONTRACT = CONTRACT + '\n[environment]\nenv = ["MODEL_GATE"]\n'


def key(features: str, model: str) -> str:
    return f"delays:features@{features[:10]}+model@{model[:10]}"


def row(warehouse, evaluation_key: str) -> dict:
    [found] = warehouse.read("evaluation_results", where={"evaluation_key": evaluation_key}).to_dict(
        "records"
    )
    return found


def note(repo, sha: str) -> str:
    return GitRepository(str(repo.path), repo.path.parent).note(sha) or ""


def requested(ticks) -> dict[str, dict]:
    """The tick's run requests: key -> the tags the sensor gave the run."""
    return {request.partition_key: request.tags for request in ticks().run_requests}


def _evaluate_in_process(ref, evaluation_key: str, tags: dict, done) -> None:
    with dg.DagsterInstance.from_ref(ref) as instance:
        done.put(evaluate(instance, evaluation_key, tags=tags).success)


class InBackground:
    """A run in a process of its own, as the daemon's run workers are: Dagster's in-process
    execution sets up logging in ways two threads of one process cannot share."""

    def __init__(self, instance: dg.DagsterInstance, evaluation_key: str, tags: dict):
        context = multiprocessing.get_context("spawn")
        self.done = context.Queue()
        self.process = context.Process(
            target=_evaluate_in_process, args=(instance.get_ref(), evaluation_key, tags, self.done)
        )
        self.process.start()

    def success(self) -> bool:
        succeeded = self.done.get(timeout=600)
        self.process.join(timeout=60)
        return succeeded


def runs_of(instance, evaluation_key: str) -> list:
    return instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": evaluation_key}))


def test_the_baseline_is_the_nearest_ancestor_combination_whichever_run_ends_first(
    ticks, instance, warehouse, suites, make_repo, monkeypatch, tmp_path
):
    gate = tmp_path / "gate"
    monkeypatch.setenv("MODEL_GATE", str(gate))
    features, model = make_repo("features"), make_repo("model")
    f1 = commit_at(features, monkeypatch, 0, "features v1", {"features.py": FEATURES})
    m1 = commit_at(
        model, monkeypatch, 1, "model v1", {"collab.toml": GATED_CONTRACT, "model.py": GATED_MODEL}
    )
    suites.add(
        "delays",
        {"features": features, "model": model},
        contract="model",
        unsandboxed=True,  # the gate file lives outside the commit's export
        allowed_env=["MODEL_GATE"],
    )
    assert ticks.keys() == [key(f1, m1)]
    gate.touch()
    assert evaluate(instance, key(f1, m1)).success
    gate.unlink()

    # Both authors push before the next poll: the features first, then the model.
    f2 = commit_at(features, monkeypatch, 10, "features v2", {"features.py": FEATURES + "# v2\n"})
    m2 = commit_at(model, monkeypatch, 20, "model v2", {"model.py": MODEL})
    nearer, newer = key(f2, m1), key(f2, m2)
    tags = requested(ticks)
    assert list(tags) == [nearer, newer]

    def waiting() -> bool:
        return any(
            f"waits for the evaluation of {nearer}" in entry.user_message
            for record in runs_of(instance, newer)
            for entry in instance.all_logs(record.dagster_run.run_id)
        )

    # The nearer combination's model is still fitting when the newer one's has returned.
    slow = InBackground(instance, nearer, tags[nearer])
    try:
        wait_for(f"a run of {nearer}", lambda: runs_of(instance, nearer), timeout=120, interval=0.1)
        fast = InBackground(instance, newer, tags[newer])
        wait_for(f"{newer} to wait for {nearer}", waiting, timeout=300, interval=0.2)
        assert fast.process.is_alive() and slow.process.is_alive()
    finally:
        gate.touch()  # whatever failed, no model is left waiting
    assert slow.success() and fast.success()

    assert row(warehouse, nearer)["baseline_key"] == key(f1, m1)
    judged_first = row(warehouse, newer)
    assert judged_first["baseline_key"] == nearer, "not an older baseline that happened to be done"
    assert judged_first["status"] == "passed"
    assert (row(warehouse, nearer)["trigger"], judged_first["trigger"]) == ("features/main", "model/main")

    # Judged again with every run done, the same baseline and the same verdict.
    again = evaluate(instance, newer, tags=tags[newer])
    assert again.success
    assert row(warehouse, newer)["baseline_key"] == nearer and row(warehouse, newer)["status"] == "passed"

    # Each commit's note holds every combination it was judged in, each once.
    f2_note, m1_note = note(features, f2), note(model, m1)
    for text, keys in ((f2_note, [nearer, newer]), (m1_note, [key(f1, m1), nearer])):
        for each in keys:
            assert text.count(f"collab evaluation {each}: passed") == 1, text
    assert f2_note.index(nearer) < f2_note.index(newer)  # in the order first judged
    assert f"/runs/{again.run_id}" in f2_note  # the re-judged combination's section was replaced
    assert note(model, m2).count("collab evaluation ") == 1


def test_a_failure_in_the_features_repository_names_that_repository_and_commit(
    ticks, instance, warehouse, suites, make_repo
):
    features, model = make_repo("features"), make_repo("model")
    broken = features.commit(
        "features that raise", {"features.py": "def build(frames):\n    raise KeyError('hour')\n"}
    )
    m1 = model.commit("model", {"collab.toml": CONTRACT, "model.py": MODEL})
    suites.add("delays", {"features": features, "model": model}, contract="model")
    [evaluation_key] = ticks.keys()
    result = evaluate(instance, evaluation_key)
    assert not result.success
    message = failure_message(result)
    assert message.startswith(f"{evaluation_key} (features@{broken[:10]}): features failed: KeyError")
    assert f"model@{m1[:10]})" not in message
    assert row(warehouse, evaluation_key)["message"] == message

    # A failure of the model's own code still names the model's commit.
    fixed = features.commit("features", {"features.py": FEATURES})
    m2 = model.commit("model that raises", {"model.py": "def build():\n    raise ValueError('no model')\n"})
    assert key(fixed, m2) in ticks.keys()
    model_failure = failure_message(evaluate(instance, key(fixed, m2)))
    assert model_failure.startswith(f"{key(fixed, m2)} (model@{m2[:10]}): fit failed: ValueError")


@pytest.mark.parametrize("where", ["model", "features"])
def test_a_mistyped_commit_in_the_tuning_config_is_said_to_be_unknown(
    instance, warehouse, suites, make_repo, where
):
    features, model = make_repo("features"), make_repo("model")
    f1 = features.commit("features", {"features.py": FEATURES})
    m1 = model.commit("model", {"collab.toml": CONTRACT, "model.py": MODEL})
    suites.add("delays", {"features": features, "model": model}, contract="model")
    shas = {"features": f1[:10], "model": m1[:10], where: "deadbeef00"}
    mistyped = f"delays:features@{shas['features']}+model@{shas['model']}"
    result = tune_model.execute_in_process(
        instance=instance,
        resources={"model_repositories": ModelRepositories(), "warehouse": warehouse},
        run_config={
            "ops": {"plan_tuning": {"config": {"evaluation_key": mistyped, "grid": {"classifier__C": [1.0]}}}}
        },
        raise_on_error=False,
    )
    assert not result.success
    message = failure_message(result)
    assert f"commit {where}@deadbeef00 cannot be read" in message
    assert f"repository {where!r}" in message and "commit 'deadbeef00' is unknown" in message
    assert not message.rstrip().endswith(":")
