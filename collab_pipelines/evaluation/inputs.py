"""The data an evaluation trains and scores on, however it was read: split by time and versioned.

No Dagster, no warehouse. The server reads the frames from the warehouse (`data.py`), a data
scientist's try through the data API (`local_try.py`); both end here, so the same rows give the
same split and the same `data_version` wherever they were read.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

# Load times differ between identical exports; they are not part of the data.
LOAD_TIME_COLUMN = "_loaded_at"


@dataclass
class EvaluationData:
    frames: dict[str, pd.DataFrame]
    data_through: str
    split_at: pd.Timestamp
    data_version: str
    rows: dict[str, int]


def conformed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """A dataset's frame as the model receives it: no load time, declared date-times as
    nanosecond timestamps (SQLite hands them over as text, Arrow at microseconds)."""
    frame = frame.drop(columns=[c for c in frame.columns if c == LOAD_TIME_COLUMN])
    for column, kind in columns.items():
        if kind == "datetime" and column in frame.columns:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def evaluation_data(frames: dict[str, pd.DataFrame], through: str, test_days: int) -> EvaluationData:
    """The split (the last `test_days` days through `through` are held out) and the data's version."""
    split_at = pd.Timestamp(date.fromisoformat(through) + timedelta(days=1 - test_days))
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return EvaluationData(
        frames,
        through,
        split_at,
        digest.hexdigest()[:16],
        {name: len(frame) for name, frame in frames.items()},
    )
