"""The one Definitions object loads, and holds exactly what the docs say it does."""

import dagster as dg

from collab_pipelines_tests.project import project_defs

EXPORT_CHECKS = {"schema_matches_catalog", "non_empty", "primary_key_unique", "null_rates_within_limits"}

EXPECTED_ASSETS = {
    "flights",
    "weather",
    "airlines",
    "airports",
    "planes",
    "weather_observations_uploads",
    "weather_observations",
    "model_evaluation",
    "tuning_candidates",
    "champion_history",
    # One <suite>_champion per suite beside it (project_defs names one suite).
    "delays_champion",
    "flights_quality_report",
    # The demo's uploaded observations beside the weather export, day by day.
    "weather_uploads_report",
    "evaluation_report",
    "evaluation_trend",
    "diagnostic_report",
}
EXPECTED_CHECKS = (
    {(table, check) for table in ("flights", "weather", "airlines") for check in EXPORT_CHECKS}
    # airports and planes declare no null-rate limits.
    | {
        (table, check)
        for table in ("airports", "planes")
        for check in EXPORT_CHECKS - {"null_rates_within_limits"}
    }
    | {("model_evaluation", "metric_gates"), ("model_evaluation", "prediction_diff")}
    # A refused upload is a verdict on the data: this check fails, the run does not.
    | {("weather_observations_uploads", "upload_accepted")}
)
EXPECTED_JOBS = {
    "daily_exports",
    "dimension_exports",
    "advance_replay_clock",
    "evaluate_commits",
    "add_commit_history",
    "tune_model",
    "promote_champion",
    "diagnose_report",
}
EXPECTED_SCHEDULES = {"daily_exports_schedule", "dimension_exports_schedule", "replay_clock_schedule"}
EXPECTED_SENSORS = {
    "daily_exports_new_data_sensor",
    "dimension_exports_missing_sensor",
    # Reports the days a lost export run wrote but did not record (exports/ledger.py).
    "export_records_sensor",
    "upload_sensor",
    "model_commits_sensor",
    # The report assets follow their upstream with AutomationCondition.eager().
    "reports_automation_sensor",
}


def repository() -> dg.RepositoryDefinition:
    return project_defs().get_repository_def()


def test_assets_and_checks():
    graph = repository().asset_graph
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS


def test_jobs_schedules_and_sensors_resolve():
    repo = repository()
    jobs = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert jobs == EXPECTED_JOBS
    assert {s.name for s in repo.schedule_defs} == EXPECTED_SCHEDULES
    assert {s.name for s in repo.sensor_defs} == EXPECTED_SENSORS
    for name in jobs:
        repo.get_job(name)  # resolves selections, partitions and resources


def test_every_asset_says_what_and_who():
    for node in repository().asset_graph.asset_nodes:
        assert node.description, f"{node.key} has no description"
        assert node.owners, f"{node.key} has no owners"
        assert node.group_name != "default", f"{node.key} has no group"
        assert node.kinds, f"{node.key} has no kinds"


def test_every_dataset_names_the_asset_that_writes_it():
    from collab_pipelines.datasets import all_datasets

    keys = {key.to_user_string() for key in repository().asset_graph.get_all_asset_keys()}
    # The data API reads freshness and checks from that asset; a wrong name would show none.
    assert {name: d.asset_key for name, d in all_datasets().items() if d.asset_key not in keys} == {}


def test_without_a_suite_nothing_of_the_evaluation_is_drawn(tmp_path, monkeypatch, caplog):
    from collab_pipelines import settings
    from collab_pipelines.definitions import build_definitions
    from collab_pipelines.demo.definitions import build_defs as demo_defs
    from collab_pipelines.demo.paths import DEMO_CONFIG
    from collab_pipelines.reports import definitions as report_definitions

    monkeypatch.setenv(settings.SUITES_FILE_ENV, str(tmp_path / "suites.yaml"))  # no such file
    monkeypatch.setattr(report_definitions, "_LOGGED_NOTES", set())  # logged once per process
    with caplog.at_level("INFO", logger="collab_pipelines.reports.definitions"):
        repo = dg.Definitions.merge(build_definitions(DEMO_CONFIG), demo_defs()).get_repository_def()
    graph = repo.asset_graph
    assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    evaluation = {"model_evaluation", "tuning_candidates", "champion_history", "delays_champion"}
    # The reports that read the evaluation's tables go with it rather than report on nothing.
    assert assets == EXPECTED_ASSETS - evaluation - {"evaluation_report", "evaluation_trend"}
    for export in ("flights", "weather", "airlines", "airports", "planes"):
        children = {key.to_user_string() for key in graph.get(dg.AssetKey(export)).child_keys}
        assert not children & {"model_evaluation", "evaluation_report", "evaluation_trend"}, export
    assert {key.asset_key.to_user_string() for key in graph.asset_check_keys}.isdisjoint(evaluation)
    jobs = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert jobs == EXPECTED_JOBS - {
        "evaluate_commits",
        "add_commit_history",
        "tune_model",
        "promote_champion",
    }
    assert {s.name for s in repo.sensor_defs} == EXPECTED_SENSORS - {"model_commits_sensor"}
    for name in jobs:
        repo.get_job(name)
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert any("evaluation_report.ipynb: left out" in m and "model_evaluation" in m for m in left_out)
    assert any("evaluation_trend.ipynb: left out" in m for m in left_out)


def test_with_a_suite_the_evaluation_is_downstream_of_every_export():
    graph = repository().asset_graph
    evaluation = graph.get(dg.AssetKey("model_evaluation"))
    parents = {key.to_user_string() for key in evaluation.parent_keys}
    assert parents == {"flights", "weather", "airlines", "airports", "planes"}
    children = {key.to_user_string() for key in evaluation.child_keys}
    assert {"evaluation_report", "evaluation_trend", "champion_history", "delays_champion"} <= children
