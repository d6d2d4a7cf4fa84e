"""A run worker SIGKILLed while it loads an upload into the warehouse.

The upload sensor (in the daemon) stages a complete upload and requests its ingestion; the run
worker is killed after writing the upload's rows and before committing them. The upload must be
ingested exactly once by the retry, its file in `processed/`, nothing left in the inbox or staging.
"""

import pytest
import sqlalchemy as sa

from collab_pipelines_tests.e2e.test_separated_state import UPLOAD, UPLOADER, VISITS

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
TABLE = "store_visits_uploads"
ROWS = VISITS.count("\n") - 1


def warehouse_rows(deployment) -> list[tuple]:
    engine = sa.create_engine(deployment.warehouse_url)
    with engine.connect() as connection:
        exists = sa.inspect(connection).has_table(TABLE)
        rows = connection.execute(sa.text(f"SELECT store, visited_at FROM {TABLE}")).all() if exists else []
    engine.dispose()
    return [tuple(row) for row in rows]


def files(deployment, folder: str) -> list[str]:
    path = deployment.landing / UPLOADER / folder
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


@pytest.mark.timeout(400)
def test_worker_killed_while_loading_an_upload(deployment, figures):
    deployment.faults.arm("warehouse.chunk_written", 1)
    inbox = deployment.landing / UPLOADER / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / UPLOAD).write_text(VISITS)
    (inbox / f"{UPLOAD}.done").write_text("")
    deployment.faults.kill_at("warehouse.chunk_written", keep={deployment.daemon.process.pid})
    assert warehouse_rows(deployment) == [], "the killed load left rows"

    deployment.wait(
        "the retry to ingest the upload",
        lambda: (
            not deployment.stuck_runs() and any(UPLOAD in name for name in files(deployment, "processed"))
        ),
        240,
    )
    rows = warehouse_rows(deployment)
    runs = deployment.runs()
    figures(
        "ingestion: worker SIGKILLed while loading an upload",
        rows_lost=ROWS - len(set(rows)),
        rows_doubled=len(rows) - len(set(rows)),
        runs_stuck=len(deployment.stuck_runs()),
        files_lost=int(not files(deployment, "processed")),
    )
    assert sorted(rows) == sorted(set(rows)) and len(rows) == ROWS, rows
    assert files(deployment, "inbox") == [] and files(deployment, "staging") == []
    assert [r.status.value for r in runs if "dagster/parent_run_id" not in r.tags] == ["FAILURE"]
    assert [r.status.value for r in runs if "dagster/parent_run_id" in r.tags] == ["SUCCESS"]
