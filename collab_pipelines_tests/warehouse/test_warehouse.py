"""The warehouse seam on real SQLite and real PostgreSQL: keyed, atomic, idempotent."""

import pandas as pd
import pytest

from collab_pipelines.warehouse.engine import WarehouseError
from collab_pipelines.warehouse.resources import Warehouse


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request, tmp_path) -> Warehouse:
    if request.param == "sqlite":
        return Warehouse(url=f"sqlite:///{tmp_path / 'warehouse.db'}")
    return Warehouse(url=request.getfixturevalue("postgres_url"))


def day_frame(day: str, rows: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"_partition": [day] * rows, "id": range(start, start + rows), "value": 1.5})


def test_replace_is_idempotent_and_keyed(warehouse):
    warehouse.replace("t", day_frame("2013-01-01", 5), where={"_partition": ["2013-01-01"]})
    warehouse.replace("t", day_frame("2013-01-02", 3, 100), where={"_partition": ["2013-01-02"]})
    warehouse.replace("t", day_frame("2013-01-01", 4), where={"_partition": ["2013-01-01"]})
    warehouse.replace("t", day_frame("2013-01-01", 4), where={"_partition": ["2013-01-01"]})
    counts = warehouse.read("t").groupby("_partition").size().to_dict()
    assert counts == {"2013-01-01": 4, "2013-01-02": 3}
    assert warehouse.count("t", where={"_partition": "2013-01-02"}) == 3


def test_a_failed_write_leaves_the_previous_rows(warehouse):
    warehouse.replace("t", day_frame("2013-01-01", 5), where={"_partition": ["2013-01-01"]})
    bad = day_frame("2013-01-01", 50)
    # The first chunks insert fine; a value the driver cannot bind fails a later chunk.
    bad["value"] = bad["value"].astype(object)
    bad.loc[45, "value"] = object()
    with pytest.raises(WarehouseError, match="table 't'.*previous rows are unchanged"):
        warehouse.replace("t", bad, where={"_partition": ["2013-01-01"]}, chunksize=10)
    rows = warehouse.read("t")
    assert sorted(rows["id"]) == [0, 1, 2, 3, 4]


def test_chunks_are_written_in_one_transaction_and_a_failing_source_keeps_the_rows(warehouse):
    warehouse.replace("t", day_frame("2013-01-01", 5), where={"_partition": ["2013-01-01"]})
    written = warehouse.replace(
        "t",
        (day_frame("2013-01-01", 10, start) for start in range(0, 30, 10)),
        where={"_partition": ["2013-01-01"]},
    )
    assert written == 30 and sorted(warehouse.read("t")["id"]) == list(range(30))

    def refused_after_two_chunks():
        yield day_frame("2013-01-01", 10, 100)
        yield day_frame("2013-01-01", 10, 110)
        raise ValueError("row 125 holds 'late' in a float column")

    # The caller's own error, not a write failure: the rows it refused were never the database's.
    with pytest.raises(ValueError, match="row 125 holds 'late'"):
        warehouse.replace("t", refused_after_two_chunks(), where={"_partition": ["2013-01-01"]})
    assert sorted(warehouse.read("t")["id"]) == list(range(30))


def test_replace_without_key_replaces_the_table(warehouse):
    warehouse.replace("dim", pd.DataFrame({"code": ["a", "b"]}))
    warehouse.replace("dim", pd.DataFrame({"code": ["c"]}))
    assert warehouse.read("dim")["code"].tolist() == ["c"]


@pytest.mark.parametrize("name", ["t; DROP TABLE t", "1abc", "a-b", ""])
def test_identifiers_are_checked(warehouse, name):
    with pytest.raises(WarehouseError, match="invalid table name"):
        warehouse.replace(name, day_frame("2013-01-01", 1))


def test_unknown_table_and_column_are_named(warehouse):
    with pytest.raises(WarehouseError, match="table 'missing' does not exist"):
        warehouse.read("missing")
    warehouse.replace("t", day_frame("2013-01-01", 1))
    with pytest.raises(WarehouseError, match="no column 'day'"):
        warehouse.replace("t", day_frame("2013-01-01", 1), where={"day": ["x"]})


def test_describe_hides_the_password():
    warehouse = Warehouse(url="postgresql+psycopg2://user:s3cret@db.example/warehouse")
    assert "s3cret" not in warehouse.describe()


def test_readonly_engine_refuses_writes(warehouse):
    import sqlalchemy as sa

    warehouse.replace("t", day_frame("2013-01-01", 1))
    with pytest.raises(sa.exc.SQLAlchemyError), warehouse.engine(readonly=True).begin() as connection:
        connection.execute(sa.text("DELETE FROM t"))
    assert warehouse.count("t") == 1


def test_two_replacements_of_the_same_day_at_once_both_land_in_turn(postgres_url):
    """A backfill's run and the sensor's run of one day write at once: neither fails, no row twice."""
    import threading
    import time

    import sqlalchemy as sa

    from collab_pipelines.warehouse.tables import TableLayout

    warehouse = Warehouse(url=postgres_url)
    keyed = TableLayout(primary_key=("id",))
    warehouse.replace("t", day_frame("2013-01-01", 5), where={"_partition": ["2013-01-01"]}, layout=keyed)

    def other_writer_waits(connection) -> None:
        # The first writer holds its transaction open until the second is waiting on a lock.
        deadline = time.monotonic() + 30
        # A waiter of this test's database, not of another test's on the shared server.
        # pg_stat_activity is read once per transaction unless its snapshot is cleared.
        query = sa.text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid() AND pid IN "
            "(SELECT pid FROM pg_stat_activity WHERE datname = current_database())"
        )
        while time.monotonic() < deadline:
            connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            if connection.execute(query).scalar():
                return
            time.sleep(0.05)

    errors: list[BaseException] = []

    def second() -> None:
        try:
            warehouse.replace(
                "t", day_frame("2013-01-01", 4), where={"_partition": ["2013-01-01"]}, layout=keyed
            )
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    thread = threading.Thread(target=second)

    def start_second_then_wait(connection) -> None:
        thread.start()
        other_writer_waits(connection)

    warehouse.replace(
        "t",
        day_frame("2013-01-01", 6),
        where={"_partition": ["2013-01-01"]},
        layout=keyed,
        before_commit=start_second_then_wait,
    )
    thread.join(60)
    assert not errors, errors
    # The second writer came after the first committed: its four rows, once each.
    assert sorted(warehouse.read("t")["id"]) == [0, 1, 2, 3]
