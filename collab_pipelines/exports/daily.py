"""Per-day figures of an export, gathered chunk by chunk while the rows stream to the warehouse.

A day's row count, data version, figures and null rates are computed from that day's rows
alone, so they are the same whichever run exported it: the day alone, or inside a year's
range. The data version is order-independent (a hash of the sorted row hashes), so a source
that returns the same rows in another order, or in other chunks, keeps the same version.

A range run never holds its rows: `RunTally.add` keeps, per row, its day (4 bytes), its hash
(8 bytes) and the values of the catalog's `figures` columns (8 bytes each, for the 95th
percentile), plus per-day null counts: about 12 MB for a year of flights, where a chunk of
its rows alone peaks at about 200 MB (docs/exports.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from collab_pipelines.exports.catalog import ExportSpec
from collab_pipelines.exports.frames import LOADED_AT_COLUMN, PARTITION_COLUMN

EMPTY_VERSION = hashlib.sha256(b"empty").hexdigest()[:16]
PREVIEW_ROWS = 10


def _digest(sorted_hashes: np.ndarray) -> str:
    return hashlib.sha256(sorted_hashes.tobytes()).hexdigest()[:16]


class RunTally:
    """What a run wrote, in the few numbers per row that its days' metadata and checks need.

    `days` are the run's partition keys, or None for an unpartitioned export (then the whole
    table is one group).
    """

    def __init__(self, spec: ExportSpec, days: Sequence[str] | None):
        self.spec = spec
        self.days = list(days) if days is not None else None
        self._groups = self.days if self.days is not None else [""]
        self._position = {day: index for index, day in enumerate(self._groups)}
        self._codes: list[np.ndarray] = []
        self._hashes: list[np.ndarray] = []
        self._figures: list[np.ndarray] = []
        self._null_columns = list(spec.checks.max_null_rates)
        self.null_counts = np.zeros((len(self._groups), len(self._null_columns)), dtype=np.int64)
        self.counts = np.zeros(len(self._groups), dtype=np.int64)
        self.preview: pd.DataFrame | None = None

    @property
    def rows(self) -> int:
        return int(self.counts.sum())

    def add(self, chunk: pd.DataFrame) -> None:
        """Count one chunk of coerced rows (with `_partition` when the export is partitioned)."""
        data = chunk.drop(columns=[LOADED_AT_COLUMN], errors="ignore")
        if self.preview is None or len(self.preview) < PREVIEW_ROWS:
            head = data.drop(columns=[PARTITION_COLUMN], errors="ignore").head(PREVIEW_ROWS)
            self.preview = (
                head if self.preview is None else pd.concat([self.preview, head]).head(PREVIEW_ROWS)
            )
        if data.empty:
            return
        if self.days is None:
            codes = np.zeros(len(data), dtype=np.int32)
        else:
            codes = data[PARTITION_COLUMN].map(self._position).to_numpy(dtype=np.int32)
        self._codes.append(codes)
        self._hashes.append(pd.util.hash_pandas_object(data, index=False).to_numpy())
        if self.spec.figures:
            self._figures.append(data[list(self.spec.figures)].to_numpy(dtype=np.float64, na_value=np.nan))
        self.counts += np.bincount(codes, minlength=len(self._groups))
        if self._null_columns:
            missing = data[self._null_columns].isna().to_numpy()
            np.add.at(self.null_counts, codes, missing.astype(np.int64))

    def _ordered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows sorted by group, then hash: each group's hashes come out sorted."""
        if not self._codes:
            return np.empty(0, np.int32), np.empty(0, np.uint64), None
        codes, hashes = np.concatenate(self._codes), np.concatenate(self._hashes)
        order = np.lexsort((hashes, codes))
        figures = np.concatenate(self._figures)[order] if self._figures else None
        return codes[order], hashes[order], figures

    def group_metadata(self) -> list[dict]:
        """Per group (day), in the order of `days`: row count, data version, figures, null rates."""
        codes, hashes, figures = self._ordered()
        bounds = np.searchsorted(codes, np.arange(len(self._groups) + 1))
        result = []
        for index in range(len(self._groups)):
            start, end = bounds[index], bounds[index + 1]
            count = int(self.counts[index])
            metadata: dict = {
                "dagster/row_count": count,
                "data_version": _digest(hashes[start:end]) if end > start else EMPTY_VERSION,
            }
            if figures is not None and end > start:
                values = figures[start:end]
                for column_index, column in enumerate(self.spec.figures):
                    column_values = values[:, column_index]
                    column_values = column_values[~np.isnan(column_values)]
                    if len(column_values):
                        # Numeric metadata is what the UI plots across partitions.
                        metadata[f"mean/{column}"] = float(column_values.mean())
                        metadata[f"p95/{column}"] = float(np.quantile(column_values, 0.95))
            if count:
                for column_index, column in enumerate(self._null_columns):
                    metadata[f"null_rate/{column}"] = float(self.null_counts[index, column_index] / count)
            result.append(metadata)
        return result

    def null_rates(self) -> dict[str, float]:
        """Each null-rate column's share of missing values over the whole run."""
        rows = self.rows
        totals = self.null_counts.sum(axis=0)
        return {
            column: float(totals[index] / rows) if rows else 0.0
            for index, column in enumerate(self._null_columns)
        }
