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
    # One <suite>_champion per suite beside it; the project's configuration names no suite.
    "champion_history",
    "flights_quality_report",
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
