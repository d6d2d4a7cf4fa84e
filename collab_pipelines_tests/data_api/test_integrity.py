"""Nothing right goes stale, nothing ambiguous gets in: through the real server (issue 13)."""

import http.client
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.data_api import Client
from collab_pipelines.warehouse.engine import engine_for_url, insert_frame
from collab_pipelines_tests.data_api.conftest import TOKEN


def test_a_utc_offset_on_a_column_without_a_time_zone_is_refused(api):
    # sched_dep_at is New York wall-clock time as the source wrote it: "-05:00" cannot be
    # converted to anything it holds, so the API refuses rather than guess.
    refused = api.get(
        "/v1/datasets/flights/rows", params={"filter": "sched_dep_at:gte:2013-01-03T12:00:00-05:00"}
    )
    assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["parameter"] == "filter"
    assert "sched_dep_at holds date-times without a time zone" in problem["detail"]
    assert (
        api.get(
            "/v1/datasets/flights/rows", params={"filter": "sched_dep_at:gte:2013-01-03T17:00Z"}
        ).status_code
        == 400
    )
    # Without an offset the value is compared as stored.
    page = api.get(
        "/v1/datasets/flights/rows",
        params={
            "filter": "sched_dep_at:gte:2013-01-07T12:00:00",
            "columns": "id,sched_dep_at",
            "limit": 100_000,
        },
    )
    truth = api.deployment.warehouse().read("flights").query("sched_dep_at >= '2013-01-07 12:00'")
    assert sorted(row["id"] for row in page.json()["data"]) == sorted(truth["id"].tolist())
    assert len(truth) > 100


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("filter=carrier:in:" + ",".join(["AA"] * 14_000), {}, 414),  # 40 kB: the app's limit
        ("filter=carrier:in:" + ",".join(["AA"] * 34_000), {}, 414),  # 100 kB: beyond the HTTP parser's
        ("", {"X-Padding": "x" * 100_000}, 431),
    ],
)
def test_an_oversized_request_gets_a_problem_document(sqlite_api, query, headers, status):
    # http.client sends what it is given: httpx refuses to build a URL this long at all.
    connection = http.client.HTTPConnection(*sqlite_api.url.removeprefix("http://").split(":"), timeout=60)
    try:
        connection.request(
            "GET",
            "/v1/datasets/airlines/rows" + (f"?{query}" if query else ""),
            headers={"Authorization": f"Bearer {TOKEN}", **headers},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == status, body[:300]
    assert response.getheader("content-type") == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status and "the limit is" in problem["detail"]


def _write_without_materializing(api, table: str, frame: pd.DataFrame) -> None:
    """What a failed run does: rows reach the warehouse, no materialization is recorded."""
    with engine_for_url(api.deployment.warehouse_url).begin() as connection:
        insert_frame(connection, table, frame)


def _delete(api, table: str, column: str, value) -> None:
    with engine_for_url(api.deployment.warehouse_url).begin() as connection:
        target = sa.Table(table, sa.MetaData(), autoload_with=connection)
        connection.execute(target.delete().where(target.c[column] == value))


def test_rows_a_failed_run_wrote_change_the_validators_and_the_client_refetches(api):
    path = "/v1/datasets/evaluation_results/rows"
    first = api.get(path)
    assert first.status_code == 200 and len(first.json()["data"]) == 2
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert api.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert api.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    statuses = []
    with Client(api.url, token=TOKEN) as client:
        client._http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        assert len(client.rows("evaluation_results")) == 2
        key = "delay-model:model@deadbeef"
        failure = pd.DataFrame(
            {
                "evaluation_key": [key],
                "suite": ["delay-model"],
                "commits": ["model@deadbeef"],
                "status": ["failed"],
                "message": ["fit raised ValueError"],
                "evaluated_at": [datetime.now(UTC).replace(tzinfo=None)],
                "run_id": ["run-failed"],
            }
        )
        _write_without_materializing(api, "evaluation_results", failure)
        try:
            again = api.get(path, headers={"If-None-Match": etag})
            assert again.status_code == 200 and again.headers["ETag"] != etag
            assert key in [row["evaluation_key"] for row in again.json()["data"]]
            assert api.get(path, headers={"If-Modified-Since": modified}).status_code == 200
            refreshed = client.rows("evaluation_results")
            assert key in refreshed["evaluation_key"].tolist() and len(refreshed) == 3
            assert statuses == [200, 200]
        finally:
            _delete(api, "evaluation_results", "evaluation_key", key)


def test_a_days_rows_rewritten_without_a_materialization_change_its_etag(api):
    params = {"partition": "2013-01-04", "columns": "id,dep_delay", "limit": 5}
    path = "/v1/datasets/flights/rows"
    first = api.get(path, params=params)
    etag = first.headers["ETag"]
    row_id = first.json()["data"][0]["id"]
    engine = engine_for_url(api.deployment.warehouse_url)
    with engine.begin() as connection:
        flights = sa.Table("flights", sa.MetaData(), autoload_with=connection)
        old = connection.execute(
            sa.select(flights.c.dep_delay, flights.c._loaded_at).where(flights.c.id == row_id)
        ).one()
        connection.execute(
            flights.update()
            .where(flights.c.id == row_id)
            .values(dep_delay=999.0, _loaded_at=datetime.now(UTC).replace(tzinfo=None))
        )
    try:
        again = api.get(path, params=params, headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.json()["data"][0] == {"id": row_id, "dep_delay": 999.0}
        other_day = api.get(path, params={**params, "partition": "2013-01-05"})
        assert (
            api.get(
                path,
                params={**params, "partition": "2013-01-05"},
                headers={"If-None-Match": other_day.headers["ETag"]},
            ).status_code
            == 304
        )
    finally:
        with engine.begin() as connection:
            connection.execute(
                flights.update().where(flights.c.id == row_id).values(dep_delay=old[0], _loaded_at=old[1])
            )


def test_a_direct_fix_that_leaves_the_write_stamp_alone_changes_the_etag(api):
    """An engineer's UPDATE in the warehouse, `_loaded_at` untouched: no 304 hides it."""
    path = "/v1/datasets/flights/rows"
    params = {"partition": "2013-01-06", "columns": "id,dep_delay", "limit": 5}
    first = api.get(path, params=params)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    row_id, old_delay = first.json()["data"][0]["id"], first.json()["data"][0]["dep_delay"]
    engine = engine_for_url(api.deployment.warehouse_url)
    flights = sa.Table("flights", sa.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(flights.update().where(flights.c.id == row_id).values(dep_delay=-77.0))
    try:
        fixed = api.get(path, params=params, headers={"If-None-Match": etag})
        assert fixed.status_code == 200 and fixed.headers["ETag"] != etag
        assert fixed.json()["data"][0] == {"id": row_id, "dep_delay": -77.0}
        # The write stamp did not move, so neither did Last-Modified (docs/data_api.md says so).
        assert fixed.headers["Last-Modified"] == modified
        assert (
            api.get(path, params=params, headers={"If-None-Match": fixed.headers["ETag"]}).status_code == 304
        )
    finally:
        with engine.begin() as connection:
            connection.execute(flights.update().where(flights.c.id == row_id).values(dep_delay=old_delay))
