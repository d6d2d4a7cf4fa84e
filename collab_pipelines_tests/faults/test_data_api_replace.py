"""The data API reads one day in a loop while the export replaces that day 50 times.

A reader must get the day as one export wrote it, never part of one and part of the next, nor
no rows, nor a row twice: the export replaces a day in one transaction, and the API reads a
request's rows from one snapshot, even when it streams them in chunks (CHUNK_ROWS rows at a
time, so one day is several chunks). On the embedded SQLite warehouse and on PostgreSQL.
"""

import sqlite3
import threading
from collections import Counter

import dagster as dg
import httpx
import pytest

from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.engine import dispose_engines
from collab_pipelines_tests.data_api.conftest import TOKEN, make_deployment, start_api

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
DAY = "2013-01-02"
REEXPORTS = 50
QUERY = {"partition": DAY, "columns": "id,dep_delay", "format": "csv", "sort": "id", "limit": 1_000_000}


def export_day(deployment) -> None:
    flights = [a for a in build_export_assets(load_catalog()) if a.key.to_user_string() == "flights"]
    result = dg.materialize(
        flights,
        partition_key=DAY,
        instance=deployment.instance,
        resources={"warehouse": deployment.warehouse(), "sources": SqlSources()},
    )
    assert result.success


def change_source(deployment, delta: int) -> None:
    """Another version of the day in the product database: every departure delay moves."""
    with sqlite3.connect(deployment.state_dir / "product.db") as connection:
        connection.execute(
            "UPDATE flights SET dep_delay = dep_delay + ? WHERE sched_dep_at >= ? AND sched_dep_at < ?",
            (delta, DAY, "2013-01-03"),
        )


def read(url: str) -> str:
    response = httpx.get(
        f"{url}/v1/datasets/flights/rows",
        params=QUERY,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.timeout(400)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_day_read_while_it_is_exported_50_times(
    backend, request, tmp_path, source_template, monkeypatch, figures
):
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    deployment = make_deployment(tmp_path, source_template, backend, url)
    monkeypatch.setenv("COLLAB_STATE_DIR", str(deployment.state_dir))
    monkeypatch.delenv("COLLAB_SOURCE_URL", raising=False)
    api = start_api(deployment, tmp_path)
    try:
        # The two versions the loop alternates between, each read while nothing else runs.
        export_day(deployment)
        first = read(api.url)
        change_source(deployment, 1000)
        export_day(deployment)
        second = read(api.url)
        assert first != second and len(first.splitlines()) > 500

        answers: Counter = Counter()
        stop = threading.Event()

        def reader() -> None:
            while not stop.is_set():
                text = read(api.url)
                answers["first" if text == first else "second" if text == second else text] += 1

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for index in range(REEXPORTS):
                change_source(deployment, -1000 if index % 2 == 0 else 1000)
                export_day(deployment)
        finally:
            stop.set()
            thread.join(120)
        others = [text for text in answers if text not in ("first", "second")]
        lines = [len(text.splitlines()) for text in others]
        runs = deployment.instance.get_runs()
        figures(
            f"data API: a day read while re-exported {REEXPORTS} times ({backend})",
            rows_lost=sum(max(0, len(first.splitlines()) - n) for n in lines),
            rows_doubled=sum(max(0, n - len(first.splitlines())) for n in lines),
            runs_stuck=sum(not run.is_finished for run in runs),
            reads=sum(answers.values()),
            partial_or_mixed=len(others),
        )
        assert others == [], f"{len(others)} answers were neither version; line counts {lines}"
        assert answers["first"] and answers["second"], answers
    finally:
        api.stop()
        deployment.instance.dispose()
        dispose_engines(deployment.warehouse_url)
