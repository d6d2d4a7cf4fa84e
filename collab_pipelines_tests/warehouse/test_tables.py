"""Warehouse tables get their declared types, key and indexes, and old tables are migrated."""

import pandas as pd
import pytest
import sqlalchemy as sa

from collab_pipelines.warehouse.engine import WarehouseError, insert_frame, replace_rows
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines.warehouse.tables import TableLayout, index_name


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "sqlite":
        return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    return Warehouse(url=request.getfixturevalue("postgres_url"))


def indexes(warehouse: Warehouse, table: str) -> dict[tuple[str, ...], bool]:
    """Indexed column groups and whether each is unique (a primary key counts as unique)."""
    inspector = sa.inspect(warehouse.engine())
    found = {tuple(ix["column_names"]): bool(ix.get("unique")) for ix in inspector.get_indexes(table)}
    key = tuple(inspector.get_pk_constraint(table).get("constrained_columns") or ())
    if key:
        found[key] = True
    return found


def evaluation_frame(key: str, rows: int) -> pd.DataFrame:
    return pd.DataFrame({"evaluation_key": key, "row": range(rows), "score": 0.5})


def test_an_evaluation_style_table_is_keyed_and_indexed(warehouse):
    layout = TableLayout(
        column_types={"evaluation_key": "string", "row": "integer", "score": "float"},
        primary_key=("evaluation_key", "row"),
        indexes=(("evaluation_key",),),
    )
    replace_rows(warehouse.engine(), "predictions", evaluation_frame("a", 3), layout=layout)
    assert indexes(warehouse, "predictions")[("evaluation_key", "row")] is True
    # The key's leading column already serves lookups by evaluation_key.
    assert ("evaluation_key", "row") in indexes(warehouse, "predictions")
    with pytest.raises(WarehouseError, match="previous rows are unchanged"):
        replace_rows(
            warehouse.engine(),
            "predictions",
            pd.concat([evaluation_frame("b", 2), evaluation_frame("b", 1)]),
            where={"evaluation_key": "b"},
            layout=layout,
        )
    assert warehouse.count("predictions") == 3


def test_an_intake_style_append_indexes_the_upload_column(warehouse):
    layout = TableLayout(column_types={"upload": "string", "temp": "float"}, indexes=(("upload",),))
    with warehouse.engine().begin() as connection:
        insert_frame(
            connection, "observations", pd.DataFrame({"upload": ["u1"], "temp": [3.0]}), layout=layout
        )
    assert indexes(warehouse, "observations") == {("upload",): False}


def test_declared_types_reach_the_database(warehouse):
    frame = pd.DataFrame(
        {
            "n": pd.Series([1], dtype="Int64"),
            "x": [1.5],
            "day": pd.to_datetime(["2013-01-01"]),
            "at": pd.to_datetime(["2013-01-01 05:00"]),
            "code": ["JFK"],
        }
    )
    layout = TableLayout(
        column_types={"n": "integer", "x": "float", "day": "date", "at": "datetime", "code": "string"},
        max_lengths={"code": 3},
    )
    warehouse.replace("typed", frame, layout=layout)
    columns = {c["name"]: c["type"] for c in sa.inspect(warehouse.engine()).get_columns("typed")}
    compiled = {name: t.compile(dialect=warehouse.engine().dialect).upper() for name, t in columns.items()}
    assert compiled["n"] == "BIGINT"
    assert compiled["code"] == "VARCHAR(3)"
    assert isinstance(columns["day"], sa.Date) and not isinstance(columns["day"], sa.DateTime)
    assert isinstance(columns["at"], sa.DateTime)
    if warehouse.dialect == "postgresql":
        assert compiled["x"] == "DOUBLE PRECISION"
        assert compiled["at"] == "TIMESTAMP WITHOUT TIME ZONE"


def test_an_unindexed_warehouse_is_migrated_in_place_with_its_rows(warehouse):
    # A table as the project wrote it before: created by pandas, no key, no index, guessed types.
    old = pd.DataFrame(
        {
            "_partition": ["2013-01-01"] * 3 + ["2013-01-02"] * 2,
            "id": range(5),
            "at": pd.to_datetime(["2013-01-01 05:00"] * 3 + ["2013-01-02 06:00"] * 2),
        }
    )
    with warehouse.engine().begin() as connection:
        old.to_sql("flights", connection, index=False)
    assert indexes(warehouse, "flights") == {}
    layout = TableLayout(
        column_types={"_partition": "string", "id": "integer", "at": "datetime"},
        primary_key=("id",),
        indexes=(("_partition",),),
    )
    new_day = old[old["_partition"] == "2013-01-02"].assign(id=[10, 11])
    warehouse.replace("flights", new_day, where={"_partition": "2013-01-02"}, layout=layout)
    assert indexes(warehouse, "flights") == {("id",): True, ("_partition",): False}
    rows = warehouse.read("flights").sort_values("id")
    assert rows["id"].tolist() == [0, 1, 2, 10, 11]
    assert rows["at"].tolist() == list(pd.to_datetime(["2013-01-01 05:00"] * 3 + ["2013-01-02 06:00"] * 2))
    # Migrating twice is a no-op, and the key now holds.
    warehouse.replace("flights", new_day, where={"_partition": "2013-01-02"}, layout=layout)
    with pytest.raises(WarehouseError):
        warehouse.replace(
            "flights", new_day.assign(id=[0, 12]), where={"_partition": "2013-01-02"}, layout=layout
        )
    assert warehouse.count("flights") == 5


def test_a_postgresql_column_of_the_wrong_type_is_converted(postgres_url):
    warehouse = Warehouse(url=postgres_url)
    with warehouse.engine().begin() as connection:
        pd.DataFrame({"day": ["2013-01-01"], "n": [1.0]}).to_sql("old", connection, index=False)
    layout = TableLayout(column_types={"day": "date", "n": "integer"})
    frame = pd.DataFrame({"day": pd.to_datetime(["2013-01-02"]), "n": pd.Series([2], dtype="Int64")})
    warehouse.replace("old", frame, where={"day": []}, layout=layout)
    columns = {c["name"]: c["type"] for c in sa.inspect(warehouse.engine()).get_columns("old")}
    assert isinstance(columns["day"], sa.Date) and isinstance(columns["n"], sa.BigInteger)
    assert sorted(warehouse.read("old")["n"]) == [1, 2]


def key_default(warehouse: Warehouse, table: str, column: str = "id"):
    [found] = [c for c in sa.inspect(warehouse.engine()).get_columns(table) if c["name"] == column]
    return found["default"]


def test_a_postgresql_integer_key_holds_the_sources_values_only(postgres_url):
    warehouse = Warehouse(url=postgres_url)
    layout = TableLayout(column_types={"id": "integer", "x": "float"}, primary_key=("id",))
    warehouse.replace("keyed", pd.DataFrame({"id": [5, 7], "x": [1.0, 2.0]}), layout=layout)
    assert key_default(warehouse, "keyed") is None
    # A row without its key is refused, not numbered by a sequence the source knows nothing of.
    with pytest.raises(sa.exc.IntegrityError, match="null value"):
        with warehouse.engine().begin() as connection:
            connection.execute(sa.text("INSERT INTO keyed (x) VALUES (3.0)"))

    # A table an earlier version created, with a SERIAL key: migrated in place, rows kept.
    with warehouse.engine().begin() as connection:
        connection.execute(sa.text("CREATE TABLE older (id BIGSERIAL PRIMARY KEY, x DOUBLE PRECISION)"))
        connection.execute(sa.text("INSERT INTO older (id, x) VALUES (10, 1.0)"))
    assert key_default(warehouse, "older").startswith("nextval(")
    warehouse.replace("older", pd.DataFrame({"id": [11], "x": [2.0]}), where={"id": [11]}, layout=layout)
    assert key_default(warehouse, "older") is None
    with warehouse.engine().connect() as connection:
        assert connection.execute(sa.text("SELECT to_regclass('older_id_seq')")).scalar() is None
    assert sorted(warehouse.read("older")["id"]) == [10, 11]


def test_long_index_names_stay_within_postgresql_limits():
    name = index_name("ix", "t" * 60, ["c" * 60])
    assert len(name) <= 63
    assert name != index_name("ix", "t" * 60, ["c" * 59 + "d"])
