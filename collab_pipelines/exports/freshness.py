"""Which days a source holds completely: the input to the schedule and the sensor."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from collab_pipelines.exports.catalog import Catalog, ExportSpec
from collab_pipelines.exports.partitions import days_between
from collab_pipelines.exports.resources import SourceConnectionError, SqlSources


def source_watermark(spec: ExportSpec, catalog: Catalog, sources: SqlSources) -> datetime:
    """The moment up to which the source is complete, as a naive timestamp.

    An entry's `watermark_sql` returns it (the source's own clock, or its newest committed
    change); without one, the wall clock in UTC is the watermark.
    """
    if not spec.watermark_sql:
        return datetime.now(UTC).replace(tzinfo=None)
    value = sources.scalar(catalog.connections[spec.connection], spec.watermark_sql)
    if value is None:
        raise SourceConnectionError(
            f"export {spec.name!r}: watermark_sql returned no value; is the source initialised?"
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise SourceConnectionError(
            f"export {spec.name!r}: watermark_sql returned {value!r}, not a timestamp"
        ) from error
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def complete_days(specs: Sequence[ExportSpec], catalog: Catalog, sources: SqlSources) -> list[str]:
    """Partition keys of the days every export in `specs` holds completely, oldest first.

    A day is complete once its end is at or before the source's watermark.
    """
    first: date = max(spec.partition.start for spec in specs)
    ends = [spec.partition.end for spec in specs if spec.partition.end]
    watermark = min(source_watermark(spec, catalog, sources) for spec in specs)
    # Day d ends at d+1 00:00, so the complete days are [first, the watermark's date).
    stop = watermark.date()
    if ends:
        stop = min(stop, min(ends))
    return days_between(first, stop) if stop > first else []


def contiguous_ranges(days: Sequence[str]) -> list[tuple[str, str]]:
    """Group sorted day keys into (first, last) runs of consecutive days."""
    ranges: list[tuple[str, str]] = []
    for key in days:
        day = date.fromisoformat(key)
        if ranges and date.fromisoformat(ranges[-1][1]) + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], key)
        else:
            ranges.append((key, key))
    return ranges
