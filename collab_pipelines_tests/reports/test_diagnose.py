"""The diagnose job: any template on any dataset and date range, materialized as a report."""

from pathlib import Path

from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES, RETRY_ON_STEP_FAILURE_TAG
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import (
    assert_published_clean,
    execute,
    materializations,
    probe_output,
)
from collab_pipelines_tests.retries import daemon_would_retry, retrying_instance


def test_diagnose_applies_a_template_to_a_chosen_dataset_and_date_range(warehouse, instance):
    config = {
        "template": "probe_report",
        "datasets": {"flights": "weather"},
        "start": "2013-01-02",
        "end": "2013-01-04",
        "parameters": {"greeting": "diagnosing"},
    }
    result = execute(
        jobs.test_diagnose_job, instance, run_config={"ops": {"diagnostic_report": {"config": config}}}
    )
    assert result.success
    metadata = materializations(instance, "diagnostic_report")[None]
    probe = probe_output(Path(metadata["notebook"]))
    assert probe["dataset"] == "weather" and "temp" in probe["columns"]
    assert probe["partition_keys"] == ["2013-01-02", "2013-01-03", "2013-01-04"]
    assert probe["rows"] == warehouse.count("weather", where={"_partition": probe["partition_keys"]}) > 0
    assert probe["greeting"] == "diagnosing" and probe["threshold"] == 3
    assert metadata["subject"] == "2013-01-02..2013-01-04" and metadata["template_name"] == "probe_report"
    assert_published_clean(Path(metadata["notebook"]), Path(metadata["html_path"]))


def test_diagnose_names_the_templates_when_one_is_unknown(warehouse, instance):
    config = {"template": "no_such_template"}
    result = execute(
        jobs.test_diagnose_job, instance, run_config={"ops": {"diagnostic_report": {"config": config}}}
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no template 'no_such_template'; available: failing_report, probe_report" in str(
        failure.event_specific_data.user_failure_data.description
    )


def test_a_failed_diagnosis_is_not_retried_by_run_retries(warehouse):
    config = {"ops": {"diagnostic_report": {"config": {"template": "no_such_template"}}}}
    with retrying_instance() as instance:
        failed = execute(jobs.test_diagnose_job, instance, run_config=config)
        assert not failed.success
        # From the job's own tags: a launchpad or `dagster job execute` run carries it too.
        assert failed.dagster_run.tags.items() >= NO_RETRY_OF_STEP_FAILURES.items()
        assert not daemon_would_retry(instance, failed.run_id)

        # The same failure without the tag is retried: the tag decides, not the dg.Failure.
        control = execute(
            jobs.test_diagnose_job, instance, run_config=config, tags={RETRY_ON_STEP_FAILURE_TAG: "true"}
        )
        assert not control.success and daemon_would_retry(instance, control.run_id)
