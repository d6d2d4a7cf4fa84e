"""Every job decides whether run retries may repeat its step failures (collab_pipelines/retries.py)."""

from dagster._core.storage.tags import RETRY_ON_ASSET_OR_OP_FAILURE_TAG

from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES, RETRY_ON_STEP_FAILURE_TAG
from collab_pipelines_tests.project import project_defs

# A step failure of these repeats: a broken commit, a failing template, a wrong config or a
# refused promotion.
NOT_RETRIED = {"evaluate_commits", "diagnose_report", "tune_model", "promote_champion"}
# Job name -> why a run retry may help it.
RETRIED = {
    "daily_exports": "a lost source or warehouse connection; each day is written in one transaction",
    "dimension_exports": "the same as the daily exports",
    "advance_replay_clock": "the demo's clock moves in one transaction",
    "add_commit_history": "a failed git fetch of a repository",
    # Dagster's implicit job for materializations from an asset's page: it takes no job tags.
    "__ASSET_JOB": "Dagster's own; add the tag in the launchpad",
}


def test_the_tag_is_dagsters_own():
    assert RETRY_ON_STEP_FAILURE_TAG == RETRY_ON_ASSET_OR_OP_FAILURE_TAG
    assert NO_RETRY_OF_STEP_FAILURES == {RETRY_ON_ASSET_OR_OP_FAILURE_TAG: "false"}


def test_every_job_says_whether_its_step_failures_are_retried():
    jobs = {job.name: job.tags for job in project_defs().get_repository_def().get_all_jobs()}
    assert set(jobs) == NOT_RETRIED | set(RETRIED), "a new job: decide whether run retries may repeat it"
    for name in NOT_RETRIED:
        assert jobs[name].items() >= NO_RETRY_OF_STEP_FAILURES.items(), name
    for name in RETRIED:
        assert RETRY_ON_STEP_FAILURE_TAG not in jobs[name], name


def test_every_sensor_that_requests_runs_of_repeating_failures_tags_them():
    sensors = {sensor.name: sensor for sensor in project_defs().sensors}
    automation = sensors["reports_automation_sensor"]
    assert automation.run_tags.items() >= NO_RETRY_OF_STEP_FAILURES.items()
    # Reports yield the run queue to people's launches and to what they read (priority 0).
    assert int(automation.run_tags["dagster/priority"]) < 0
    # The commit sensor targets evaluate_commits (tagged above) and tags its requests too
    # (collab_pipelines_tests/evaluation/test_evaluation_runs.py); the upload sensor's requests
    # are checked in collab_pipelines_tests/intake/test_intake_runs.py.
    assert sensors["model_commits_sensor"].job_name == "evaluate_commits"
