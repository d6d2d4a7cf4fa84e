"""The Python client against the real server: DataFrames, pages, filters, tokens, 304s."""

import httpx
import pandas as pd
import pytest

from collab_pipelines.data_api import Client, DataApiError
from collab_pipelines_tests.data_api.conftest import COMMIT_A, TOKEN


@pytest.fixture
def client(api):
    with Client(api.url, token=TOKEN, page_size=700) as c:
        yield c


def test_rows_join_every_page_with_catalog_types(api, client):
    frame = client.rows(
        "flights",
        partition_from="2013-01-01",
        partition_to="2013-01-03",
        columns=["id", "carrier", "dep_delay", "sched_dep_at"],
        sort=["-dep_delay"],
    )
    truth = api.deployment.warehouse().read("flights").query("_partition <= '2013-01-03'")
    truth = truth.sort_values(["dep_delay", "id"], ascending=[False, True], na_position="last")
    assert len(frame) == len(truth) > 3 * 700
    assert frame["id"].tolist() == truth["id"].tolist()
    assert str(frame["id"].dtype) == "Int64" and str(frame["sched_dep_at"].dtype) == "datetime64[us]"


def test_filters_as_dict_and_tuples(api, client):
    frame = client.rows(
        "flights",
        partition="latest",
        filters=[("dep_delay", ">=", 15), ("carrier", "in", ["AA", "UA", "B6"])],
    )
    truth = (
        api.deployment.warehouse()
        .read("flights")
        .query("_partition == '2013-01-07' and dep_delay >= 15 and carrier in ['AA', 'UA', 'B6']")
    )
    assert sorted(frame["id"].tolist()) == sorted(truth["id"].tolist()) and len(truth) > 10
    by_dict = client.rows("airlines", filters={"carrier": ["AA", "UA"]})
    assert by_dict["name"].tolist() == ["American Airlines Inc.", "United Air Lines Inc."]
    assert len(client.rows("flights", limit=1500)) == 1500


def test_a_repeated_request_is_revalidated_with_a_304(api):
    statuses = []
    with Client(api.url, token=TOKEN) as client:
        client._http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))
        first = client.rows("airports")
        second = client.rows("airports")
    assert statuses == [200, 304]
    pd.testing.assert_frame_equal(first, second)


def test_catalog_evaluations_and_errors(client):
    datasets = client.datasets()
    assert {"flights", "evaluation_results", "weather_observations_uploads"} <= set(datasets["name"])
    assert datasets.set_index("name").loc["airlines", "checks_passed"] == "4/4"
    assert "weather_observations" in [
        a["asset_key"] for a in client.dataset("weather")["lineage"]["downstream"]
    ]
    evaluations = client.evaluations(COMMIT_A[:10])
    assert evaluations["metric/auc"].tolist() == [0.81]
    with pytest.raises(DataApiError, match="has no column 'nope'"):
        client.rows("flights", columns=["nope"])


def test_tokens_come_from_the_environment(api, monkeypatch):
    monkeypatch.setenv("COLLAB_API_URL", api.url)
    monkeypatch.setenv("COLLAB_API_TOKEN", TOKEN)
    assert len(Client().rows("airlines")) == 16
    monkeypatch.delenv("COLLAB_API_TOKEN")
    with pytest.raises(DataApiError, match="no token"):
        Client()
    with pytest.raises(DataApiError, match="401: this token is not valid"):
        Client(token="wrong").datasets()
    assert httpx.get(api.url + "/health").status_code == 200
