"""What a report template imports: its upstream data, loaded the same way in Jupyter and in Dagster.

A template's second cell is, by convention,

    inputs = report_inputs(datasets, partition_key, partition_keys=partition_keys,
                           warehouse_url=warehouse_url)

With the parameters cell's defaults (`partition_key = None`) this reads the newest
partition in the warehouse, so the notebook runs top to bottom in a plain kernel. Under
Dagster, the same names arrive with the run's values and the same line loads the run's data.
With `COLLAB_REPORT_SOURCE=api` and no warehouse URL (what `collab-report preview` sets), the
same line reads the same rows through the data API instead (sources.py).
Nothing here imports Dagster's execution machinery, so a plain kernel starts quickly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from collab_pipelines.reports.sources import ReportInputError, source_for

__all__ = ["ReportInputError", "ReportInputs", "days_in_range", "missing_inputs", "report_inputs"]

FILE_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl")
DAY = "%Y-%m-%d"


def is_file_source(source: str) -> bool:
    return str(source).lower().endswith(FILE_SUFFIXES)


def days_in_range(first: str, last: str) -> list[str]:
    """Partition keys of the days from `first` to `last`, both included."""
    start = datetime.strptime(first, DAY).date()
    end = datetime.strptime(last, DAY).date()
    if end < start:
        raise ReportInputError(f"the date range {first}..{last} ends before it starts")
    return [(start + timedelta(days=i)).strftime(DAY) for i in range((end - start).days + 1)]


class ReportInputs(Mapping):
    """The data a report reads: `inputs[role]` is a DataFrame for the bound partitions.

    Roles are the keys of `datasets`; each names a warehouse dataset, or a CSV, Parquet or
    JSON file (an upload to diagnose). The keys are partitions of `partitioned_by`'s dataset
    (by default the only partitioned kind among them, else the first role); datasets
    partitioned the same way are filtered to them, the others are read whole. Frames are read
    on first use and kept. `source` ("warehouse", "api" or a source object, sources.py) says
    where the rows come from; by default the warehouse.
    """

    def __init__(
        self,
        datasets: Mapping[str, str],
        partition_key: str | None = None,
        partition_keys: Sequence[str] | None = None,
        warehouse_url: str | None = None,
        partitioned_by: str | None = None,
        source: str | object | None = None,
    ):
        if not datasets:
            raise ReportInputError("no datasets: pass a mapping of role to dataset name")
        self.datasets = dict(datasets)
        self.source = source_for(warehouse_url, source)
        self._frames: dict[str, pd.DataFrame] = {}
        self._registry = None
        if partitioned_by is not None and partitioned_by not in self.datasets:
            raise ReportInputError(f"partitioned_by={partitioned_by!r} is not one of {sorted(self.datasets)}")
        primary = partitioned_by or self._only_partitioned_role() or next(iter(self.datasets))
        if partition_keys:
            self.partition_keys = [str(k) for k in partition_keys]
        elif partition_key is not None:
            self.partition_keys = [str(partition_key)]
        else:
            latest = self.latest_partition(primary)
            self.partition_keys = [latest] if latest is not None else []
        self.partition_key = (
            str(partition_key)
            if partition_key is not None
            else (self.partition_keys[-1] if self.partition_keys else None)
        )
        self.primary = primary

    def _only_partitioned_role(self) -> str | None:
        kinds: dict[str, str] = {}
        for role in self.datasets:
            kind = self.partitioning(role)
            if kind is not None:
                kinds.setdefault(kind, role)
        return next(iter(kinds.values())) if len(kinds) == 1 else None

    # Mapping protocol: inputs["flights"], list(inputs), len(inputs)
    def __getitem__(self, role: str) -> pd.DataFrame:
        if role not in self.datasets:
            raise KeyError(f"no input {role!r}; this report reads {sorted(self.datasets)}")
        if role not in self._frames:
            self._frames[role] = self.load(role)
        return self._frames[role]

    def __iter__(self) -> Iterator[str]:
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def __repr__(self) -> str:
        return (
            f"ReportInputs(datasets={self.datasets!r}, partition_keys={self.partition_keys!r}, "
            f"source={self.source.describe()!r})"
        )

    @property
    def engine(self):
        """The warehouse's engine, for a template that queries it directly (not through the API)."""
        if not hasattr(self.source, "engine"):
            raise ReportInputError(
                f"this report reads {self.source.describe()}, not a warehouse: use inputs[role] or inputs.load()"
            )
        return self.source.engine

    @property
    def warehouse_url(self) -> str | None:
        return getattr(self.source, "url", None)

    def registry(self) -> Mapping[str, Any]:
        if self._registry is None:
            self._registry = self.source.registry()
        return self._registry

    def dataset(self, role: str):
        """The registry entry of a role's dataset; None for files and unregistered tables."""
        source = self.datasets[role]
        return None if is_file_source(source) else self.registry().get(source)

    def partition_column(self, role: str) -> str | None:
        dataset = self.dataset(role)
        return dataset.partition_column if dataset is not None else None

    def partitioning(self, role: str) -> str | None:
        dataset = self.dataset(role)
        return dataset.partitioning if dataset is not None else None

    def is_bound(self, role: str) -> bool:
        """Whether `inputs[role]` is filtered to the bound partitions."""
        if is_file_source(self.datasets[role]):
            return False
        if role == self.primary:
            return self.partition_column(role) is not None
        return self.partition_column(role) is not None and self.partitioning(role) == self.partitioning(
            self.primary
        )

    def load(
        self,
        role: str,
        partition_keys: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a role: the bound partitions by default, other `partition_keys` if given.

        `where` maps columns to a value or a list of values, e.g. `{"id": [1, 2]}`.
        """
        source = self.datasets[role]
        if is_file_source(source):
            return _read_file(Path(source))
        conditions = dict(where or {})
        column = self.partition_column(role)
        if partition_keys is not None:
            if column is None:
                raise ReportInputError(f"dataset {source!r} is not partitioned")
            conditions[column] = list(partition_keys)
        elif self.is_bound(role):
            conditions[column] = self.partition_keys
        return self._read_table(source, conditions, columns)

    def whole(self, role: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every row of a role's dataset, whatever the bound partitions (trends across them)."""
        source = self.datasets[role]
        return _read_file(Path(source)) if is_file_source(source) else self._read_table(source, {}, columns)

    def before(self, role: str, days: int) -> pd.DataFrame:
        """The `days` daily partitions just before the first bound one (for drift baselines)."""
        if self.partitioning(role) != "daily" or not self.partition_keys:
            raise ReportInputError(f"{role!r} ({self.datasets[role]}) has no daily partitions")
        first = datetime.strptime(self.partition_keys[0], DAY).date()
        keys = [(first - timedelta(days=d)).strftime(DAY) for d in range(days, 0, -1)]
        return self.load(role, partition_keys=keys)

    def latest_partition(self, role: str) -> str | None:
        """The newest partition of a role's dataset, or None if it has none."""
        dataset = self.dataset(role)
        if dataset is None or dataset.partition_column is None:
            return None
        return self.source.latest(dataset)

    def _read_table(
        self, table: str, where: Mapping[str, Any], columns: Sequence[str] | None
    ) -> pd.DataFrame:
        return self.source.read(table, where, columns)

    def missing(self) -> list[str]:
        """What is missing of the bound partitions: one reason per upstream asset, else [].

        An upstream asset writes all its tables at once, so its partition is missing only if
        none of its bound tables has a row for it (a failed evaluation writes only a result).
        """
        by_writer: dict[str, list[str]] = {}
        for role, source in self.datasets.items():
            if is_file_source(source):
                if not Path(source).exists():
                    return [f"file {source} does not exist"]
                continue
            dataset = self.dataset(role)
            by_writer.setdefault(dataset.asset_key if dataset else source, []).append(role)
        reasons = []
        for writer, roles in by_writer.items():
            tables = [self.datasets[role] for role in roles]
            bound = [role for role in roles if self.is_bound(role)]
            if bound and not self.partition_keys:
                reasons.append(f"datasets {tables} have no partitions yet (asset {writer!r})")
                continue
            for key in self.partition_keys if bound else [None]:
                found = 0
                for role in bound or roles:
                    column = self.partition_column(role) if bound else None
                    where = {column: [key]} if column else None
                    found += self.source.count(self.datasets[role], where)
                if not found:
                    where = f" for partition {key!r}" if key is not None else ""
                    reasons.append(f"dataset {' / '.join(tables)} has no rows{where} (asset {writer!r})")
        return reasons


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ReportInputError(f"file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=suffix == ".jsonl")


def report_inputs(
    datasets: Mapping[str, str],
    partition_key: str | None = None,
    partition_keys: Sequence[str] | None = None,
    warehouse_url: str | None = None,
    partitioned_by: str | None = None,
    source: str | object | None = None,
) -> ReportInputs:
    """The inputs of a report; see ReportInputs. None keys mean the newest partition."""
    return ReportInputs(datasets, partition_key, partition_keys, warehouse_url, partitioned_by, source)


def missing_inputs(
    datasets: Mapping[str, str],
    partition_keys: Sequence[str] | None,
    warehouse_url: str | None = None,
    source: str | object | None = None,
) -> list[str]:
    """Why a report of these partitions would be empty, naming dataset and partition; [] if not."""
    try:
        inputs = ReportInputs(
            datasets, partition_keys=partition_keys, warehouse_url=warehouse_url, source=source
        )
        return inputs.missing()
    except ReportInputError as error:
        return [str(error)]
