"""A run worker SIGKILLed while it writes an evaluation's result.

The commit sensor (in the daemon) finds the shop team's returns model and requests its
evaluation; the candidate runs in its sandbox, and the run worker is killed when the
evaluation's result, metrics and predictions are all written to the warehouse and not yet
committed. None of those rows may stay, run monitoring must fail the run, and its retry
(an evaluation's lost worker is retried, its commit's own failure is not) must evaluate the
commit and record it once: one result, its metrics and predictions not doubled, one
materialization of the commit's partition.
"""

import dagster as dg
import pytest
import sqlalchemy as sa

from collab_pipelines.evaluation.assets import EVALUATION_ASSET
from collab_pipelines.evaluation.jobs import evaluate_commits
from collab_pipelines.evaluation.records import METRICS, PREDICTIONS, RESULTS
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.faults.conftest import deployed
from collab_pipelines_tests.faults.deployment import FINISHED, Deployment
from collab_pipelines_tests.faults.test_exports import LOST_WORKER, retried, said
from collab_pipelines_tests.product import team

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
POINT = "evaluation.result_written"
# Every day of the shop's source: the contract trains on the first nine and tests on the last three.
FIRST, LAST = "2024-03-01", f"2024-03-{team.DAYS:02d}"
METRIC_NAMES = {"roc_auc", "accuracy"}


@pytest.fixture(scope="module")
def evaluating(tmp_path_factory, cluster):
    """The faults' deployment with the team's suite and model repository, its orders exported
    and recorded, and the fault point armed before the daemon starts: the commit sensor's first
    tick requests the commit's evaluation, and its run stops at the point. Yields the
    deployment and the commit's evaluation key."""
    commits = []

    def prepare(deployment: Deployment) -> None:
        repo = Repo(deployment.root / "returns-model")
        commits.append(repo.commit("Baseline returns model", team.MODEL_FILES))
        team.write_suites(deployment.config, repo.path)
        deployment.export_in_process(FIRST, LAST)
        deployment.faults.arm(POINT)

    with deployed(tmp_path_factory.mktemp("faults-evaluation"), cluster, prepare) as deployment:
        yield deployment, f"{team.SUITE}:model@{commits[0][:10]}"


def evaluation_runs(deployment: Deployment) -> list[dg.DagsterRun]:
    return [r for r in deployment.runs() if r.job_name == evaluate_commits.name]


def unfinished_evaluations(deployment: Deployment) -> list[dg.DagsterRun]:
    # Only the evaluation's runs: the commit's reports, which the reports' automation sensor
    # renders up to 30 s after the retry, are downstream of this fault and not waited for.
    return [r for r in evaluation_runs(deployment) if r.status not in FINISHED]


def key_rows(deployment: Deployment, key: str) -> dict[str, list[dict]]:
    """The key's rows in each evaluation table (none where the table was never created)."""
    engine = sa.create_engine(deployment.warehouse_url)
    with engine.connect() as connection:
        present = set(sa.inspect(connection).get_table_names())
        rows = {
            table: [
                dict(row)
                for row in connection.execute(
                    sa.text(f'SELECT * FROM "{table}" WHERE evaluation_key = :key'), {"key": key}
                ).mappings()
            ]
            if table in present
            else []
            for table in (RESULTS, METRICS, PREDICTIONS)
        }
    engine.dispose()
    return rows


def lost_and_doubled(rows: dict[str, list[dict]]) -> tuple[int, int]:
    """Rows missing from one whole evaluation (its result, each metric, a prediction per test
    row), and rows beyond it (a second result, a metric or a prediction twice)."""
    results, metrics, predictions = rows[RESULTS], rows[METRICS], rows[PREDICTIONS]
    metric_names = {row["metric"] for row in metrics}
    predicted = {row["row_id"] for row in predictions}
    test_rows = max((row["test_rows"] or 0 for row in results), default=0)
    lost = int(not results) + len(METRIC_NAMES - metric_names) + max(test_rows - len(predicted), 0)
    doubled = max(len(results) - 1, 0) + len(metrics) - len(metric_names) + len(predictions) - len(predicted)
    return lost, doubled


def materializations(deployment: Deployment, key: str) -> list[dg.EventLogRecord]:
    return deployment.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EVALUATION_ASSET, asset_partitions=[key]), limit=10
    ).records


@pytest.mark.timeout(400)
def test_worker_killed_while_writing_an_evaluation(evaluating, figures):
    deployment, key = evaluating
    deployment.faults.kill_at(POINT, keep={deployment.daemon.process.pid}, service=deployment.daemon)

    # At once: nothing of the killed write in the warehouse, nothing recorded in Dagster.
    [killed] = evaluation_runs(deployment)
    assert killed.tags["dagster/partition"] == key and killed.tags.get("dagster/sensor_name")
    assert key_rows(deployment, key) == {RESULTS: [], METRICS: [], PREDICTIONS: []}, (
        "the killed run's evaluation rows are in the warehouse"
    )
    assert materializations(deployment, key) == []

    deployment.wait(
        "the retry of the killed evaluation to succeed, and no evaluation left unfinished",
        lambda: retried(deployment, killed.run_id) and not unfinished_evaluations(deployment),
        240,
    )
    assert deployment.instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
    assert said(deployment, killed.run_id, LOST_WORKER), (
        "the killed run's log does not say its worker was lost"
    )

    rows = key_rows(deployment, key)
    lost, doubled = lost_and_doubled(rows)
    stuck = unfinished_evaluations(deployment)
    figures(
        "evaluation: worker SIGKILLed while writing its result",
        rows_lost=lost,
        rows_doubled=doubled,
        runs_stuck=len(stuck),
        results=len(rows[RESULTS]),
        metrics=len(rows[METRICS]),
        predictions=len(rows[PREDICTIONS]),
    )
    assert (lost, doubled, stuck) == (0, 0, []), rows[RESULTS]
    [retry] = [r for r in evaluation_runs(deployment) if r.tags.get("dagster/parent_run_id") == killed.run_id]
    [result] = rows[RESULTS]
    # Written by the retry, from a candidate that ran in bubblewrap as in production.
    assert (result["run_id"], result["status"], result["sandbox"]) == (retry.run_id, "passed", "bubblewrap")
    # Dagster's record agrees: the commit's partition materialized once, by the retry.
    assert [record.run_id for record in materializations(deployment, key)] == [retry.run_id]
    # One evaluation asked for (the sensor's), and one retry of it: nothing evaluated twice.
    assert sorted(
        (r.status.value, "dagster/parent_run_id" in r.tags) for r in evaluation_runs(deployment)
    ) == [("FAILURE", False), ("SUCCESS", True)]
