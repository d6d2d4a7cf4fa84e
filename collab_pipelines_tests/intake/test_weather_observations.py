"""A combined table: exported weather and uploaded observations, on SQLite and PostgreSQL, and the
demo's daily report that reads it beside the export."""

import dagster as dg
import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.demo.resources import SqlSources
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.intake.assets import build_combined_asset
from collab_pipelines.intake.definitions import build_defs
from collab_pipelines.intake.upload_types import UploadConfigError, load_uploads
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.intake.conftest import GOOD_CSV, UPLOADS_YAML, upload, weather_type
from collab_pipelines_tests.reports import jobs
from collab_pipelines_tests.reports.helpers import execute, materializations


@pytest.fixture(params=["sqlite", "postgresql"])
def any_warehouse(request, tmp_path) -> Warehouse:
    if request.param == "sqlite":
        return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    return Warehouse(url=request.getfixturevalue("postgres_url"))


def test_uploads_join_the_weather_export(product_db, instance, any_warehouse, connect, intake_for):
    weather = next(a for a in build_export_assets(load_catalog()) if a.key == dg.AssetKey("weather"))
    exported = dg.materialize(
        [weather],
        partition_key="2013-01-01",
        instance=instance,
        resources={"warehouse": any_warehouse, "sources": SqlSources()},
    )
    assert exported.success
    exported_rows = any_warehouse.count("weather")
    assert exported_rows > 0

    intake = intake_for(any_warehouse)
    alice = connect("alice")
    upload(alice, "obs.csv", GOOD_CSV.replace("39.0,26.1", "12.3,26.1"))
    upload(alice, "obs.csv.done", "")
    assert all(outcome.success for outcome in intake.run_all(intake.tick()))
    # Each ingestion replaces one upload, and readers select by it: the column is indexed.
    indexes = sa.inspect(any_warehouse.engine()).get_indexes("weather_observations_uploads")
    assert ["upload_id"] in [index["column_names"] for index in indexes]

    weather_observations = build_combined_asset(weather_type())
    result = dg.materialize([weather_observations], instance=instance, resources={"warehouse": any_warehouse})
    assert result.success
    combined = any_warehouse.read("weather_observations")
    combined["observed_at"] = pd.to_datetime(combined["observed_at"])
    export = any_warehouse.read("weather")
    export["observed_at"] = pd.to_datetime(export["observed_at"])
    uploaded_hours = {("JFK", "2013-01-01 01:00"), ("LGA", "2013-01-01 01:00"), ("EWR", "2013-01-01 02:00")}
    overlap = sum(
        (o, t.strftime("%Y-%m-%d %H:%M")) in uploaded_hours
        for o, t in zip(export["origin"], export["observed_at"], strict=True)
    )
    assert len(combined) == exported_rows + 3 - overlap
    assert not combined.duplicated(["origin", "observed_at"]).any()
    jfk = combined[
        (combined["origin"] == "JFK") & (combined["observed_at"] == pd.Timestamp("2013-01-01 01:00"))
    ]
    assert jfk["temp"].tolist() == [12.3] and jfk["source"].tolist() == ["upload"]
    metadata = result.asset_materializations_for_node("weather_observations")[0].metadata
    assert metadata["rows_from_uploads"].value == 3


def test_the_demo_ships_its_upload_type_and_the_project_loads_it():
    from collab_pipelines_tests.project import project_defs

    repository = project_defs().get_repository_def()
    assert {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()} >= {
        "weather_observations_uploads",
        "weather_observations",
    }
    assert repository.get_sensor_def("upload_sensor").asset_selection is not None
    upstream = repository.asset_graph.get(dg.AssetKey("weather_observations")).parent_keys
    assert upstream == {dg.AssetKey("weather"), dg.AssetKey("weather_observations_uploads")}


REPORT = "weather_uploads_report"


def export_weather(instance, warehouse: Warehouse, first: str, last: str) -> pd.DataFrame:
    weather = next(a for a in build_export_assets(load_catalog()) if a.key == dg.AssetKey("weather"))
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = dg.materialize(
        [weather], tags=tags, instance=instance, resources={"warehouse": warehouse, "sources": SqlSources()}
    )
    assert result.success
    return warehouse.read("weather").assign(observed_at=lambda f: pd.to_datetime(f["observed_at"]))


def test_the_demos_weather_report_reads_the_uploaded_rows_beside_the_export():
    from collab_pipelines_tests.project import project_defs

    graph = project_defs().get_repository_def().asset_graph
    report = graph.get(dg.AssetKey(REPORT))
    assert report.parent_keys == {dg.AssetKey("weather"), dg.AssetKey("weather_observations")}
    assert report.partitions_def == graph.get(dg.AssetKey("weather")).partitions_def
    # The lineage runs from an uploaded file through its rows to the report.
    assert (
        dg.AssetKey("weather_observations")
        in graph.get(dg.AssetKey("weather_observations_uploads")).child_keys
    )
    assert dg.AssetKey(REPORT) in graph.get(dg.AssetKey("weather_observations")).child_keys


def test_a_new_weather_day_renders_its_report_once_the_combined_table_exists(instance):
    from collab_pipelines_tests.project import project_defs

    selection = dg.AssetSelection.assets(REPORT)

    def tick(cursor=None):
        return dg.evaluate_automation_conditions(
            defs=project_defs(), instance=instance, asset_selection=selection, cursor=cursor
        )

    def requested(result) -> set[str]:
        return set(result.get_requested_partitions(dg.AssetKey(REPORT)))

    first = tick()
    instance.report_runless_asset_event(dg.AssetMaterialization("weather", partition="2013-01-05"))
    second = tick(first.cursor)
    assert requested(second) == set()  # held: weather_observations was never built
    instance.report_runless_asset_event(dg.AssetMaterialization("weather_observations"))
    instance.report_runless_asset_event(dg.AssetMaterialization("weather", partition="2013-01-06"))
    third = tick(second.cursor)
    # The new day only: a rewrite of the whole combined table does not render every day again.
    assert requested(third) == {"2013-01-06"}
    instance.report_runless_asset_event(dg.AssetMaterialization("weather_observations"))
    assert requested(tick(third.cursor)) == set()


def test_a_days_weather_report_shows_that_days_uploads_beside_the_export(
    product_db, instance, state_dir, connect, intake_for
):
    warehouse = Warehouse()  # the state folder's, which the report's kernel reads too
    export = export_weather(instance, warehouse, "2013-01-01", "2013-01-02")
    intake = intake_for(warehouse)
    meteo = connect("alice")
    # JFK at 01:00 corrected to 12.3; a reading of the next day that the first day's report leaves out.
    upload(
        meteo,
        "obs.csv",
        GOOD_CSV.replace("39.0,26.1", "12.3,26.1") + "EWR,2013-01-02 05:00,77.7,0,50,5,0,1010,10\n",
    )
    upload(meteo, "obs.csv.done", "")
    assert all(outcome.success for outcome in intake.run_all(intake.tick()))
    combined = dg.materialize(
        [build_combined_asset(weather_type())], instance=instance, resources={"warehouse": warehouse}
    )
    assert combined.success

    result = execute(jobs.weather_uploads_report_job, instance, partition="2013-01-01")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    notebook = nbformat.read(materializations(instance, REPORT)["2013-01-01"]["notebook"], as_version=4)
    assert not any(o.output_type == "error" for c in notebook.cells for o in c.get("outputs", []))
    text = nbformat.writes(notebook)
    day = export[export["observed_at"].dt.strftime("%Y-%m-%d") == "2013-01-01"]
    hours = {("JFK", "2013-01-01 01:00"), ("LGA", "2013-01-01 01:00"), ("EWR", "2013-01-01 02:00")}
    replaced = sum(
        (o, t.strftime("%Y-%m-%d %H:%M")) in hours
        for o, t in zip(day["origin"], day["observed_at"], strict=True)
    )
    assert replaced > 0
    assert (
        f"{len(day):,} exported hours; 3 uploaded observation(s) in `weather_observations`, "
        f"{replaced:,} replacing an exported hour and {3 - replaced:,} adding one."
    ) in text
    jfk = day[(day["origin"] == "JFK") & (day["observed_at"] == pd.Timestamp("2013-01-01 01:00"))]
    [exported_temp] = jfk["temp"].tolist()
    assert "12.3" in text and f"{12.3 - exported_temp:.2f}".rstrip("0").rstrip(".") in text
    assert "77.7" not in text  # the next day's upload is that day's report's
    assert "image/png" in text


def test_the_definitions_follow_the_uploads_file(tmp_path):
    path = tmp_path / "uploads.yaml"
    assert build_defs(path).assets is None or list(build_defs(path).assets) == []  # no file, nothing
    path.write_text(UPLOADS_YAML)
    defs = build_defs(path)
    keys = {key.to_user_string() for asset in defs.assets for key in asset.keys}
    assert keys == {"weather_observations_uploads", "weather_observations"}
    assert [sensor.name for sensor in defs.sensors] == ["upload_sensor"]
    checks = {key.name for asset in defs.assets for key in asset.check_keys}
    assert checks == {"upload_accepted"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{type: integer, required: false, minimum: 0}", "{type: integr}"), "field 'columns.station.type'"),
        (("key: [origin, observed_at]", "key: [origin, when]"), "key names unknown column(s) when"),
        (
            ("uploaders: [alice, bob]", "uploaders: [alice, bob]\n    colour: red"),
            "field 'colour': unknown field",
        ),
        (("{type: string, choices", "{type: float, choices"), "choices apply to string columns, not float"),
    ],
)
def test_uploads_file_errors_name_the_file_the_type_and_the_field(tmp_path, change, message):
    path = tmp_path / "uploads.yaml"
    path.write_text(UPLOADS_YAML.replace(*change))
    with pytest.raises(UploadConfigError) as error:
        load_uploads(path)
    assert str(error.value).startswith(f"{path}: upload_types 'weather_observations': ")
    assert message in str(error.value)
