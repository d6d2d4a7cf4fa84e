"""Per-day figures of an export, in one vectorised pass over the written frame.

A day's row count, data version, figures and null rates are computed from that day's rows
alone, so they are the same whichever run exported it: the day alone, or inside a year's
range. The data version is order-independent (a hash of the sorted row hashes), so a source
that returns the same rows in another order keeps the same version.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from collab_pipelines.exports.catalog import ExportSpec
from collab_pipelines.exports.frames import LOADED_AT_COLUMN, PARTITION_COLUMN

EMPTY_VERSION = hashlib.sha256(b"empty").hexdigest()[:16]


def _digest(row_hashes: np.ndarray) -> str:
    return hashlib.sha256(np.sort(row_hashes).tobytes()).hexdigest()[:16]


def content_hash(frame: pd.DataFrame) -> str:
    """A data version that changes exactly when the exported rows change (not their order)."""
    data = frame.drop(columns=[LOADED_AT_COLUMN], errors="ignore")
    if data.empty:
        return EMPTY_VERSION
    return _digest(pd.util.hash_pandas_object(data, index=False).to_numpy())


def day_versions(frame: pd.DataFrame, days: list[str]) -> dict[str, str]:
    """Each day's own data version; a day without rows gets the empty version."""
    versions = dict.fromkeys(days, EMPTY_VERSION)
    data = frame.drop(columns=[LOADED_AT_COLUMN], errors="ignore")
    if data.empty:
        return versions
    row_hashes = pd.util.hash_pandas_object(data, index=False).to_numpy()
    parts = data[PARTITION_COLUMN].to_numpy()
    order = np.lexsort((row_hashes, parts))
    parts, row_hashes = parts[order], row_hashes[order]
    bounds = [0, *(np.flatnonzero(parts[1:] != parts[:-1]) + 1).tolist(), len(parts)]
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        versions[parts[start]] = hashlib.sha256(row_hashes[start:end].tobytes()).hexdigest()[:16]
    return versions


def figures(spec: ExportSpec, frame: pd.DataFrame) -> dict[str, float]:
    """Figures of a whole frame (one day, or an unpartitioned table)."""
    result: dict[str, float] = {}
    for column in spec.figures:
        values = frame[column].dropna()
        if len(values):
            # Numeric metadata is what the UI plots across partitions.
            result[f"mean/{column}"] = float(values.mean())
            result[f"p95/{column}"] = float(values.quantile(0.95))
    if len(frame):
        for column in spec.checks.max_null_rates:
            result[f"null_rate/{column}"] = float(frame[column].isna().mean())
    return result


def day_figures(spec: ExportSpec, frame: pd.DataFrame, days: list[str]) -> dict[str, dict]:
    """Per day: `dagster/row_count`, `dagster/data_version` and the figures, grouped once."""
    versions = day_versions(frame, days)
    counts = frame[PARTITION_COLUMN].value_counts() if len(frame) else pd.Series(dtype=int)
    groups = frame.groupby(PARTITION_COLUMN, sort=False) if len(frame) else None
    stats: dict[str, pd.DataFrame] = {}
    if groups is not None and spec.figures:
        numeric = groups[list(spec.figures)]
        stats = {"mean": numeric.mean(), "p95": numeric.quantile(0.95)}
    nulls = (
        frame[list(spec.checks.max_null_rates)].isna().groupby(frame[PARTITION_COLUMN]).mean()
        if groups is not None and spec.checks.max_null_rates
        else None
    )
    result = {}
    for day in days:
        metadata: dict = {"dagster/row_count": int(counts.get(day, 0)), "data_version": versions[day]}
        for kind, table in stats.items():
            for column in spec.figures:
                value = table[column].get(day) if day in table.index else None
                if value is not None and not pd.isna(value):
                    metadata[f"{kind}/{column}"] = float(value)
        if nulls is not None and day in nulls.index:
            for column in spec.checks.max_null_rates:
                metadata[f"null_rate/{column}"] = float(nulls.at[day, column])
        result[day] = metadata
    return result
