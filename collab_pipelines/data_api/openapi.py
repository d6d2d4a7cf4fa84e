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

from collab_pipelines.data_api import query as q
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


# The same values as a cursor holds them (JSON), for a cursor of the example's sort.
_CURSOR_VALUES = {**_EXAMPLE_VALUES, "integer": 1, "float": 0.5, "boolean": True}
ALONE = "this_dataset"


def _examples(dataset: Dataset, columns, start: date | None) -> dict[str, dict[str, object]]:
    """Named examples of the rows parameters, from this dataset's own columns and partitioning.

    Swagger UI's "Try it out" and schemathesis put one example of every parameter into one
    request, pairing examples of the same name, so each named set must be valid together. A
    cursor is one for the example's sort. `partition` excludes `partition_from`/`partition_to`,
    so a daily dataset has two sets, `latest` and `range`; a null example leaves the parameter
    out of its set (and out of every set where the dataset has no such parameter).
    """
    first = columns[0]
    kind = dataset.columns[first]
    sort = f"-{first}"
    keys = q.parse_sort(dataset, columns, sort)
    examples: dict[str, dict[str, object]] = {
        "columns": {ALONE: ",".join(columns[:3])},
        "sort": {ALONE: sort},
        "filter": {ALONE: [f"{first}:{'eq' if kind == 'boolean' else 'gte'}:{_EXAMPLE_VALUES[kind]}"]},
        "cursor": {ALONE: q.encode_cursor(keys, [_CURSOR_VALUES[dataset.columns[k.column]] for k in keys])},
        "partition": {ALONE: None},
        "partition_from": {ALONE: None},
        "partition_to": {ALONE: None},
    }
    if dataset.partition_column and dataset.partition_column in columns:
        if dataset.partitioning == "daily":
            day = (start or date(2013, 1, 1)).isoformat()
            examples["partition"] = {"latest": "latest", "range": None}
            examples["partition_from"] = {"latest": None, "range": day}
            examples["partition_to"] = {"latest": None, "range": day}
        else:
            examples["partition"] = {"latest": "latest"}
    return examples


def _openapi_examples(named: dict[str, object], dataset: str) -> dict:
    return {
        name: {"summary": f"{dataset}: {name.replace('_', ' ')}", "value": value}
        for name, value in named.items()
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
                parameter["examples"] = _openapi_examples(examples[key], name)
            kept.append(parameter)
        operation["parameters"] = kept
        schema["paths"][f"/v1/datasets/{name}/rows"] = {"get": operation}
    return schema


_PLACEHOLDER_EXAMPLES = {
    "name": {ALONE: "dataset_name"},
    "columns": {ALONE: "column_a,column_b"},
    "sort": {ALONE: "-column_a"},
    "filter": {ALONE: ["column_a:gte:1"]},
    "cursor": {ALONE: None},
    "partition": {ALONE: None},
    "partition_from": {ALONE: None},
    "partition_to": {ALONE: None},
}


def _examples_within(schema: dict, catalog: DatasetCatalog, names: tuple[str, ...]) -> None:
    """The generic operations' examples, all of one dataset of `names` (placeholders when there is none).

    Examples of several datasets in one operation would be paired across datasets: one
    dataset's columns asked of another.
    """
    values = dict(_PLACEHOLDER_EXAMPLES)
    label = "example"
    if names:
        dataset = catalog.datasets[names[0]]
        shape = catalog.table_shape(dataset)
        columns = (shape.columns if shape else ()) or tuple(dataset.columns)
        start = catalog.partition_bounds(dataset)[0] if dataset.partitioning == "daily" else None
        values.update(_examples(dataset, columns, start))
        values["name"] = {ALONE: names[0]}
        label = names[0]
    for path, item in schema["paths"].items():
        if "{name}" not in path:
            continue
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in values:
                    parameter["examples"] = _openapi_examples(values[parameter["name"]], label)
