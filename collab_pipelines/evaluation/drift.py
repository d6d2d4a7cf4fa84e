"""Per-column drift between a champion's training window and a new day, told in words.

No Dagster: numpy, pandas and scipy. The asset check that runs on each predicted day calls
`watched_columns`, `column_drift` and `judge_drift`; the suite's `drift: {columns, warn, error}`
names the columns and the thresholds.

The measure is the population stability index (PSI) of each column: the training window's
shares of its values against the day's, sum((day - train) * ln(day / train)) over bins.
- A numeric column is cut at the training window's quantiles; the outer bins are open, so a
  day's values beyond the training range still count.
- A categorical column (strings, booleans, integers with few values) keeps the training
  window's most frequent categories; the rest are "other", and a category the window never
  had is "unseen".
- An empty value (null) is a bin of its own in both kinds: a column that starts arriving empty
  has drifted.
A KS test (numeric) or a chi-squared test (categorical) p-value rides along for the reader;
the thresholds use the PSI, which does not shrink to "significant" as the samples grow.

Everything here reads the two frames it is handed and nothing else, so its cost follows the
training window and the day, not the history behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import stats

if TYPE_CHECKING:
    from collab_pipelines.evaluation.suites import DriftSpec

BINS = 10
# A day's bin (or category) should expect at least this many of its rows: the PSI of two
# samples from one population is about (bins - 1) / rows, so ten bins on a 200-row day would
# sit near 0.05 with noise alone and cross the usual 0.1 warning on one column in fifty.
MIN_ROWS_PER_BIN = 40
# Integer columns with at most this many values in the training window are categories (a
# weekday, a month, a count of engines); an hour of the day or a count of minutes has an
# order that quantile bins keep, where lumping rare values into "other" would lose it.
MAX_INTEGER_CATEGORIES = 12
# A category's share must move by this much to be named in a column's detail.
MIN_NAMED_CHANGE = 0.05
EMPTY, OTHER, UNSEEN = "(empty)", "(other)", "(unseen)"

Kind = Literal["numeric", "categorical"]
Severity = Literal["ok", "warn", "error"]


class DriftError(ValueError):
    """The frames cannot be compared: a missing column, or a window or day without rows."""


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: Kind
    psi: float
    detail: str
    """How the column moved, in words: "mean 12.3 -> 25.1, 3% -> 40% empty"."""
    test: Literal["ks", "chi-squared"]
    p_value: float | None
    """Of the KS test (numeric) or the chi-squared test (categorical); informative only."""


@dataclass(frozen=True)
class DriftVerdict:
    severity: Severity
    above_warn: tuple[str, ...]
    """Columns whose PSI is above the warning threshold (those above error included)."""
    above_error: tuple[str, ...]
    description: str
    drifts: tuple[ColumnDrift, ...]


def kind_of(values: pd.Series) -> Kind:
    if pd.api.types.is_bool_dtype(values) or not (pd.api.types.is_numeric_dtype(values) or _is_time(values)):
        return "categorical"
    if pd.api.types.is_integer_dtype(values) and values.nunique() <= MAX_INTEGER_CATEGORIES:
        return "categorical"
    return "numeric"


def population_stability_index(
    expected: pd.Series | np.ndarray | Sequence,
    actual: pd.Series | np.ndarray | Sequence,
    bins: int = BINS,
    kind: Kind | None = None,
) -> float:
    """The PSI of `actual` (the new day) against `expected` (the training window)."""
    expected, actual = pd.Series(expected), pd.Series(actual)
    kind = kind or kind_of(expected)
    if kind == "numeric":
        _, train_counts, day_counts = _numeric_counts(_numbers(expected), _numbers(actual), bins)
    else:
        _, train_counts, day_counts = _lumped(*_category_counts(expected, actual), bins)
    return _psi(train_counts, day_counts)


def column_drift(train: pd.DataFrame, day: pd.DataFrame, columns: Iterable[str]) -> list[ColumnDrift]:
    """Each column's drift from the training window to the day, the largest PSI first."""
    columns = list(columns)
    for name, frame in (("training window", train), ("day", day)):
        if frame.empty:
            raise DriftError(f"the {name} has no rows to compare")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DriftError(
                f"columns {missing} are not in the {name} (columns: {sorted(map(str, frame.columns))})"
            )
    bins = max(2, min(BINS, len(day) // MIN_ROWS_PER_BIN))
    drifts = [_one_column(column, train[column], day[column], bins) for column in columns]
    return sorted(drifts, key=lambda d: d.psi, reverse=True)


def watched_columns(frame: pd.DataFrame, spec: DriftSpec, exclude: set[str]) -> list[str]:
    """The columns to watch: the suite's, else every column but `exclude`, ids and times."""
    if spec.columns:
        missing = [c for c in spec.columns if c not in frame.columns]
        if missing:
            raise DriftError(
                f"drift.columns names {missing}, not columns of the dataset "
                f"(columns: {sorted(map(str, frame.columns))})"
            )
        return list(spec.columns)
    watched = []
    for column in frame.columns:
        values = frame[column]
        if column in exclude or _is_time(values):
            # A new day's times lie past the training window by construction: always "drift".
            continue
        if len(values) > 1 and not pd.api.types.is_float_dtype(values) and values.is_unique:
            continue  # an identifier: every row has its own value, there is nothing to compare
        watched.append(column)
    return watched


def judge_drift(drifts: Sequence[ColumnDrift], spec: DriftSpec) -> DriftVerdict:
    """The check's severity and its description: which columns moved, how much, worst first."""
    if not drifts:
        return DriftVerdict("ok", (), (), "no column was watched, so nothing could drift", ())
    ordered = sorted(drifts, key=lambda d: d.psi, reverse=True)
    above_error = tuple(d.column for d in ordered if d.psi > spec.error)
    above_warn = tuple(d.column for d in ordered if d.psi > spec.warn or d.psi > spec.error)
    parts = []
    for d in ordered:
        if d.psi > spec.error:
            parts.append(f"{d.column} moved (PSI {d.psi:.2f} > error {spec.error:g}: {d.detail})")
        elif d.psi > spec.warn:
            parts.append(f"{d.column} moved (PSI {d.psi:.2f} > warn {spec.warn:g}: {d.detail})")
        else:
            parts.append(f"{d.column} within (PSI {d.psi:.2f})")
    severity: Severity = "error" if above_error else "warn" if above_warn else "ok"
    return DriftVerdict(severity, above_warn, above_error, "; ".join(parts), tuple(ordered))


def _one_column(column: str, train: pd.Series, day: pd.Series, bins: int) -> ColumnDrift:
    kind = kind_of(train)
    if kind == "numeric":
        before, after = _numbers(train), _numbers(day)
        _, train_counts, day_counts = _numeric_counts(before, after, bins)
        known_before, known_after = before[~np.isnan(before)], after[~np.isnan(after)]
        p_value = (
            float(stats.ks_2samp(known_before, known_after).pvalue)
            if len(known_before) and len(known_after)
            else None
        )
        return ColumnDrift(
            column,
            kind,
            _psi(train_counts, day_counts),
            _numeric_detail(known_before, known_after, before, after),
            "ks",
            p_value,
        )
    train_by_value, day_by_value = _category_counts(train, day)
    _, train_counts, day_counts = _lumped(train_by_value, day_by_value, bins)
    table = np.vstack([train_counts, day_counts])
    table = table[:, table.sum(axis=0) > 0]
    p_value = float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0
    return ColumnDrift(
        column,
        kind,
        _psi(train_counts, day_counts),
        _categorical_detail(train_by_value, day_by_value),
        "chi-squared",
        p_value,
    )


def _is_time(values: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_timedelta64_dtype(values)


def _numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_timedelta64_dtype(values):
        return (values / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
    if _is_time(values):
        epoch = pd.Timestamp(0, tz=values.dt.tz)
        return ((values - epoch) / pd.Timedelta(seconds=1)).to_numpy(np.float64, na_value=np.nan)
    # A value that is no longer a number (text arriving in a numeric column) counts as empty.
    return pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)


def _numeric_counts(
    train: np.ndarray, day: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interior edges, and the counts per bin of each sample; the last bin holds the empty values."""
    known = train[~np.isnan(train)]
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1])) if len(known) else np.array([])

    def counts(values: np.ndarray) -> np.ndarray:
        empty = np.isnan(values)
        # side="left": a value equal to an edge falls in the bin the edge closes, in both samples.
        binned = np.bincount(np.searchsorted(edges, values[~empty], side="left"), minlength=len(edges) + 1)
        return np.append(binned, empty.sum())

    return edges, counts(train), counts(day)


def _category_counts(train: pd.Series, day: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Rows per value in each sample, nulls counted under EMPTY."""

    def counts(values: pd.Series) -> pd.Series:
        by_value = values.value_counts(dropna=True)
        empty = int(values.isna().sum())
        return pd.concat([by_value, pd.Series({EMPTY: empty})]) if empty else by_value

    return counts(train), counts(day)


def _lumped(train: pd.Series, day: pd.Series, bins: int) -> tuple[list[object], np.ndarray, np.ndarray]:
    """Counts over the window's `bins` most frequent values, OTHER, UNSEEN and EMPTY."""
    ranked = [v for v in train.index if v != EMPTY]  # value_counts ranks by frequency
    kept = ranked[:bins]
    labels = [*kept, OTHER, UNSEEN, EMPTY]

    def counts(by_value: pd.Series, seen: set) -> np.ndarray:
        out = np.zeros(len(labels), dtype=np.int64)
        position = {v: i for i, v in enumerate(kept)}
        for value, count in by_value.items():
            if value == EMPTY:
                out[-1] += count
            elif value in position:
                out[position[value]] += count
            else:
                out[-2 if value not in seen else -3] += count
        return out

    seen = set(ranked)
    return labels, counts(train, seen), counts(day, seen)


def _psi(train_counts: np.ndarray, day_counts: np.ndarray) -> float:
    used = (train_counts + day_counts) > 0
    train_counts, day_counts = train_counts[used], day_counts[used]
    # An empty bin is floored at half a row of its sample: "none seen" means a share below
    # about that, and a fixed tiny floor would let one empty bin outweigh a real shift.
    expected = np.maximum(train_counts, 0.5) / train_counts.sum()
    actual = np.maximum(day_counts, 0.5) / day_counts.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _number(value: float) -> str:
    if not np.isfinite(value):
        return "none"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def _empty_words(before: float, after: float) -> str | None:
    if round(before * 100) == round(after * 100):
        return None  # as empty as before, to the percent shown
    return f"{before:.0%} -> {after:.0%} empty"


def _numeric_detail(
    known_before: np.ndarray, known_after: np.ndarray, before: np.ndarray, after: np.ndarray
) -> str:
    def moments(values: np.ndarray) -> tuple[float, float]:
        if not len(values):
            return np.nan, np.nan
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0

    (mean_b, sd_b), (mean_a, sd_a) = moments(known_before), moments(known_after)
    words = [f"mean {_number(mean_b)} -> {_number(mean_a)}", f"sd {_number(sd_b)} -> {_number(sd_a)}"]
    if len(known_before) and len(known_after):
        outside = np.mean((known_after < known_before.min()) | (known_after > known_before.max()))
        if outside >= 0.005:
            words.append(f"{outside:.0%} of the day outside the training range")
    empty = _empty_words(float(np.isnan(before).mean()), float(np.isnan(after).mean()))
    return ", ".join(words + ([empty] if empty else []))


def _categorical_detail(train: pd.Series, day: pd.Series) -> str:
    train_share, day_share = train / train.sum(), day / day.sum()
    words = []
    unseen = day_share.drop([v for v in day_share.index if v in train_share.index or v == EMPTY])
    if len(unseen):
        value = unseen.idxmax()
        more = f" (and {len(unseen) - 1} more new)" if len(unseen) > 1 else ""
        words.append(f"new category '{value}' is {unseen.max():.0%} of the day{more}")
    # Shares of the known values: a column going empty shrinks every category alike, which
    # says nothing about any one of them.
    known_before = train.drop(EMPTY, errors="ignore")
    known_after = day.drop([EMPTY, *unseen.index], errors="ignore")
    if known_before.sum() and known_after.sum():
        before, after = known_before / known_before.sum(), known_after / known_after.sum()
        changes = after.sub(before, fill_value=0)
        value = changes.abs().idxmax()
        if abs(changes[value]) >= MIN_NAMED_CHANGE:
            words.append(f"'{value}' {before.get(value, 0):.0%} -> {after.get(value, 0):.0%} of known values")
    empty = _empty_words(float(train_share.get(EMPTY, 0)), float(day_share.get(EMPTY, 0)))
    return ", ".join(words + ([empty] if empty else [])) or "shares as in the training window"
