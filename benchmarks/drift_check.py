"""The drift check's cost: it follows the training window and the new day, not the history.

A made-up daily dataset of 10 numeric and 3 categorical columns (`--rows` rows a day) holds a
history before a 60-day training window, then the new day. The check is what the predictions'
asset check runs on each day: `column_drift` (PSI, KS and chi-squared p-values, the words)
and `judge_drift`. The caller hands it the training window only, so it is timed
- with 30 days of history before the window and with 365 days: both figures and the ratio
  (goal about 1);
- against a plain script doing the same work by hand on the same frames: pandas and numpy
  PSIs (deciles of the window, an empty bin, categories aligned by value_counts) and scipy's
  ks_2samp or chi2_contingency per column: both figures and the ratio.
Prints the median over repetitions.

    .venv/bin/python benchmarks/drift_check.py [--rows 1000] [--repeat 15]
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from _goals import judged
from scipy import stats

from collab_pipelines.evaluation.drift import column_drift, judge_drift
from collab_pipelines.evaluation.suites import DriftSpec

WINDOW_DAYS = 60
NUMERIC = [f"x{i}" for i in range(10)]
CATEGORICAL = ["carrier", "origin", "dest"]
COLUMNS = NUMERIC + CATEGORICAL


def history(days: int, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = days * rows
    frame = pd.DataFrame({"day": np.repeat(pd.date_range("2025-01-01", periods=days), rows)})
    for i, column in enumerate(NUMERIC):
        frame[column] = rng.gamma(1 + i, 3.0, n) if i % 2 else rng.normal(i, 1 + i, n)
        frame.loc[rng.random(n) < 0.02, column] = np.nan
    frame["carrier"] = rng.choice([f"C{i}" for i in range(16)], n)
    frame["origin"] = rng.choice(["EWR", "JFK", "LGA"], n)
    frame["dest"] = rng.choice([f"D{i:03d}" for i in range(100)], n)
    return frame


def window_and_day(history_days: int, rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training window and the new day, cut from a history as the caller cuts them."""
    frame = history(history_days + WINDOW_DAYS + 1, rows)
    days = frame["day"].unique()
    window = frame[frame["day"].isin(days[-WINDOW_DAYS - 1 : -1])].reset_index(drop=True)
    return window, frame[frame["day"] == days[-1]].reset_index(drop=True)


def the_check(window: pd.DataFrame, day: pd.DataFrame) -> None:
    judge_drift(column_drift(window, day, COLUMNS), DriftSpec())


def by_hand(window: pd.DataFrame, day: pd.DataFrame) -> None:
    def psi(expected: pd.Series, actual: pd.Series) -> float:
        e, a = expected.align(actual, fill_value=0)
        e, a = np.maximum(e, 0.5) / e.sum(), np.maximum(a, 0.5) / a.sum()
        return float(((a - e) * np.log(a / e)).sum())

    for column in NUMERIC:
        before, after = window[column], day[column]
        edges = np.unique(np.nanquantile(before, np.linspace(0, 1, 11)[1:-1]))
        cut = [-np.inf, *edges, np.inf]
        psi(
            pd.cut(before, cut).value_counts(dropna=False, sort=False),
            pd.cut(after, cut).value_counts(dropna=False, sort=False),
        )
        stats.ks_2samp(before.dropna(), after.dropna())
    for column in CATEGORICAL:
        before = window[column].value_counts(dropna=False)
        after = day[column].value_counts(dropna=False)
        psi(before, after)
        e, a = before.align(after, fill_value=0)
        stats.chi2_contingency(np.vstack([e.to_numpy(), a.to_numpy()]))


def median_seconds(work: Callable[[], None], repeat: int) -> float:
    work()  # warm: imports, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows a day")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    short = window_and_day(30, args.rows)
    year = window_and_day(365, args.rows)
    in_short = median_seconds(lambda: the_check(*short), args.repeat)
    in_year = median_seconds(lambda: the_check(*year), args.repeat)
    plain = median_seconds(lambda: by_hand(*year), args.repeat)
    rows = f"{len(year[0]):,} window rows, {len(year[1]):,} day rows, {len(COLUMNS)} columns"
    print(f"drift check, {WINDOW_DAYS}-day window ({rows}), median of {args.repeat}:")
    print(f"  after 30 days of history:  {in_short * 1000:7.1f} ms")
    print(f"  after 365 days of history: {in_year * 1000:7.1f} ms")
    print(f"  ratio 365/30: {in_year / in_short:.2f} ({judged(in_year / in_short, about_one=True)})")
    print(f"plain pandas/numpy/scipy script, same frames: {plain * 1000:7.1f} ms")
    print(f"  ratio check/plain: {in_year / plain:.2f}")


if __name__ == "__main__":
    main()
