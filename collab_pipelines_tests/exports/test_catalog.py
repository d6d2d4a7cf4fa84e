"""The catalog parser: the shipped catalog loads, and every kind of bad entry is named."""

import copy
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from collab_pipelines.demo.paths import DEMO_CATALOG as DEFAULT_CATALOG
from collab_pipelines.exports.catalog import CatalogError, load_catalog

GOOD_ENTRY = {
    "name": "orders",
    "connection": "shop",
    "description": "Orders placed in the shop.",
    "owners": ["team:shop"],
    "sql": "SELECT id, placed_at, total FROM orders "
    "WHERE placed_at >= :partition_start AND placed_at < :partition_end",
    "partition": {"column": "placed_at", "start": "2024-01-01"},
    "primary_key": ["id"],
    "columns": {"id": "integer", "placed_at": "datetime", "total": "float"},
    "checks": {"max_null_rates": {"total": 0.1}},
}


def write_catalog(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "connections": {"shop": {"url_env": "SHOP_URL"}},
                "exports": list(entries),
            }
        )
    )
    return path


def entry(**changes) -> dict:
    result = copy.deepcopy(GOOD_ENTRY)
    for key, value in changes.items():
        if value is None:
            result.pop(key)
        else:
            result[key] = value
    return result


def test_shipped_catalog_declares_the_demo_exports():
    catalog = load_catalog()
    assert list(catalog.exports) == ["flights", "weather", "airlines", "airports", "planes"]
    assert [s.name for s in catalog.partitioned()] == ["flights", "weather"]
    flights = catalog.exports["flights"]
    assert flights.partition.column == "sched_dep_at"
    assert flights.primary_key == ("id",)
    assert str(flights.partition.start) == "2013-01-01"


def test_a_good_entry_parses(tmp_path):
    catalog = load_catalog(write_catalog(tmp_path, GOOD_ENTRY))
    spec = catalog.exports["orders"]
    assert spec.checks.max_null_rates == {"total": 0.1}
    assert spec.columns["placed_at"] == "datetime"


@pytest.mark.parametrize(
    ("bad_entry", "field", "problem"),
    [
        (entry(primary_key=["order_id"]), "primary_key", "unknown column 'order_id'"),
        (
            entry(partition={"column": "created", "start": "2024-01-01"}),
            "partition.column",
            "unknown column 'created'",
        ),
        (
            entry(partition={"column": "total", "start": "2024-01-01"}),
            "partition.column",
            "not a date or datetime",
        ),
        (entry(checks={"max_null_rates": {"tax": 0.1}}), "checks.max_null_rates", "unknown column 'tax'"),
        (entry(checks={"max_null_rates": {"total": 3}}), "checks.max_null_rates", "not a number in [0, 1]"),
        (entry(partition={"column": "placed_at", "start": "2024-13-45"}), "partition.start", "not a date"),
        (
            entry(partition={"column": "placed_at", "start": datetime(2024, 1, 1, 6)}),
            "partition.start",
            "has a time of day",
        ),
        (
            entry(partition={"column": "placed_at", "start": "2024-02-01", "end": "2024-01-01"}),
            "partition.end",
            "not after",
        ),
        (entry(primary_key=None), "primary_key", "missing"),
        (entry(description=None), "description", "missing"),
        (entry(connection="warehouse"), "connection", "unknown connection 'warehouse'"),
        (entry(sql="SELECT id, placed_at, total FROM orders"), "sql", ":partition_start"),
        (
            entry(columns={"id": "integer", "placed_at": "datetime", "total": "money"}),
            "columns",
            "unknown type 'money'",
        ),
        (entry(owners=["nobody"]), "owners", "neither an e-mail address"),
        (entry(figures=["placed_at"]), "figures", "not numeric"),
        (entry(checks={"non_empty": "sometimes"}), "checks.non_empty", "'sometimes' is not one of"),
    ],
)
def test_a_bad_entry_names_file_entry_and_field(tmp_path, bad_entry, field, problem):
    path = write_catalog(tmp_path, bad_entry)
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    message = str(raised.value)
    assert str(path) in message
    assert "exports[0] 'orders'" in message
    assert f"field '{field}'" in message
    assert problem in message


def test_check_levels(tmp_path):
    checks = {"non_empty": "warn", "schema": False, "primary_key_unique": True}
    spec = load_catalog(write_catalog(tmp_path, entry(checks=checks))).exports["orders"]
    assert (spec.checks.non_empty, spec.checks.schema, spec.checks.primary_key_unique) == (
        "warn",
        "off",
        "error",
    )


def test_a_duplicate_name_is_refused(tmp_path):
    path = write_catalog(tmp_path, GOOD_ENTRY, GOOD_ENTRY)
    with pytest.raises(CatalogError, match=r"exports\[1\] 'orders': field 'name': duplicate name"):
        load_catalog(path)


def test_an_unknown_field_is_refused(tmp_path):
    path = write_catalog(tmp_path, entry(primary_keys=["id"]))
    with pytest.raises(CatalogError, match=r"'orders': unknown field\(s\) \['primary_keys'\]"):
        load_catalog(path)


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("exports: [\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)


def test_a_bad_catalog_fails_when_the_definitions_load(tmp_path):
    from collab_pipelines.exports.definitions import build_defs

    path = write_catalog(tmp_path, entry(primary_key=["nope"]))
    with pytest.raises(CatalogError, match="field 'primary_key'"):
        build_defs(path)


def test_default_catalog_is_the_packaged_file():
    assert DEFAULT_CATALOG.exists()


@pytest.mark.parametrize("content", [None, "", "connections: {}\nexports: []\n"])
def test_a_team_without_exports_defines_nothing(tmp_path, content):
    from collab_pipelines.exports.definitions import build_defs

    path = tmp_path / "catalog.yaml"
    if content is not None:
        path.write_text(content)
    defs = build_defs(path)
    assert list(defs.assets or []) == []
    assert list(defs.jobs or []) == list(defs.schedules or []) == list(defs.sensors or []) == []


def test_an_invalid_date_names_file_entry_and_field(tmp_path):
    # YAML itself would turn 2010-13-01 into a bare ValueError with no file or field.
    path = write_catalog(tmp_path, GOOD_ENTRY)
    path.write_text(path.read_text().replace("'2024-01-01'", "2010-13-01"))
    assert "start: 2010-13-01" in path.read_text()
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert f"{path}: exports[0] 'orders': field 'partition.start': '2010-13-01' is not a date" in str(
        raised.value
    )


def test_a_declared_string_length_needs_a_string_column(tmp_path):
    with pytest.raises(CatalogError, match=r"exports\[0\] 'orders': field 'max_lengths': 'id': a maximum"):
        load_catalog(write_catalog(tmp_path, entry(max_lengths={"id": 3})))
