"""Rows through the real server, on SQLite and PostgreSQL warehouses filled by the exports."""

import io
import json

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from collab_pipelines.datasets import all_datasets
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines_tests.data_api.conftest import CHUNK_ROWS, FIRST_DAY, LAST_DAY

FLIGHT_COLUMNS = ["id", "carrier", "origin", "dep_delay", "sched_dep_at", "_partition"]


def expected(api, table="flights", query=None) -> pd.DataFrame:
    frame = api.deployment.warehouse().read(table)
    return frame.query(query) if query else frame


def as_frame(response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.DataFrame(response.json()["data"])


def ids(response) -> list[int]:
    return [row["id"] for row in response.json()["data"]]


def test_one_partition_has_exactly_that_days_rows(api):
    response = api.get("/v1/datasets/flights/rows", params={"partition": "2013-01-03", "limit": 100_000})
    truth = expected(api, query="_partition == '2013-01-03'")
    assert len(truth) > 500
    assert sorted(ids(response)) == sorted(truth["id"].tolist())
    assert ids(response) == sorted(ids(response))  # the primary key orders by default
    assert response.json()["next_cursor"] is None


def test_partition_range_and_latest(api):
    response = api.get(
        "/v1/datasets/flights/rows",
        params={"partition_from": "2013-01-02", "partition_to": "2013-01-04", "limit": 100_000},
    )
    frame = as_frame(response)
    assert set(frame["_partition"]) == {"2013-01-02", "2013-01-03", "2013-01-04"}
    assert len(frame) == len(expected(api, query="'2013-01-02' <= _partition <= '2013-01-04'"))
    latest = as_frame(api.get("/v1/datasets/weather/rows", params={"partition": "latest", "limit": 100_000}))
    assert set(latest["_partition"]) == {LAST_DAY}
    assert len(latest) == len(expected(api, "weather", f"_partition == '{LAST_DAY}'"))


def test_columns_filters_and_sort(api):
    response = api.get(
        "/v1/datasets/flights/rows",
        params=[
            ("columns", "id,carrier,dep_delay"),
            ("filter", "dep_delay:gte:60"),
            ("filter", "dep_delay:lt:120"),
            ("filter", "carrier:in:AA,UA"),
            ("filter", "origin:ne:LGA"),
            ("sort", "-dep_delay,carrier"),
            ("limit", "100000"),
        ],
    )
    frame = as_frame(response)
    assert list(frame.columns) == ["id", "carrier", "dep_delay"]
    assert [c["name"] for c in response.json()["columns"]] == ["id", "carrier", "dep_delay"]
    truth = expected(api, query="60 <= dep_delay < 120 and carrier in ['AA', 'UA'] and origin != 'LGA'")
    assert len(truth) > 10
    truth = truth.sort_values(["dep_delay", "carrier", "id"], ascending=[False, True, True])
    assert frame["id"].tolist() == truth["id"].tolist()


def test_typed_filters_on_datetimes_and_json_in_lists(api):
    window = [
        ("filter", "sched_dep_at:gte:2013-01-05T06:00:00"),
        ("filter", "sched_dep_at:lt:2013-01-05T07:00"),
    ]
    hour = expected(api, query="'2013-01-05 06:00' <= sched_dep_at < '2013-01-05 07:00'")
    assert len(hour) > 10
    by_hour = as_frame(api.get("/v1/datasets/flights/rows", params=[*window, ("limit", "1000")]))
    assert by_hour["id"].tolist() == sorted(hour["id"].tolist())
    # A JSON in-list lets a value hold a comma.
    tails = [*hour["tailnum"].dropna().unique()[:3], "N1,N2"]
    response = api.get(
        "/v1/datasets/flights/rows",
        params=[*window, ("filter", f"tailnum:in:{json.dumps(tails)}"), ("limit", "1000")],
    )
    truth = hour[hour["tailnum"].isin(tails)]
    assert 3 <= len(truth) and as_frame(response)["id"].tolist() == sorted(truth["id"].tolist())


# A page smaller than a streaming chunk, and one larger (its end is found by a second query).
@pytest.mark.parametrize("page", [CHUNK_ROWS - 1, 2 * CHUNK_ROWS - 3])
def test_keyset_pages_cover_every_row_once_in_order(api, page):
    params = {"columns": "id,dep_delay", "sort": "-dep_delay", "limit": page}
    seen, cursor, pages = [], None, 0
    while True:
        response = api.get(
            "/v1/datasets/flights/rows", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        body = response.json()
        seen.extend(body["data"])
        cursor, pages = body["next_cursor"], pages + 1
        assert response.headers.get("X-Next-Cursor") == cursor
        if cursor is None:
            break
        assert 'rel="next"' in response.headers["Link"]
    truth = expected(api)
    assert pages == -(-len(truth) // page)
    # NULL delays (cancelled flights) sort lowest, so they come last when descending.
    ordered = truth.sort_values(["dep_delay", "id"], ascending=[False, True], na_position="last")
    assert [row["id"] for row in seen] == ordered["id"].tolist()


FORMAT_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def read_format(fmt: str, content: bytes) -> pd.DataFrame:
    if fmt == "json":
        return pd.DataFrame(json.loads(content)["data"])
    if fmt == "ndjson":
        return pd.read_json(io.BytesIO(content), lines=True, dtype=False)
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(content), keep_default_na=True)
    return pq.read_table(io.BytesIO(content)).to_pandas()


@pytest.mark.parametrize("fmt", FORMAT_TYPES)
def test_every_format_carries_the_same_rows_and_streams(api, fmt):
    params = {
        "partition_from": FIRST_DAY,
        "partition_to": "2013-01-02",
        "columns": ",".join(FLIGHT_COLUMNS),
        "format": fmt,
        "limit": 100_000,
    }
    truth = expected(api, query="_partition <= '2013-01-02'").sort_values("id")[FLIGHT_COLUMNS]
    assert len(truth) > 2 * CHUNK_ROWS
    import httpx

    with httpx.stream(
        "GET",
        api.url + "/v1/datasets/flights/rows",
        params=params,
        headers={"Authorization": f"Bearer {_token()}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(FORMAT_TYPES[fmt])
        assert "content-length" not in response.headers  # streamed, not buffered whole
        pieces = list(response.iter_raw())
    frame = read_format(fmt, b"".join(pieces))
    assert list(frame.columns) == FLIGHT_COLUMNS
    assert frame["id"].tolist() == truth["id"].tolist()
    assert frame["carrier"].tolist() == truth["carrier"].tolist()
    delays = pd.to_numeric(frame["dep_delay"])
    assert delays.isna().tolist() == truth["dep_delay"].isna().tolist()
    assert delays.dropna().tolist() == truth["dep_delay"].dropna().tolist()
    assert pd.to_datetime(frame["sched_dep_at"]).tolist() == truth["sched_dep_at"].tolist()
    assert frame["_partition"].astype(str).tolist() == truth["_partition"].tolist()
    if fmt == "parquet":
        types = {f.name: str(f.type) for f in pq.read_schema(io.BytesIO(b"".join(pieces)))}
        assert types == {
            "id": "int64",
            "carrier": "string",
            "origin": "string",
            "dep_delay": "double",
            "sched_dep_at": "timestamp[us]",
            "_partition": "string",
        }


def test_format_from_accept_header(api):
    response = api.get("/v1/datasets/airlines/rows", headers={"Accept": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0] == "carrier,name,_loaded_at"
    assert len(response.text.splitlines()) == 1 + len(expected(api, "airlines"))


def _token():
    from collab_pipelines_tests.data_api.conftest import TOKEN

    return TOKEN


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"columns": "id,nope"}, 400, "has no column 'nope'"),
        ({"sort": "id;drop table flights"}, 400, "has no column"),
        ({"filter": "dep_delay:gte:soon"}, 400, "dep_delay (float)"),
        ({"filter": "id:eq:99999999999999999999"}, 400, "64-bit whole number"),
        ({"filter": "dep_delay:gte:nan"}, 400, "finite"),
        ({"filter": "sched_dep_at:gt:yesterday"}, 400, "ISO 8601"),
        ({"filter": "carrier:like:A%"}, 400, "is not one of"),
        ({"filter": "carrier"}, 400, "column:operator:value"),
        ({"filter": "carrier:eq:A\x00A"}, 400, "NUL"),
        ({"partition": "2013-02-30"}, 400, "is not a day"),
        ({"partition": "yesterday"}, 400, "is not a day"),
        ({"partition": "1999-01-01"}, 400, "outside 'flights'"),
        ({"partition": "2013-03-01"}, 404, "has not been materialized"),
        ({"partition": FIRST_DAY, "partition_from": FIRST_DAY}, 400, "not both"),
        ({"partition_from": "2013-01-05", "partition_to": "2013-01-01"}, 400, "is after"),
        ({"cursor": "not-a-cursor"}, 400, "not a cursor"),
        ({"limit": "0"}, 400, "limit"),
        ({"limit": "many"}, 400, "limit"),
        ({"format": "xlsx"}, 400, "format"),
    ],
)
def test_bad_input_gets_a_problem_that_says_what_was_wrong(api, params, status, words):
    response = api.get("/v1/datasets/flights/rows", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and words in problem["detail"], problem


def test_problems_for_unknown_datasets_and_unpartitioned_ones(api):
    unknown = api.get("/v1/datasets/flightz/rows")
    assert unknown.status_code == 404 and "no dataset named 'flightz'" in unknown.json()["detail"]
    assert api.get("/v1/datasets/flightz").status_code == 404
    unpartitioned = api.get("/v1/datasets/airlines/rows", params={"partition": FIRST_DAY})
    assert unpartitioned.status_code == 400 and "not partitioned" in unpartitioned.json()["detail"]
    # Declared in the registry, never written: known, but it has no rows to give. (An intake
    # table is empty instead, test_datasets.py.)
    warehouse = api.deployment.warehouse()
    never = sorted(
        name for name, d in all_datasets().items() if d.pattern != "intake" and not warehouse.has_table(name)
    )
    assert never
    absent = api.get(f"/v1/datasets/{never[0]}/rows")
    assert absent.status_code == 404 and "not been materialized" in absent.json()["detail"]


def test_a_cursor_from_another_sort_is_refused(api):
    cursor = api.get("/v1/datasets/flights/rows", params={"limit": 5, "sort": "-dep_delay"}).json()[
        "next_cursor"
    ]
    response = api.get("/v1/datasets/flights/rows", params={"limit": 5, "cursor": cursor})
    assert response.status_code == 400 and "another sort order" in response.json()["detail"]


def test_values_are_bound_never_spliced_into_sql(api):
    hostile = "x' OR '1'='1"
    response = api.get("/v1/datasets/airlines/rows", params={"filter": f"carrier:eq:{hostile}"})
    assert response.status_code == 200 and response.json()["data"] == []
    dropped = api.get("/v1/datasets/airlines/rows", params={"filter": "name:in:a'); DROP TABLE airlines; --"})
    assert dropped.status_code == 200 and dropped.json()["data"] == []
    assert len(expected(api, "airlines")) == 16


def test_etag_and_last_modified_give_304_until_the_asset_is_materialized_again(api):
    params = {"partition": "2013-01-03", "columns": "id", "limit": 10}
    first = api.get("/v1/datasets/flights/rows", params=params)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert (
        api.get("/v1/datasets/flights/rows", params=params, headers={"If-None-Match": etag}).status_code
        == 304
    )
    assert (
        api.get(
            "/v1/datasets/flights/rows", params=params, headers={"If-Modified-Since": modified}
        ).status_code
        == 304
    )
    other = api.get(
        "/v1/datasets/flights/rows", params={**params, "format": "csv"}, headers={"If-None-Match": etag}
    )
    assert other.status_code == 200  # another representation has another ETag

    deployment = api.deployment
    export = next(a for a in build_export_assets(load_catalog()) if a.key.to_user_string() == "flights")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLLAB_STATE_DIR", str(deployment.state_dir))
        assert dg.materialize(
            [export],
            partition_key="2013-01-03",
            instance=deployment.instance,
            resources={"warehouse": deployment.warehouse(), "sources": SqlSources()},
        ).success
    again = api.get("/v1/datasets/flights/rows", params=params, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert again.json()["data"] == first.json()["data"]
    assert (
        api.get(
            "/v1/datasets/flights/rows", params=params, headers={"If-None-Match": again.headers["ETag"]}
        ).status_code
        == 304
    )
