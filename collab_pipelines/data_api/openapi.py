"""The OpenAPI document, one rows operation per dataset, so it says exactly what the server takes.

A rows request is well formed only against its dataset: its columns, their types, its
partitioning. The generic route `/v1/datasets/{name}/rows` serves every dataset; the document
shows it once per dataset instead, with that dataset's column names, the value shape of each
column's type, and only the partition parameters it has. The server checks the same shapes
(query.py), so a request the document calls valid is accepted and one it calls invalid is not.
"""

import copy
import re
from datetime import date

from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.query import OPERATORS
from collab_pipelines.warehouse.datasets import Dataset

ROWS_PATH = "/v1/datasets/{name}/rows"
_YEAR = r"[1-9]\d{3}"
# Valid days only (29 February is left out rather than spelled out per leap year).
_MONTH_DAY = r"((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
_TIME = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?"
_OFFSET = r"(Z|[+-]([01]\d|2[0-3]):[0-5]\d)"
_STRING_ITEM = r"([^\[,\x00][^,\x00]*)?"


def value_pattern(column_type: str, *, aware: bool = False, item: bool = False) -> str:
    """The shape of one filter value of a type (`item`: inside a comma-separated in-list)."""
    day = f"{_YEAR}-{_MONTH_DAY}"
    return {
        "integer": r"[+-]?\d{1,18}",
        "float": r"[+-]?(\d{1,15}(\.\d{0,15})?|\.\d{1,15})([eE][+-]?\d{1,2})?",
        "string": _STRING_ITEM if item else r"[^\x00]*",
        "boolean": "(true|false|1|0)",
        "date": day,
        "datetime": f"{day}([T ]{_TIME}{_OFFSET + '?' if aware else ''})?",
    }[column_type]


def _names(names) -> str:
    return "(" + "|".join(re.escape(n) for n in names) + ")"


def _filter_pattern(dataset: Dataset, columns, aware) -> str:
    alternatives = []
    for column in columns:
        kind = dataset.columns[column]
        ops = ("eq", "ne") if kind == "boolean" else tuple(o for o in OPERATORS if o != "in")
        value = value_pattern(kind, aware=column in aware)
        item = value_pattern(kind, aware=column in aware, item=True)
        alternatives.append(f"{re.escape(column)}:({'|'.join(ops)}):{value}")
        # Bounded repetitions ({0,999}) are more than a pattern-driven generator can take;
        # the server's limits (1,000 values of 4,096 characters) are in the description.
        alternatives.append(f"{re.escape(column)}:in:{item}(,{item})*")
    return "^(" + "|".join(alternatives) + ")$"


def _days_from(start: date | None, end: date | None = None) -> str:
    """Days in [start, end), as a pattern of whole years (a partial first or last year is left out)."""
    if start is None:
        return f"^{_YEAR}-{_MONTH_DAY}$"
    if end is not None:
        first = start.year if (start.month, start.day) == (1, 1) else start.year + 1
        years = [str(y) for y in range(first, end.year)] or [str(start.year)]
        return f"^({'|'.join(years)})-{_MONTH_DAY}$"
    year = start.year
    digits = str(year)
    later = [f"{digits[:i]}[{int(d) + 1}-9]" + r"\d" * (3 - i) for i, d in enumerate(digits) if d != "9"]
    years = "|".join(later + ([digits] if (start.month, start.day) == (1, 1) else []))
    return f"^({years})-{_MONTH_DAY}$"


_EXAMPLE_VALUES = {
    "integer": "1",
    "float": "0.5",
    "string": "a",
    "boolean": "true",
    "date": "2013-01-05",
    "datetime": "2013-01-05T06:00:00",
}


def _examples(dataset: Dataset, columns, start: date | None) -> dict[str, object]:
    """An example of each parameter that this dataset accepts, all of them together."""
    first = columns[0]
    day = (start or date(2013, 1, 1)).isoformat()
    return {
        "columns": ",".join(columns[:3]),
        "sort": f"-{first}",
        "filter": [
            f"{first}:{'eq' if dataset.columns[first] == 'boolean' else 'gte'}:"
            f"{_EXAMPLE_VALUES[dataset.columns[first]]}"
        ],
        "partition": "latest",
        "partition_from": day,
        "partition_to": day,
    }


def per_dataset_rows(schema: dict, catalog: DatasetCatalog, names: tuple[str, ...] | None = None) -> dict:
    """`schema` with one rows operation per dataset beside the generic one (any dataset by name).

    `names` limits it to a token's datasets (default all). A limited document's generic
    operations take their examples from those datasets too, so it names no other.
    """
    generic = schema["paths"].get(ROWS_PATH)
    if generic is None:
        return schema
    names = tuple(sorted(catalog.datasets)) if names is None else names
    if set(names) != set(catalog.datasets):
        _examples_within(schema, catalog, names)
    for name in names:
        dataset = catalog.datasets[name]
        shape = catalog.table_shape(dataset)
        columns = shape.columns if shape else tuple(dataset.columns)
        aware = shape.aware if shape else frozenset()
        operation = copy.deepcopy(generic["get"])
        operation["operationId"] = f"get_rows_{name}"
        operation["summary"] = f"{name}: {dataset.description.split('.')[0][:120]}"
        partitioned = bool(dataset.partition_column) and dataset.partition_column in columns
        daily = dataset.partitioning == "daily"
        start, end = catalog.partition_bounds(dataset) if daily else (None, None)
        examples = _examples(dataset, columns, start)
        kept = []
        for parameter in operation["parameters"]:
            key, schema_of = parameter["name"], parameter["schema"]
            if key == "name" or (key.startswith("partition") and not partitioned):
                continue
            if key in ("partition_from", "partition_to") and not daily:
                continue
            target = schema_of["anyOf"][0] if "anyOf" in schema_of else schema_of
            if key == "columns":
                target["pattern"] = f"^{_names(columns)}(,{_names(columns)})*$"
            elif key == "sort":
                target["pattern"] = f"^[-+]?{_names(columns)}(,[-+]?{_names(columns)})*$"
            elif key == "filter":
                target["items"] = {"type": "string", "pattern": _filter_pattern(dataset, columns, aware)}
            elif key == "partition" and daily:
                target["pattern"] = f"^(latest|{_days_from(start, end)[1:-1]})$"
            elif key in ("partition_from", "partition_to"):
                target["pattern"] = _days_from(start, end)
                target.pop("format", None)
            if key in examples:
                parameter["examples"] = {"this_dataset": {"summary": f"for {name}", "value": examples[key]}}
            kept.append(parameter)
        operation["parameters"] = kept
        schema["paths"][f"/v1/datasets/{name}/rows"] = {"get": operation}
    return schema


_PLACEHOLDER_EXAMPLES = {
    "name": "dataset_name",
    "columns": "column_a,column_b",
    "sort": "-column_a",
    "filter": ["column_a:gte:1"],
}


def _examples_within(schema: dict, catalog: DatasetCatalog, names: tuple[str, ...]) -> None:
    """The generic operations' examples, taken from `names` (placeholders when there is none)."""
    values: dict[str, object] = dict(_PLACEHOLDER_EXAMPLES)
    if names:
        dataset = catalog.datasets[names[0]]
        shape = catalog.table_shape(dataset)
        columns = (shape.columns if shape else ()) or tuple(dataset.columns)
        start = catalog.partition_bounds(dataset)[0] if dataset.partitioning == "daily" else None
        values.update((k, v) for k, v in _examples(dataset, columns, start).items() if k in values)
        values["name"] = names[0]
    for path, item in schema["paths"].items():
        if "{name}" not in path:
            continue
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in values:
                    parameter["examples"] = {
                        "example": {"summary": "example", "value": values[parameter["name"]]}
                    }
