"""The data-quality checks that run with every export, and their results in words."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from collab_pipelines.exports.catalog import ExportSpec
from collab_pipelines.exports.frames import (
    LOADED_AT_COLUMN,
    PARTITION_COLUMN,
    null_rates,
)
from collab_pipelines.warehouse.resources import Warehouse

SCHEMA_CHECK = "schema_matches_catalog"
NON_EMPTY_CHECK = "non_empty"
PRIMARY_KEY_CHECK = "primary_key_unique"
NULL_RATES_CHECK = "null_rates_within_limits"


def check_specs(spec: ExportSpec, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The checks the catalog enables for an export. Blocking checks stop downstream runs."""
    descriptions = {
        SCHEMA_CHECK: "The warehouse table has exactly the catalog's columns.",
        NON_EMPTY_CHECK: "Every exported day (or the whole table) has at least one row.",
        PRIMARY_KEY_CHECK: f"No two rows share the primary key ({', '.join(spec.primary_key)}).",
    }
    specs = [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=level == "error", description=descriptions[name])
        for name, level in _structural_levels(spec).items()
        if level != "off"
    ]
    if spec.checks.max_null_rates:
        specs.append(
            dg.AssetCheckSpec(
                NULL_RATES_CHECK,
                asset=asset_key,
                description="The share of missing values stays under the catalog's limit per column.",
            )
        )
    return specs


def run_checks(
    spec: ExportSpec,
    frame: pd.DataFrame,
    days: Sequence[str] | None,
    warehouse: Warehouse,
) -> list[dg.AssetCheckResult]:
    levels = _structural_levels(spec)
    results = []
    if levels[SCHEMA_CHECK] != "off":
        results.append(_schema(spec, warehouse))
    if levels[NON_EMPTY_CHECK] != "off":
        results.append(_non_empty(frame, days))
    if levels[PRIMARY_KEY_CHECK] != "off":
        results.append(_primary_key(spec, frame))
    results = [
        result._replace(severity=dg.AssetCheckSeverity.WARN)
        if levels[result.check_name] == "warn"
        else result
        for result in results
    ]
    if spec.checks.max_null_rates:
        results.append(_null_rates(spec, frame))
    return results


def _structural_levels(spec: ExportSpec) -> dict[str, str]:
    return {
        SCHEMA_CHECK: spec.checks.schema_check,
        NON_EMPTY_CHECK: spec.checks.non_empty,
        PRIMARY_KEY_CHECK: spec.checks.primary_key_unique,
    }


def _schema(spec: ExportSpec, warehouse: Warehouse) -> dg.AssetCheckResult:
    actual = {c["name"] for c in sa.inspect(warehouse.engine()).get_columns(spec.name)}
    expected = set(spec.columns) | {LOADED_AT_COLUMN}
    if spec.is_partitioned:
        expected.add(PARTITION_COLUMN)
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    passed = not missing and not extra
    if passed:
        description = f"The warehouse table {spec.name!r} has the catalog's {len(spec.columns)} columns."
    else:
        description = (
            f"The warehouse table {spec.name!r} differs from the catalog: missing {missing or 'none'}, "
            f"not in the catalog {extra or 'none'}. Drop or migrate the table."
        )
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        passed=passed,
        description=description,
        metadata={"missing": missing, "unexpected": extra},
    )


def _non_empty(frame: pd.DataFrame, days: Sequence[str] | None) -> dg.AssetCheckResult:
    if days is None:
        passed = len(frame) > 0
        description = f"The table has {len(frame)} rows." if passed else "The export wrote no rows."
        return dg.AssetCheckResult(
            check_name=NON_EMPTY_CHECK, passed=passed, description=description, metadata={"rows": len(frame)}
        )
    counts = frame[PARTITION_COLUMN].value_counts() if len(frame) else pd.Series(dtype=int)
    empty = [day for day in days if counts.get(day, 0) == 0]
    if not empty:
        description = f"All {len(days)} exported day(s) have rows (fewest: {int(counts.min())})."
    else:
        shown = ", ".join(empty[:10]) + (" …" if len(empty) > 10 else "")
        description = f"{len(empty)} of {len(days)} day(s) have no rows: {shown}."
    return dg.AssetCheckResult(
        check_name=NON_EMPTY_CHECK,
        passed=not empty,
        description=description,
        metadata={"empty_days": len(empty), "days": len(days)},
    )


def _primary_key(spec: ExportSpec, frame: pd.DataFrame) -> dg.AssetCheckResult:
    key = list(spec.primary_key)
    duplicated = frame[frame.duplicated(key, keep=False)] if len(frame) else frame
    count = int(duplicated.duplicated(key).sum()) if len(duplicated) else 0
    if count == 0:
        description = f"All {len(frame)} rows have a distinct ({', '.join(key)})."
    else:
        sample = duplicated[key].drop_duplicates().head(5).to_dict("records")
        description = f"{count} row(s) repeat a primary key ({', '.join(key)}); for example {sample}."
    return dg.AssetCheckResult(
        check_name=PRIMARY_KEY_CHECK,
        passed=count == 0,
        description=description,
        metadata={"duplicate_rows": count},
    )


def _null_rates(spec: ExportSpec, frame: pd.DataFrame) -> dg.AssetCheckResult:
    limits = spec.checks.max_null_rates
    rates = null_rates(frame, limits)
    over = {c: r for c, r in rates.items() if r > limits[c]}
    if not over:
        description = "Null rates within limits: " + ", ".join(
            f"{c} {rates[c]:.1%} (max {limits[c]:.1%})" for c in limits
        )
    else:
        description = "Null rates over the limit: " + ", ".join(
            f"{c} {r:.1%} (max {limits[c]:.1%})" for c, r in over.items()
        )
    return dg.AssetCheckResult(
        check_name=NULL_RATES_CHECK,
        passed=not over,
        description=description,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={f"null_rate/{c}": dg.MetadataValue.float(r) for c, r in rates.items()},
    )
