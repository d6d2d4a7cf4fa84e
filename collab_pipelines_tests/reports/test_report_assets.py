"""Report assets executed for real: dagstermill context, a real kernel, real notebooks."""

from pathlib import Path

import nbformat

from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.conftest import CANDIDATE_KEY
from collab_pipelines_tests.reports.helpers import (
    assert_published_clean,
    execute,
    materializations,
    probe_output,
    step_failure,
)


def test_defaults_survive_supplied_parameters_override_and_the_partition_arrives(
    warehouse, instance, state_dir
):
    result = execute(
        jobs.probe_report_job,
        instance,
        partition="2013-01-03",
        run_config={"ops": {"probe_report": {"config": {"parameters": {"threshold": 7}}}}},
    )
    assert result.success
    metadata = materializations(instance, "probe_report")["2013-01-03"]
    notebook = Path(metadata["notebook"])
    probe = probe_output(notebook)
    # dagstermill alone would drop the parameters cell, and `greeting` would be undefined.
    assert probe["greeting"] == "hello from the defaults"
    assert probe["threshold"] == 7
    assert probe["partition_key"] == "2013-01-03" and probe["partition_keys"] == ["2013-01-03"]
    assert probe["run_partition_tag"] == "2013-01-03" and probe["in_dagster"]
    expected = warehouse.count("flights", where={"_partition": "2013-01-03"})
    assert probe["rows"] == expected > 0
    # Stored where the UI may read it, with the sharing copy beside it, and nothing injected.
    assert notebook.is_relative_to(state_dir / "reports" / "probe_report")
    assert Path(metadata["html_path"]) == notebook.with_suffix(".html")
    assert_published_clean(notebook, Path(metadata["html_path"]))
    html = Path(metadata["html_path"]).read_text()
    assert "hello from the defaults" in html and "report_inputs(" not in html, "the HTML must hide code"


def test_a_range_renders_every_day_in_one_warm_kernel(warehouse, instance):
    result = execute(jobs.flights_quality_report_job, instance, first="2013-01-05", last="2013-01-07")
    assert result.success
    found = materializations(instance, "flights_quality_report")
    assert sorted(found) == ["2013-01-05", "2013-01-06", "2013-01-07"]
    assert [found[day]["warm_kernel"] for day in sorted(found)] == [False, True, True]
    for day, metadata in found.items():
        notebook = nbformat.read(metadata["notebook"], as_version=4)
        text = nbformat.writes(notebook)
        assert f"**{day}**" in text, f"the report of {day} is not about {day}"
        assert (
            sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", [])) >= 4
        )
        assert_published_clean(Path(metadata["notebook"]), Path(metadata["html_path"]))


def test_a_failing_notebook_is_kept_at_its_failing_cell(warehouse, instance):
    result = execute(jobs.failing_report_job, instance, partition="2013-01-02")
    assert not result.success
    failure = step_failure(result).user_failure_data
    kept = Path(failure.metadata["notebook"].value)
    assert (
        "failed in cell" in failure.description
        and "ValueError: bad data on 2013-01-02" in failure.description
    )
    assert str(kept) in failure.description
    notebook = nbformat.read(kept, as_version=4)
    errors = [c for c in notebook.cells if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert len(errors) == 1 and "raise ValueError" in errors[0].source
    assert failure.metadata["failing_cell"].value == errors[0].execution_count
    assert "never reached" not in "".join(
        o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
    )
    assert kept.with_suffix(".html").exists()
    assert_published_clean(kept, kept.with_suffix(".html"))


def test_the_evaluation_report_renders_a_commit_without_its_contract(warehouse, instance):
    # The fixture's evaluations have no repository: the report says so and shows what the
    # warehouse holds. test_evaluation_report.py covers a suite with its collab.toml.
    instance.add_dynamic_partitions("evaluation_commits", [CANDIDATE_KEY])
    result = execute(jobs.evaluation_report_job, instance, partition=CANDIDATE_KEY)
    assert result.success
    metadata = materializations(instance, "evaluation_report")[CANDIDATE_KEY]
    notebook = nbformat.read(metadata["notebook"], as_version=4)
    text = nbformat.writes(notebook)
    for section in (
        "Metrics against the baseline",
        "Each day of the test window",
        "Slices",
        "Predictions that changed",
        "contract could not be read",
    ):
        assert section in text
    assert "fixed" in text and "broken" in text
    assert not any(o.output_type == "error" for c in notebook.cells for o in c.get("outputs", []))


def test_a_range_on_two_kernels_renders_each_day_once_and_a_failing_day_alone(warehouse, instance):
    # The fixture's warehouse ends on 2013-01-07: the 8th has no flights and fails on its own.
    result = execute(
        jobs.probe_report_job,
        instance,
        first="2013-01-05",
        last="2013-01-08",
        run_config={"ops": {"probe_report": {"config": {"kernels": 2}}}},
    )
    assert not result.success
    found = materializations(instance, "probe_report")
    assert sorted(found) == ["2013-01-05", "2013-01-06", "2013-01-07"]
    for day, metadata in found.items():
        probe = probe_output(Path(metadata["notebook"]))
        assert probe["partition_key"] == day and probe["partition_keys"] == [day]
        assert probe["rows"] == warehouse.count("flights", where={"_partition": day}) > 0
        assert 0 < metadata["kernel_seconds"] <= metadata["render_seconds"]
    # Each kernel was cold for its first day only.
    assert sum(not m["warm_kernel"] for m in found.values()) in (1, 2)
    failure = step_failure(result).user_failure_data
    assert failure.description.startswith("1 report(s) failed; the first, 2013-01-08: missing inputs")
    assert failure.metadata["rendered_partitions"].value == 3
    said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("rendered 3 of 4 probe_report report(s) on 2 kernel(s)" in line for line in said)
