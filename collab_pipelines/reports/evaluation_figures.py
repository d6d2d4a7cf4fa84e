"""What the evaluation reports compute from one evaluation or from all: tables and series.

The subject (evaluation, baseline, contract) comes from evaluation_view.py. Metrics are
computed by the evaluation's own `scoring.compute_metrics`, so a report and the evaluation
never disagree on what a metric is. No Dagster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from collab_pipelines.reports.evaluation_view import Subject
from collab_pipelines.reports.notebook import ReportInputs
from collab_pipelines.warehouse.engine import count_rows, read_rows

# Columns the project adds to every export; not features a reader needs to see.
_BOOKKEEPING = ("_partition", "_loaded_at")


def metric_table(subject: Subject) -> pd.DataFrame:
    """Every metric with its baseline, change and interval of the change."""
    table = subject.metrics.set_index("metric")[["value", "baseline_value", "ci_low", "ci_high"]].astype(
        float
    )
    table.insert(2, "change", table["value"] - table["baseline_value"])
    return table


def gate_sentences(subject: Subject) -> list[str]:
    """Each gate of the contract, and whether this commit met it, in words."""
    if subject.contract is None or not subject.contract.gates:
        return ["The contract sets no gates."] if subject.contract is not None else []
    table = metric_table(subject)
    baseline = subject.baseline_key or "no baseline"
    sentences = []
    for metric, gate in subject.contract.gates.items():
        if metric not in table.index:
            sentences.append(f"{metric}: not computed, so its gate could not be judged.")
            continue
        row = table.loc[metric]
        interval = (
            f" (90% interval of the change [{row.ci_low:+.4f}, {row.ci_high:+.4f}])"
            if pd.notna(row.ci_low)
            else ""
        )
        if "min" in gate:
            verdict = "met" if row.value >= gate["min"] else "NOT met"
            sentences.append(f"{metric} floor {gate['min']:g}: {verdict}, the value is {row.value:.4f}.")
        for name, allowed, drop in (
            ("max_drop", gate.get("max_drop"), -row.change),
            (
                "max_relative_drop",
                gate.get("max_relative_drop"),
                -row.change / abs(row.baseline_value or np.nan),
            ),
        ):
            if allowed is None:
                continue
            if pd.isna(drop):
                sentences.append(f"{metric} {name} {allowed:g}: not judged, {baseline} to compare with.")
                continue
            real = pd.notna(row.ci_high) and row.ci_high < 0
            if drop <= allowed:
                verdict = "met"
            elif real:
                verdict = "NOT met, and the interval is below zero"
            else:
                verdict = "exceeded, but within noise (the interval includes zero)"
            sentences.append(
                f"{metric} {name} {allowed:g} against {baseline}: {verdict}; change {row.change:+.4f}{interval}."
            )
    return sentences


def _metrics(names, frame: pd.DataFrame) -> dict[str, float]:
    import warnings

    from collab_pipelines.evaluation.scoring import compute_metrics

    scores = {}
    for name in names:
        try:
            with warnings.catch_warnings():
                # A day or a slice with one class has no AUC: a gap in the table, not a warning.
                warnings.simplefilter("ignore")
                scores[name] = compute_metrics([name], frame)[name] if len(frame) else np.nan
        except ValueError:
            scores[name] = np.nan
    return scores


def metric_names(subject: Subject) -> list[str]:
    return list(subject.contract.metrics) if subject.contract else sorted(subject.metrics["metric"])


def per_day(subject: Subject) -> pd.DataFrame:
    """Each metric per day of the test window, for this commit and its baseline on the same rows.

    A metric is given only on the days it can be computed (see `scoring.undefined_reason`); a
    column computable on no day is left out. `attrs["omitted"]` says, for each metric and
    reason, on which days and why, so a gap is explained rather than a NaN."""
    from collab_pipelines.evaluation.scoring import undefined_reason

    names = metric_names(subject)
    rows = []
    missing: dict[tuple[str, str], list[str]] = {}
    shared = set(subject.baseline["row_id"])
    for day, frame in subject.predictions.groupby(pd.to_datetime(subject.predictions["time"]).dt.date):
        row = {"day": pd.Timestamp(day), "rows": len(frame)}
        sides = [("", frame)]
        if shared:
            sides.append(
                (" (baseline)", subject.baseline[subject.baseline["row_id"].isin(set(frame["row_id"]))])
            )
        for suffix, rows_of_side in sides:
            for name in names:
                reason = undefined_reason(name, rows_of_side)
                value = np.nan if reason else _metrics([name], rows_of_side)[name]
                if pd.isna(value):
                    reason = reason or "scikit-learn gave no value"
                    missing.setdefault((name + suffix, reason), []).append(str(day))
                row[name + suffix] = value
        rows.append(row)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).set_index("day")
    table = table.drop(columns=[c for c in table.columns if c != "rows" and table[c].isna().all()])
    table.attrs["omitted"] = [
        f"{column}: omitted on {_days(days, len(table))}: {reason}."
        for (column, reason), days in missing.items()
    ]
    return table


def _days(days: list[str], total: int, shown: int = 5) -> str:
    if len(days) == total:
        return f"all {total} days" if total > 1 else "the one day"
    listed = ", ".join(days[:shown]) + (f" and {len(days) - shown} more" if len(days) > shown else "")
    return f"{len(days)} of {total} days ({listed})"


def rows_with_features(subject: Subject, row_ids) -> pd.DataFrame:
    """The contract dataset's rows for `row_ids` (as strings), features and all."""
    contract = subject.contract
    inputs = ReportInputs({"data": contract.dataset}, partition_keys=["-"])
    column = inputs.partition_column("data")
    where = None
    if column and inputs.partitioning("data") == "daily" and not subject.predictions.empty:
        days = pd.to_datetime(subject.predictions["time"]).dt.strftime("%Y-%m-%d").unique()
        where = {column: sorted(days)}
    if count_rows(inputs.engine, contract.dataset) == 0:
        raise LookupError(f"dataset {contract.dataset!r} is empty or not in the warehouse")
    data = read_rows(inputs.engine, contract.dataset, where=where)
    data = data.drop(columns=[c for c in _BOOKKEEPING if c in data.columns])
    wanted = set(map(str, row_ids))
    return data[data[contract.row_id].astype(str).isin(wanted)].assign(
        row_id=lambda d: d[contract.row_id].astype(str)
    )


def slice_table(subject: Subject, features: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """Metrics per value of each slice column, this commit beside its baseline."""
    names = metric_names(subject)
    rows = []
    for column in subject.contract.slices:
        if column not in features.columns:
            rows.append({"slice": f"{column} (not a column of {subject.contract.dataset})"})
            continue
        values = features.set_index("row_id")[column]
        mine = subject.predictions.assign(value=subject.predictions["row_id"].map(values))
        base = subject.baseline.assign(value=subject.baseline["row_id"].map(values))
        for value in mine["value"].value_counts().head(top).index:
            frame = mine[mine["value"] == value]
            row = {"slice": f"{column} = {value}", "rows": len(frame)}
            for name, score in _metrics(names, frame).items():
                row[name] = score
                if not base.empty:
                    row[f"{name} change"] = score - _metrics([name], base[base["value"] == value])[name]
            rows.append(row)
    return pd.DataFrame(rows)


def changed_predictions(subject: Subject) -> pd.DataFrame:
    """Rows whose predicted label differs from the baseline's, with the effect and score change."""
    both = subject.predictions.merge(subject.baseline, on="row_id", suffixes=("", "_baseline"))
    changed = both[both["y_pred"] != both["y_pred_baseline"]].copy()
    changed["effect"] = np.where(changed["y_pred"] == changed["y_true"], "fixed", "broken")
    changed["score_change"] = changed["y_score"] - changed["y_score_baseline"]
    changed.attrs["shared_rows"] = len(both)
    return changed.reindex(changed["score_change"].abs().sort_values(ascending=False).index)


def commit_trend(results: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluated commit and metric, in evaluation order, with its verdict."""
    order = results.sort_values("evaluated_at")[["evaluation_key", "suite", "status", "evaluated_at"]]
    joined = order.merge(metrics[["evaluation_key", "metric", "value", "ci_low", "ci_high"]], how="left")
    joined["commit"] = joined["evaluation_key"].str.partition(":")[2]
    return joined
