"""The value shapes the OpenAPI document states are the ones the server accepts, value by value."""

import re

import pytest

from collab_pipelines.data_api.openapi import _days_from, value_pattern
from collab_pipelines.data_api.problems import ApiProblem
from collab_pipelines.data_api.query import parse_value
from collab_pipelines.warehouse.datasets import Dataset

TYPES = Dataset(
    name="types",
    description="one column of each type",
    columns={
        "i": "integer",
        "f": "float",
        "s": "string",
        "b": "boolean",
        "d": "date",
        "t": "datetime",
    },
    primary_key=("i",),
    asset_key="types",
)
SAMPLES = {
    "i": ["0", "-12", "+7", "123456789012345678", "1.5", " 1", "1e3", "", "x"],
    "f": ["0", "1.5", "-.5", "2.", "1e3", "+1E-2", "nan", "inf", "1_0", " 1", "", "0x10"],
    "s": ["", "JFK", "a:b", "x y"],
    "b": ["true", "false", "1", "0", "TRUE", "yes", ""],
    "d": ["2013-01-05", "2013-02-28", "2013-13-01", "2013-02-30", "20130105", "2013-1-5", ""],
    "t": [
        "2013-01-05",
        "2013-01-05T06:00",
        "2013-01-05 06:00:00",
        "2013-01-05T06:00:00.123456",
        "2013-01-05T06:00:00Z",
        "2013-01-05T06:00:00-05:00",
        "2013-01-05T24:00",
        "2013-01-05T06",
        "yesterday",
    ],
}


def accepted(column: str, text: str) -> bool:
    try:
        parse_value(TYPES, column, text, "filter")
    except ApiProblem:
        return False
    return True


@pytest.mark.parametrize(("column", "text"), [(c, t) for c, texts in SAMPLES.items() for t in texts])
def test_the_documented_shape_and_the_server_agree(column, text):
    pattern = value_pattern(TYPES.columns[column])
    assert bool(re.fullmatch(pattern, text)) == accepted(column, text), (pattern, text)


def test_partition_days_stay_inside_the_partitions():
    from datetime import date

    days = _days_from(date(2013, 1, 1), date(2015, 1, 1))
    assert re.fullmatch(days, "2013-01-01") and re.fullmatch(days, "2014-12-31")
    assert not re.fullmatch(days, "2012-12-31") and not re.fullmatch(days, "2015-01-01")
    open_ended = _days_from(date(2013, 1, 1))
    assert re.fullmatch(open_ended, "2999-06-30") and not re.fullmatch(open_ended, "2012-06-30")
