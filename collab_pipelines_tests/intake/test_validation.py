"""The validator on good and bad files of every supported format."""

import io

import pandas as pd
import pytest

from collab_pipelines.intake.validation import validate_upload
from collab_pipelines_tests.intake.conftest import GOOD_CSV, weather_type

WEATHER_OBSERVATIONS = weather_type()


def good_frame() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(GOOD_CSV))


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
def test_every_format_gives_the_same_typed_rows(suffix, tmp_path):
    frame = good_frame()
    if suffix == ".csv":
        data = GOOD_CSV.encode()
    elif suffix == ".xlsx":
        frame.to_excel(tmp_path / "f.xlsx", index=False)
        data = (tmp_path / "f.xlsx").read_bytes()
    else:
        frame.to_parquet(tmp_path / "f.parquet")
        data = (tmp_path / "f.parquet").read_bytes()
    rows, report = validate_upload(data, f"obs{suffix}", WEATHER_OBSERVATIONS)
    assert report.ok, report.problems
    assert rows["origin"].tolist() == ["JFK", "LGA", "EWR"]
    assert rows["temp"].tolist() == [39.0, 39.9, 39.0]
    assert str(rows["observed_at"].iloc[2]) == "2013-01-01 02:00:00"


@pytest.mark.parametrize(
    ("data", "name", "problem"),
    [
        (b"", "a.csv", "the file is empty"),
        (b"x" * (WEATHER_OBSERVATIONS.max_bytes + 1), "a.csv", "the limit for weather_observations is"),
        (
            "origin,observed_at,temp\nJFK,2013-01-01 01:00,3°\n".encode("latin-1"),
            "a.csv",
            "encoding: the file is not UTF-8 (byte 0xb0 on line 2)",
        ),
        (b"origin,observed_at,temp\n", "a.csv", "has a header but no rows"),
        (b"origin,when,temp\nJFK,2013-01-01,3\n", "a.csv", "header: missing required column(s) observed_at"),
        (b"origin,observed_at,temp,colour\nJFK,2013-01-01,3,red\n", "a.csv", "unknown column(s) colour"),
        (b"not an excel file", "a.xlsx", "cannot be read as XLSX"),
        (b"origin,observed_at,temp\nJFK,2013-01-01,3\n", "a.json", "unsupported file type .json"),
    ],
)
def test_bad_files_are_explained(data, name, problem):
    rows, report = validate_upload(data, name, WEATHER_OBSERVATIONS)
    assert not report.ok and rows.empty
    assert any(problem in p for p in report.problems), report.problems


def test_row_errors_name_the_row_and_column():
    data = (
        b"origin,observed_at,temp,humid\n"
        b"JFK,2013-01-01 01:00,39,59\n"
        b"XYZ,2013-01-01 01:00,hot,159\n"
        b"LGA,,40,60\n"
        b"JFK,2013-01-01 01:00,41,61\n"
    )
    rows, report = validate_upload(data, "obs.csv", WEATHER_OBSERVATIONS)
    assert rows.empty
    assert set(report.problems) == {
        "row 3, column origin: 'XYZ' is not one of EWR, JFK, LGA",
        "row 4, column observed_at: value missing",
        "row 3, column temp: 'hot' is not a number",
        "row 3, column humid: 159 is outside [0, 100]",
        "row 5: repeats the key (origin=JFK, observed_at=2013-01-01 01:00:00) of an earlier row",
    }
    assert "row 3, column temp" in report.text() and "nothing from it was loaded" in report.text()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        # Cut mid-row: the last row has fewer fields than the header, and no line break.
        (
            b"origin,observed_at,temp,humid\nJFK,2013-01-01 01:00,39,59\nJFK,2013-01-03 15:00,3",
            "row 3: 3 field(s), but the header has 4; the file ends in this row, so it was probably cut short",
        ),
        # Cut mid-field: every field is there, but the last row has no line break after it.
        (
            b"origin,observed_at,temp\nJFK,2013-01-01 01:00,39\nJFK,2013-01-03 15:00,3",
            "row 3: the file ends in the middle of this row (no line break after it)",
        ),
        (
            b"origin,observed_at,temp\nJFK,2013-01-01 01:00,39,12\nLGA,2013-01-01 01:00,40\n",
            "row 2: 4 field(s), but the header has 3",
        ),
        (
            b"origin,observed_at,temp\nJFK,2013-01-01 01:00,39\n\nLGA,2013-01-01 01:00\n",
            "row 4: 2 field(s), but the header has 3",
        ),
        (
            b'origin,observed_at,temp\n"JFK","2013-01-01 01:00",39\n"LGA,2013-01-01 01:00",40\n',
            "row 3: 2 field(s), but the header has 3",
        ),
    ],
    ids=["cut-mid-row", "cut-mid-field", "extra-field", "short-row-after-blank", "quoted"],
)
def test_truncated_and_ragged_rows_are_refused_naming_the_row(data, problem):
    rows, report = validate_upload(data, "obs.csv", WEATHER_OBSERVATIONS)
    assert rows.empty and not report.ok
    assert any(problem in p for p in report.problems), report.problems


def test_integer_columns_refuse_fractions_and_keep_whole_numbers():
    data = b"origin,observed_at,temp,station\nJFK,2013-01-01 01:00,39,7\nLGA,2013-01-01 01:00,40,1.5\n"
    rows, report = validate_upload(data, "obs.csv", WEATHER_OBSERVATIONS)
    assert report.problems == ["row 3, column station: 1.5 is not a whole number"]
    rows, report = validate_upload(data.replace(b"1.5", b"8"), "obs.csv", WEATHER_OBSERVATIONS)
    assert report.ok and str(rows["station"].dtype) == "Int64" and rows["station"].tolist() == [7, 8]


def test_times_with_an_offset_or_in_another_format_are_refused():
    data = b"origin,observed_at,temp\nJFK,2013-01-01T01:00+05:00,39\nLGA,01/02/2013 01:00,40\n"
    rows, report = validate_upload(data, "obs.csv", WEATHER_OBSERVATIONS)
    assert report.problems == [
        "row 2, column observed_at: '2013-01-01T01:00+05:00' has a time-zone offset; give local times without one",
        "row 3, column observed_at: '01/02/2013 01:00' is not a date and time (YYYY-MM-DD HH:MM)",
    ]
