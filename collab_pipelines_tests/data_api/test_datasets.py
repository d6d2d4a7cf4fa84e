"""The catalog endpoints: what there is, how fresh, whether checks pass, and lineage."""

import json

import dagster as dg
import pytest

from collab_pipelines.data_api import Client
from collab_pipelines.datasets import all_datasets
from collab_pipelines_tests.data_api.conftest import TOKEN
from collab_pipelines_tests.project import project_defs


def test_the_list_covers_every_registered_dataset_with_its_description(api):
    response = api.get("/v1/datasets")
    assert response.status_code == 200
    listed = {d["name"]: d for d in response.json()["datasets"]}
    assert set(listed) == set(all_datasets())
    for name in ("flights", "weather_observations_uploads", "evaluation_results", "evaluation_predictions"):
        assert name in listed
    flights = listed["flights"]
    registry = all_datasets()["flights"]
    assert flights["description"] == registry.description
    assert flights["owners"] == list(registry.owners)
    assert {c["name"]: c["type"] for c in flights["columns"]} == dict(registry.columns)
    assert flights["partitioning"] == {
        "kind": "daily",
        "column": "_partition",
        "dynamic_name": None,
        "first": "2013-01-01",
        "materialized": 7,
        "latest": "2013-01-07",
    }
    uploads = listed["weather_observations_uploads"]["partitioning"]
    assert uploads["kind"] == "dynamic" and uploads["dynamic_name"] == "weather_observations_uploads"


def test_freshness_row_counts_and_checks_come_from_the_instance_and_warehouse(api):
    listed = {d["name"]: d for d in api.get("/v1/datasets").json()["datasets"]}
    instance = api.deployment.instance
    for name in ("flights", "airports"):
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        last = listed[name]["last_materialization"]
        assert last["run_id"] == event.run_id
        assert last["data_version"] == event.asset_materialization.tags["dagster/data_version"]
        assert listed[name]["row_count"] == api.deployment.warehouse().count(name)
    checks = {c["name"]: c for c in listed["airlines"]["checks"]}
    assert set(checks) == {
        "schema_matches_catalog",
        "non_empty",
        "primary_key_unique",
        "null_rates_within_limits",
    }
    assert checks["non_empty"]["passed"] is True and "16 rows" in checks["non_empty"]["description"]
    assert listed["evaluation_results"]["row_count"] == 2
    assert listed["evaluation_results"]["last_materialization"] is None  # filled directly, not by an asset
    assert listed["evaluation_predictions"]["row_count"] is None  # declared, no table yet


def _keys(assets) -> list[str]:
    return sorted(key.to_user_string() for key in assets)


def test_one_dataset_has_its_lineage(api):
    graph = project_defs().get_repository_def().asset_graph
    weather = api.get("/v1/datasets/weather").json()["lineage"]
    assert weather["upstream"] == []
    downstream = {a["asset_key"]: a["datasets"] for a in weather["downstream"]}
    assert sorted(downstream) == _keys(graph.get(dg.AssetKey("weather")).child_keys)
    assert downstream["weather_observations"] == ["weather_observations"]
    combined = api.get("/v1/datasets/weather_observations").json()["lineage"]
    assert [a["asset_key"] for a in combined["upstream"]] == ["weather", "weather_observations_uploads"]
    all_downstream = [a["asset_key"] for a in weather["all_downstream"]]
    assert set(all_downstream) >= set(downstream) | {a["asset_key"] for a in combined["downstream"]}


def test_responses_never_show_the_warehouse_url_or_instance_config(api):
    deployment = api.deployment
    bodies = [
        api.get(p).text
        for p in (
            "/v1/datasets",
            "/v1/datasets/flights",
            "/v1/datasets/nope",
            "/v1/datasets/flights/rows?limit=3",
            "/v1/datasets/flights/rows?limit=x",
        )
    ]
    secrets = {
        deployment.warehouse_url,
        str(deployment.dagster_home),
        "postgres@",
        "sqlite:///",
        "dagster.yaml",
    }
    for body in bodies:
        for secret in secrets:
            assert secret not in body, secret
    assert json.loads(bodies[2])["status"] == 404


@pytest.mark.parametrize("name", ["weather_observations_uploads", "weather_observations"])
def test_an_intake_table_before_any_upload_is_empty_with_its_columns(api, name):
    declared = api.get(f"/v1/datasets/{name}").json()["columns"]
    assert not api.deployment.warehouse().has_table(name)  # no upload has arrived in this deployment
    page = api.get(f"/v1/datasets/{name}/rows")
    assert page.status_code == 200, page.text
    assert page.json()["data"] == [] and page.json()["next_cursor"] is None
    assert [c["name"] for c in page.json()["columns"]] == [c["name"] for c in declared]
    csv = api.get(f"/v1/datasets/{name}/rows", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines() == [",".join(c["name"] for c in declared)]
    # Every format, and the client, which reads Parquet.
    assert api.get(f"/v1/datasets/{name}/rows", params={"format": "parquet"}).status_code == 200
    assert api.get(f"/v1/datasets/{name}/rows", params={"filter": "nope:eq:1"}).status_code == 400
    assert (
        api.get(f"/v1/datasets/{name}/rows", headers={"If-None-Match": page.headers["ETag"]}).status_code
        == 304
    )
    with Client(api.url, token=TOKEN) as client:
        frame = client.rows(name)
    assert frame.empty and list(frame.columns) == [c["name"] for c in declared]
