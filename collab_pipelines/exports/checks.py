"""The data-quality checks that run with every export, and their results in words."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import sqlalchemy as sa

from collab_pipelines.exports.catalog import ExportSpec
from collab_pipelines.exports.daily import RunTally
from collab_pipelines.exports.frames import LOADED_AT_COLUMN, PARTITION_COLUMN
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
    tally: RunTally,
    days: Sequence[str] | None,
    warehouse: Warehouse,
) -> list[dg.AssetCheckResult]:
    """The checks of what a run wrote, from its tally and, where needed, the warehouse."""
    levels = _structural_levels(spec)
    results = []
    if levels[SCHEMA_CHECK] != "off":
        results.append(_schema(spec, warehouse))
    if levels[NON_EMPTY_CHECK] != "off":
        results.append(_non_empty(tally, days))
    if levels[PRIMARY_KEY_CHECK] != "off":
        results.append(
            _primary_key(spec, tally, days, warehouse, enforced=levels[PRIMARY_KEY_CHECK] == "error")
        )
    results = [
        result._replace(severity=dg.AssetCheckSeverity.WARN)
        if levels[result.check_name] == "warn"
        else result
        for result in results
    ]
    if spec.checks.max_null_rates:
        results.append(_null_rates(spec, tally))
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


def _non_empty(tally: RunTally, days: Sequence[str] | None) -> dg.AssetCheckResult:
    if days is None:
        passed = tally.rows > 0
        description = f"The table has {tally.rows} rows." if passed else "The export wrote no rows."
        return dg.AssetCheckResult(
            check_name=NON_EMPTY_CHECK, passed=passed, description=description, metadata={"rows": tally.rows}
        )
    empty = [day for day, count in zip(days, tally.counts, strict=True) if count == 0]
    if not empty:
        description = f"All {len(days)} exported day(s) have rows (fewest: {int(tally.counts.min())})."
    else:
        shown = ", ".join(empty[:10]) + (" …" if len(empty) > 10 else "")
        description = f"{len(empty)} of {len(days)} day(s) have no rows: {shown}."
    return dg.AssetCheckResult(
        check_name=NON_EMPTY_CHECK,
        passed=not empty,
        description=description,
        metadata={"empty_days": len(empty), "days": len(days)},
    )


def _primary_key(
    spec: ExportSpec, tally: RunTally, days: Sequence[str] | None, warehouse: Warehouse, *, enforced: bool
) -> dg.AssetCheckResult:
    key = list(spec.primary_key)
    if enforced:
        # At `error` the export refuses a key repeated inside a chunk before writing it, and
        # the table's key (or unique index) refuses one across chunks and runs: the write
        # succeeded, so every key is distinct.
        count, sample = 0, []
    else:
        count, sample = _repeated_keys(spec, days, warehouse)
    if count == 0:
        description = f"All {tally.rows} rows have a distinct ({', '.join(key)})."
    else:
        description = f"{count} row(s) repeat a primary key ({', '.join(key)}); for example {sample}."
    return dg.AssetCheckResult(
        check_name=PRIMARY_KEY_CHECK,
        passed=count == 0,
        description=description,
        metadata={"duplicate_rows": count},
    )


def _repeated_keys(
    spec: ExportSpec, days: Sequence[str] | None, warehouse: Warehouse
) -> tuple[int, list[dict]]:
    """Rows beyond the first of each repeated key among the run's rows, and up to 5 such keys,
    counted by the warehouse: the run holds no key of its own."""
    with warehouse.engine().connect() as connection:
        table = sa.Table(spec.name, sa.MetaData(), autoload_with=connection)
        columns = [table.c[name] for name in spec.primary_key]
        groups = sa.select(*columns, sa.func.count().label("n")).group_by(*columns)
        if days is not None:
            groups = groups.where(table.c[PARTITION_COLUMN].in_(list(days)))
        repeated = groups.having(sa.func.count() > 1).subquery()
        count = connection.execute(sa.select(sa.func.sum(repeated.c.n - 1))).scalar() or 0
        keys = sa.select(*[repeated.c[name] for name in spec.primary_key]).limit(5)
        sample = [dict(row._mapping) for row in connection.execute(keys)]
    return int(count), sample


def _null_rates(spec: ExportSpec, tally: RunTally) -> dg.AssetCheckResult:
    limits = spec.checks.max_null_rates
    rates = tally.null_rates()
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
