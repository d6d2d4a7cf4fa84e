"""The champion watched day by day: its quality on each predicted day, the columns that moved,
and, when its quality falls, whether the data or the champion is the cause.

No Dagster. One warehouse table, `champion_monitoring`, holds a long row per measure, so one
query charts a suite's quality over calendar time beside its evaluations' quality over commits
(the same evaluation keys, the same metrics and the same 90% bootstrap intervals as
`evaluation_metrics`). The generic drift report reads it.

Telling the data from the code: when the champion's value of a gated metric is below the
suite's floor on a day, the suite's latest passing evaluations (`predictions.challengers`)
are fitted and scored on that same day, with the champion's metrics and floors.
- every challenger falls below the floor too: the data moved, and a new commit is unlikely
  to help until it learns the new data;
- at least one stays above it: the champion is the cause, and the ones that do better are
  named as candidates for promotion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.evaluation.predictions_table import MONITORING, MONITORING_COLUMNS
from collab_pipelines.evaluation.records import PASSED, RESULTS
from collab_pipelines.warehouse.tables import TableLayout

if TYPE_CHECKING:
    from collab_pipelines.evaluation.drift import DriftVerdict
    from collab_pipelines.evaluation.predictions import Quality
    from collab_pipelines.warehouse.resources import Warehouse

# Every write replaces one suite's day; every reader asks for one suite.
_LAYOUT = TableLayout(indexes=(("suite", "day"),))

Cause = Literal["data", "champion", "unknown"]


@dataclass(frozen=True)
class Explanation:
    cause: Cause
    description: str
    better: tuple[str, ...] = ()
    """Challengers that stayed within the band where the champion fell."""


def fallen(quality: Mapping[str, Quality]) -> list[str]:
    """The metrics whose value is below the suite's floor: the champion is out of its band."""
    return [q.metric for q in quality.values() if q.verdict != "within"]


def latest_passing(warehouse: Warehouse, suite: str, exclude: str, count: int) -> list[str]:
    """The suite's `count` most recently evaluated passing keys, other than `exclude`."""
    if count <= 0:
        return []
    engine = warehouse.engine()
    if not sa.inspect(engine).has_table(RESULTS):
        return []
    table = sa.Table(RESULTS, sa.MetaData(), autoload_with=engine)
    query = (
        sa.select(table.c.evaluation_key)
        .where(table.c.suite == suite, table.c.status == PASSED, table.c.evaluation_key != exclude)
        .order_by(table.c.evaluated_at.desc())
        .limit(count)
    )
    with engine.connect() as connection:
        return [row.evaluation_key for row in connection.execute(query)]


def explain(
    champion: Mapping[str, Quality], challengers: Mapping[str, Mapping[str, Quality] | str]
) -> Explanation:
    """Why the champion fell: `challengers` maps each key to its quality on the same day, or to
    the reason it could not be scored (its own failure counts as neither cause)."""
    metrics = fallen(champion)
    words = ", ".join(f"{m} {champion[m].value:.4f} < {champion[m].floor:g}" for m in metrics)
    scored = {key: q for key, q in challengers.items() if not isinstance(q, str) and q}
    if not scored:
        tried = f" ({len(challengers)} could not be scored)" if challengers else ""
        return Explanation(
            "unknown",
            f"the champion fell ({words}); no other passing evaluation was scored on the day{tried}, so the "
            "data and the champion cannot be told apart (predictions.challengers in the suites file)",
        )
    better = tuple(
        key for key, q in scored.items() if not any(m in q and q[m].verdict != "within" for m in metrics)
    )
    if better:
        figures = "; ".join(
            f"{key}: " + ", ".join(f"{m} {scored[key][m].value:.4f}" for m in metrics if m in scored[key])
            for key in better
        )
        return Explanation(
            "champion",
            f"the champion is the cause: it fell ({words}) where {len(better)} of {len(scored)} other "
            f"passing evaluation(s) did not on the same day ({figures})",
            better,
        )
    return Explanation(
        "data",
        f"the data is the cause: the champion fell ({words}) and so did every one of the {len(scored)} "
        "latest passing evaluation(s) scored on the same day",
    )


def monitoring_rows(
    suite: str,
    day: str,
    champion: str,
    quality: Mapping[str, Quality],
    drift: DriftVerdict | None,
    challengers: Mapping[str, Mapping[str, Quality] | str],
    explanation: Explanation | None,
    run_id: str,
) -> pd.DataFrame:
    """The day's rows: the champion's and each challenger's metrics, each watched column's
    drift, and the explanation of a fall."""
    rows = []

    def row(key, role, measure, name, **values):
        rows.append({"evaluation_key": key, "role": role, "measure": measure, "name": name, **values})

    def metrics(key, role, scored):
        for q in scored.values():
            row(
                key,
                role,
                "metric",
                q.metric,
                value=q.value,
                ci_low=q.low,
                ci_high=q.high,
                threshold=q.floor,
                verdict=q.verdict,
                rows=q.rows,
            )

    metrics(champion, "champion", quality)
    for key, scored in challengers.items():
        if isinstance(scored, str):
            row(key, "challenger", "metric", None, verdict="failed", detail=scored)
        else:
            metrics(key, "challenger", scored)
    for column in drift.drifts if drift is not None else ():
        severity = (
            "error"
            if column.column in drift.above_error
            else "warn"
            if column.column in drift.above_warn
            else "ok"
        )
        row(
            champion,
            "champion",
            "drift",
            column.column,
            value=column.psi,
            verdict=severity,
            detail=column.detail,
        )
    if explanation is not None:
        row(
            champion,
            "champion",
            "cause",
            explanation.cause,
            verdict=explanation.cause,
            detail=explanation.description,
        )
    frame = pd.DataFrame(
        rows, columns=[c for c in MONITORING_COLUMNS if c not in ("suite", "day", "run_id", "at")]
    )
    frame.insert(0, "suite", suite)
    frame.insert(1, "day", day)
    frame["run_id"] = run_id
    frame["at"] = datetime.now(UTC).replace(tzinfo=None)
    for column, kind in MONITORING_COLUMNS.items():
        if kind == "float":
            frame[column] = frame[column].astype(float)
        elif kind == "integer":
            frame[column] = frame[column].astype("Int64")
    return frame


def record(warehouse: Warehouse, suite: str, day: str, frame: pd.DataFrame) -> None:
    """Replace the suite's day: predicting a day again (a new champion) rewrites its watch."""
    warehouse.replace(MONITORING, frame, where={"suite": suite, "day": day}, layout=_LAYOUT)
