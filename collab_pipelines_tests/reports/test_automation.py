"""Reports follow their upstream: a newly written day or commit requests exactly its report."""

import json

import dagster as dg

from collab_pipelines.definitions import shared_resources
from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.evaluation.definitions import build_defs as evaluation_defs
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.exports.definitions import build_defs as export_defs
from collab_pipelines.reports.definitions import build_defs
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES
from collab_pipelines_tests.project import project_defs
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import execute
from collab_pipelines_tests.reports.jobs import TEST_TEMPLATES
from collab_pipelines_tests.retries import daemon_would_retry, retrying_instance


def project_upstream() -> tuple[dg.Definitions, ...]:
    return (export_defs(DEMO_CONFIG / "catalog.yaml"), evaluation_defs())


REPORTS = dg.AssetSelection.assets("flights_quality_report", "evaluation_report")


def requested(result) -> set[tuple[str, str]]:
    return {
        (name, partition)
        for name in ("flights_quality_report", "evaluation_report")
        for partition in result.get_requested_partitions(dg.AssetKey(name))
    }


def test_a_new_day_and_a_new_commit_request_their_reports(instance):
    instance.add_dynamic_partitions(evaluation_commits.name, ["s:model@1a2b3c4d5e", "s:model@5e6f7a8b9c"])
    first = dg.evaluate_automation_conditions(defs=project_defs(), instance=instance, asset_selection=REPORTS)
    assert first.total_requested == 0  # nothing upstream yet

    # A day in the middle of the catalog's range, not its last: what a replayed source writes.
    instance.report_runless_asset_event(dg.AssetMaterialization("flights", partition="2013-01-05"))
    instance.report_runless_asset_event(
        dg.AssetMaterialization("model_evaluation", partition="s:model@5e6f7a8b9c")
    )
    second = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=REPORTS, cursor=first.cursor
    )
    assert requested(second) == {
        ("flights_quality_report", "2013-01-05"),
        ("evaluation_report", "s:model@5e6f7a8b9c"),
    }

    third = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=REPORTS, cursor=second.cursor
    )
    assert third.total_requested == 0  # requested once, not on every tick


def test_a_per_commit_report_reads_the_daily_exports_whole(instance, tmp_path):
    # A team's per-commit template that also reads a daily export.
    document = json.loads((TEST_TEMPLATES / "probe_report.ipynb").read_text())
    document["metadata"]["collab_report"] = {
        "datasets": {"flights": "flights", "results": "evaluation_results"},
        "partitions": "evaluation_commits",
    }
    (tmp_path / "commit_probe.ipynb").write_text(json.dumps(document))
    defs = dg.Definitions.merge(
        *project_upstream(),
        build_defs(tmp_path, upstream_defs=project_upstream()),
        dg.Definitions(resources=shared_resources()),
    )
    graph = defs.get_repository_def().asset_graph
    # Without it, a run of several commits maps commit keys onto days that do not exist.
    mapping = graph.get_partition_mapping(dg.AssetKey("commit_probe"), dg.AssetKey("flights"))
    assert isinstance(mapping, dg.AllPartitionMapping)
    # The shipped evaluation report reads its suite's dataset from the contract, not a dep.
    project_graph = project_defs().get_repository_def().asset_graph
    assert dg.AssetKey("flights") not in project_graph.get(dg.AssetKey("evaluation_report")).parent_keys

    instance.add_dynamic_partitions(evaluation_commits.name, ["s:model@1a2b3c4d5e"])
    first = dg.evaluate_automation_conditions(defs=project_defs(), instance=instance, asset_selection=REPORTS)
    instance.report_runless_asset_event(
        dg.AssetMaterialization("model_evaluation", partition="s:model@1a2b3c4d5e")
    )
    # Only some days are exported: the commit's report is not held back by the others.
    second = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=REPORTS, cursor=first.cursor
    )
    assert requested(second) == {("evaluation_report", "s:model@1a2b3c4d5e")}
    # A new day re-renders that day's report, not every commit's.
    instance.report_runless_asset_event(dg.AssetMaterialization("flights", partition="2013-01-06"))
    third = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=REPORTS, cursor=second.cursor
    )
    assert requested(third) == {("flights_quality_report", "2013-01-06")}


def test_a_failed_report_run_the_sensor_launches_is_not_retried(warehouse):
    [sensor] = build_defs(TEST_TEMPLATES).sensors
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    with retrying_instance() as instance:
        # The daemon adds the sensor's run tags to every run it requests (dagster/_daemon/asset_daemon.py).
        failed = execute(jobs.failing_report_job, instance, partition="2013-01-02", tags=sensor.run_tags)
        assert not failed.success
        assert failed.dagster_run.tags.items() >= NO_RETRY_OF_STEP_FAILURES.items()
        assert not daemon_would_retry(instance, failed.run_id)

        # The same failing notebook in a run without the sensor's tags is retried: the test can fail.
        control = execute(jobs.failing_report_job, instance, partition="2013-01-02")
        assert not control.success and daemon_would_retry(instance, control.run_id)


def test_a_failed_evaluation_requests_its_commits_report_and_the_trend(instance, state_dir):
    from collab_pipelines.evaluation.assets import build_model_evaluation
    from collab_pipelines.evaluation.resources import ModelRepositories
    from collab_pipelines.warehouse.resources import Warehouse

    key = "s:model@1a2b3c4d5e"
    instance.add_dynamic_partitions(evaluation_commits.name, [key])
    reports = REPORTS | dg.AssetSelection.assets("evaluation_trend")
    first = dg.evaluate_automation_conditions(defs=project_defs(), instance=instance, asset_selection=reports)
    assert first.total_requested == 0

    # A real evaluation run that fails (its suite is in no suites file): no partition is written.
    failed = dg.materialize(
        [build_model_evaluation()],
        partition_key=key,
        instance=instance,
        raise_on_error=False,
        resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
    )
    assert not failed.success
    second = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=reports, cursor=first.cursor
    )
    assert requested(second) == {("evaluation_report", key)}
    assert second.get_num_requested(dg.AssetKey("evaluation_trend")) == 1

    third = dg.evaluate_automation_conditions(
        defs=project_defs(), instance=instance, asset_selection=reports, cursor=second.cursor
    )
    assert third.total_requested == 0  # requested once, not on every tick
