"""The data an evaluation trains and scores on: the latest complete exports, split by time.

The same inputs always give the same split and the same `data_version`, which is recorded
with every result so it can be reproduced (`data_through` pins the data to a day).
"""

from datetime import date

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from collab_pipelines.datasets import all_datasets
from collab_pipelines.evaluation.contract import Contract
from collab_pipelines.evaluation.inputs import EvaluationData, conformed, evaluation_data
from collab_pipelines.warehouse.resources import Warehouse


class EvaluationDataError(ValueError):
    """The contract asks for data the warehouse does not have."""


def load_evaluation_data(
    contract: Contract,
    warehouse: Warehouse,
    where: str,
    data_through: str | None = None,
    since: str | None = None,
) -> EvaluationData:
    """The contract's datasets through `data_through` (default: the newest exported day); with
    `since`, the daily ones from that day only (a training window, read without the history)."""
    datasets = all_datasets()
    for name in contract.datasets:
        if name not in datasets:
            raise EvaluationDataError(
                f"{where}: data.dataset/join names {name!r}, which is not a dataset; known: {sorted(datasets)}"
            )
        if not warehouse.has_table(name):
            raise EvaluationDataError(f"{where}: dataset {name!r} has never been exported to the warehouse")
    main = datasets[contract.dataset]
    if main.partition_column is None or main.partitioning != "daily":
        raise EvaluationDataError(f"{where}: data.dataset {contract.dataset!r} is not partitioned by day")
    engine = warehouse.engine(readonly=True)
    with engine.connect() as connection:
        latest = connection.execute(
            sa.text(f'SELECT MAX("{main.partition_column}") FROM "{main.name}"')
        ).scalar()
    if latest is None:
        raise EvaluationDataError(f"{where}: dataset {contract.dataset!r} is empty")
    through = data_through or latest
    try:
        date.fromisoformat(through)
    except ValueError:
        raise EvaluationDataError(f"{where}: data_through {through!r} is not a day like 2013-01-31") from None

    frames = {}
    for name in contract.datasets:
        dataset = datasets[name]
        # A stable row order makes the data version depend on the rows only.
        order = ", ".join(f'"{column}"' for column in dataset.primary_key)
        if dataset.partitioning == "daily":
            lower = f' AND "{dataset.partition_column}" >= :since' if since else ""
            query = sa.text(
                f'SELECT * FROM "{name}" WHERE "{dataset.partition_column}" <= :through{lower} ORDER BY {order}'
            )
            params = {"through": through, **({"since": since} if since else {})}
        else:
            query, params = sa.text(f'SELECT * FROM "{name}" ORDER BY {order}'), {}
        with engine.connect() as connection:
            frames[name] = conformed(read_frame(connection, query, params), dataset.columns)
    return evaluation_data(frames, through, contract.test_days)


def read_frame(connection: sa.Connection, query: sa.TextClause, params: dict) -> pd.DataFrame:
    """The frame `pd.read_sql` gives, at a fraction of its cost: the driver's rows as they are
    (no SQLAlchemy row objects), each column converted by Arrow in one call instead of value
    by value. Tested against `pd.read_sql` on SQLite and PostgreSQL."""
    result = connection.execute(query, params)
    try:
        names = list(result.keys())
        rows = result.cursor.fetchall()
    finally:
        result.close()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    try:
        return pa.table([pa.array(column) for column in columns], names=names).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # A column mixing types (SQLite keeps whatever it was given): pandas' own inference.
        return pd.read_sql(query, connection, params=params)
