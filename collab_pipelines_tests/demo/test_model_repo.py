"""`collab-demo model-repo`: a real repository with a realistic history, registered as a suite."""

import shutil
import subprocess

import dagster as dg
import yaml

from collab_pipelines.demo.cli import main
from collab_pipelines.demo.model_repo import HISTORY, SUITE
from collab_pipelines.evaluation.assets import build_model_evaluation
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor
from collab_pipelines.warehouse.resources import Warehouse


def log(path) -> list[str]:
    return subprocess.run(
        ["git", "log", "--reverse", "--format=%s"], cwd=path, check=True, capture_output=True, text=True
    ).stdout.splitlines()


def test_the_command_creates_the_repository_and_registers_it(state_dir, capsys):
    assert main(["model-repo"]) == 0
    path = state_dir / "model-repos" / SUITE
    assert log(path) == [message for message, _, _ in HISTORY]
    suites = yaml.safe_load((state_dir / "suites.yaml").read_text())["suites"]
    assert suites[SUITE]["repositories"]["model"]["location"] == str(path)

    (state_dir / "suites.yaml").write_text(
        yaml.safe_dump(
            {"suites": {"other": {"repositories": {"m": {"location": "/elsewhere"}}}, SUITE: suites[SUITE]}}
        )
    )
    assert main(["model-repo"]) == 0  # again: the repository is kept, other suites too
    assert "already at" in capsys.readouterr().out
    assert set(yaml.safe_load((state_dir / "suites.yaml").read_text())["suites"]) == {"other", SUITE}
    assert len(log(path)) == len(HISTORY)


def test_the_demo_history_evaluates_as_its_messages_say(state_dir, instance, exported_warehouse_file):
    shutil.copy(exported_warehouse_file, state_dir / "warehouse.db")
    main(["model-repo"])
    for name in ("flights", "weather"):  # exported into this warehouse by another instance
        instance.report_runless_asset_event(dg.AssetMaterialization(name))
    context = dg.build_sensor_context(
        instance=instance, resources={"model_repositories": ModelRepositories()}
    )
    result = model_commits_sensor(context)
    keys = [request.partition_key for request in result.run_requests]
    assert len(keys) == len(HISTORY)  # the demo has commits to evaluate the moment it starts
    instance.add_dynamic_partitions("evaluation_commits", keys)
    messages = [message for message, _, _ in HISTORY]

    def evaluate(key):
        return dg.materialize(
            [build_model_evaluation()],
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
        )

    assert evaluate(keys[0]).success
    crash = evaluate(keys[messages.index("Add congestion: departures in the same hour at the same airport")])
    [failure] = [e for e in crash.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "features failed: KeyError: 'dep_dealy'" in failure.step_failure_data.user_failure_data.description
