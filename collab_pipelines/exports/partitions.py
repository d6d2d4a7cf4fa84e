"""Partition definitions of the daily exports, one per distinct (start, end) in the catalog.

Assets in one job must have equal PartitionsDefinitions; two built from the same
(start, end) are equal, so each asset builds its own from its entry.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from collab_pipelines.exports.catalog import Catalog, ExportSpec, Partitioning

DATE_FORMAT = "%Y-%m-%d"


def daily_partitions(partitioning: Partitioning) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=partitioning.start.strftime(DATE_FORMAT),
        end_date=partitioning.end.strftime(DATE_FORMAT) if partitioning.end else None,
    )


def partition_groups(catalog: Catalog) -> dict[tuple[date, date | None], list[ExportSpec]]:
    """Partitioned exports grouped by their partition window, in catalog order."""
    groups: dict[tuple[date, date | None], list[ExportSpec]] = {}
    for spec in catalog.partitioned():
        assert spec.partition is not None
        groups.setdefault((spec.partition.start, spec.partition.end), []).append(spec)
    return groups


def days_between(start: date, end: date) -> list[str]:
    """Partition keys of the days in [start, end)."""
    return [(start + timedelta(days=i)).strftime(DATE_FORMAT) for i in range((end - start).days)]
