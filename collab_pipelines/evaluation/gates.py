"""Regression gates: a commit against its baseline, on the same test rows, aware of noise.

Plain numpy and scikit-learn, no Dagster. A drop beyond a gate's tolerance fails only when
it is also real: the paired bootstrap interval of the metric difference lies below zero.
A drop inside the noise passes, and the verdict says so.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from collab_pipelines.evaluation.contract import Contract
from collab_pipelines.evaluation.scoring import compute_metrics

BOOTSTRAP_SAMPLES = 200
CONFIDENCE = 0.90


@dataclass(frozen=True)
class Comparison:
    metric: str
    value: float
    baseline_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    """The bootstrap interval of value - baseline_value on the shared test rows."""

    @property
    def difference(self) -> float | None:
        return None if self.baseline_value is None else self.value - self.baseline_value


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str]
    comparisons: dict[str, Comparison]


def paired_rows(current: pd.DataFrame, baseline: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows both predicted, in the same order."""
    # Stored predictions key rows as text; fresh ones keep the dataset's type.
    current = current.assign(row_id=current["row_id"].astype(str))
    baseline = baseline.assign(row_id=baseline["row_id"].astype(str))
    shared = current.merge(baseline[["row_id", "y_pred", "y_score"]], on="row_id", suffixes=("", "_base"))
    base = shared[["row_id", "y_true", "y_pred_base", "y_score_base"]].rename(
        columns={"y_pred_base": "y_pred", "y_score_base": "y_score"}
    )
    return shared[["row_id", "y_true", "y_pred", "y_score"]], base


def compare(
    metrics: tuple[str, ...],
    current: pd.DataFrame,
    baseline: pd.DataFrame | None,
    values: dict[str, float],
    gated: tuple[str, ...] = (),
    seed: int = 0,
) -> dict[str, Comparison]:
    """Each metric against the baseline on the shared rows; bootstrap intervals for `gated` ones."""
    if baseline is None:
        return {m: Comparison(m, values[m]) for m in metrics}
    mine, theirs = paired_rows(current, baseline)
    if mine.empty:
        return {m: Comparison(m, values[m]) for m in metrics}
    point_mine, point_theirs = compute_metrics(metrics, mine), compute_metrics(metrics, theirs)
    y = mine["y_true"].to_numpy(dtype=float)
    arrays = {
        "mine": (mine["y_pred"].to_numpy(dtype=float), mine["y_score"].to_numpy(dtype=float)),
        "theirs": (theirs["y_pred"].to_numpy(dtype=float), theirs["y_score"].to_numpy(dtype=float)),
    }
    samples = np.random.default_rng(seed).integers(0, len(y), (BOOTSTRAP_SAMPLES, len(y)))
    tail = (1 - CONFIDENCE) / 2 * 100
    comparisons = {}
    for metric in metrics:
        low = high = None
        if metric in gated:
            # Both commits are scored on the same resampled rows: the noise of the test set
            # cancels out of the difference, which is what makes the interval narrow enough.
            differences = _resampled(metric, y, arrays["mine"], samples) - _resampled(
                metric, y, arrays["theirs"], samples
            )
            differences = differences[~np.isnan(differences)]
            if len(differences):
                low, high = (float(v) for v in np.percentile(differences, [tail, 100 - tail]))
        comparisons[metric] = Comparison(metric, point_mine[metric], point_theirs[metric], low, high)
    return comparisons


# Resamples scored at once: a few million values per chunk, whatever the test set's size.
_CHUNK_VALUES = 2_000_000


def _resampled(
    metric: str, y: np.ndarray, predicted: tuple[np.ndarray, np.ndarray], samples: np.ndarray
) -> np.ndarray:
    """The metric on each resample (one row of `samples`, indexes of test rows, per resample)."""
    labels, scores = predicted
    step = max(1, _CHUNK_VALUES // max(1, samples.shape[1]))
    return np.concatenate(
        [
            _sample_metrics(metric, y, labels, scores, samples[start : start + step])
            for start in range(0, len(samples), step)
        ]
    )


def _fast_metric(metric: str, y: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """The metric of the rows as they are: one "resample" holding every row once."""
    return float(_sample_metrics(metric, y, labels, scores, np.arange(len(y))[None, :])[0])


def _sample_metrics(
    metric: str, y: np.ndarray, labels: np.ndarray, scores: np.ndarray, samples: np.ndarray
) -> np.ndarray:
    """The metric on each row of `samples`, in plain numpy: scikit-learn's input checks cost
    more than the metric itself, and the bootstrap computes it hundreds of times."""
    positives = (y == 1).astype(float)
    size = samples.shape[1]
    n_pos = positives[samples].sum(axis=1)
    n_neg = size - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric in ("roc_auc", "average_precision"):
            # A resample is a count per test row: one sort of the scores serves every resample.
            flat = (np.arange(len(samples))[:, None] * len(y) + samples).ravel()
            counts = np.bincount(flat, minlength=len(samples) * len(y)).reshape(len(samples), len(y))
            ascending = metric == "roc_auc"
            order = np.argsort(scores if ascending else -scores, kind="mergesort")
            # Tied scores share a threshold: the metric steps once per distinct score.
            ties = np.r_[0, np.flatnonzero(np.diff(scores[order])) + 1]
            in_order = counts[:, order]
            pos = np.add.reduceat(in_order * positives[order], ties, axis=1)
            every = np.add.reduceat(in_order, ties, axis=1)
            if ascending:
                # Each positive against the negatives scored lower, a tie counting one half.
                neg = every - pos
                below = np.cumsum(neg, axis=1) - neg
                auc = (pos * (below + neg / 2)).sum(axis=1) / (n_pos * n_neg)
                return np.where((n_pos == 0) | (n_neg == 0), np.nan, auc)
            true_positives, predicted = np.cumsum(pos, axis=1), np.cumsum(every, axis=1)
            precision = np.where(predicted > 0, true_positives / predicted, 0.0)
            return np.where(n_pos == 0, np.nan, (pos * precision).sum(axis=1) / n_pos)
        if metric == "neg_log_loss":
            clipped = np.clip(scores, 1e-15, 1 - 1e-15)
            return (y * np.log(clipped) + (1 - y) * np.log(1 - clipped))[samples].mean(axis=1)
        if metric == "neg_brier_score":
            return -((scores - y) ** 2)[samples].mean(axis=1)
        predicted = (labels == 1).astype(float)
        tp = (predicted * positives)[samples].sum(axis=1)
        fp = (predicted * (1 - positives))[samples].sum(axis=1)
        fn, tn = n_pos - tp, n_neg - fp
        if metric == "accuracy":
            return (tp + tn) / size
        if metric == "balanced_accuracy":
            # The mean recall of the classes present, as scikit-learn computes it.
            present = (n_pos > 0).astype(float) + (n_neg > 0)
            return (np.where(n_pos > 0, tp / n_pos, 0.0) + np.where(n_neg > 0, tn / n_neg, 0.0)) / present
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        if metric == "precision":
            return precision
        if metric == "recall":
            return recall
        return np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)


def intervals(
    metrics: tuple[str, ...], predictions: pd.DataFrame, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Each metric's bootstrap interval on these rows alone (a day's quality, no baseline)."""
    y = predictions["y_true"].to_numpy(dtype=float)
    predicted = (predictions["y_pred"].to_numpy(dtype=float), predictions["y_score"].to_numpy(dtype=float))
    samples = np.random.default_rng(seed).integers(0, len(y), (BOOTSTRAP_SAMPLES, len(y)))
    tail = (1 - CONFIDENCE) / 2 * 100
    result = {}
    for metric in metrics:
        values = _resampled(metric, y, predicted, samples)
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        result[metric] = (float(low), float(high))
    return result


def judge(contract: Contract, comparisons: dict[str, Comparison], baseline_key: str | None) -> GateVerdict:
    reasons, passed = [], True
    for metric, gate in contract.gates.items():
        c = comparisons[metric]
        if gate.min is not None and not c.value >= gate.min:
            passed = False
            reasons.append(f"{metric} is {c.value:.4f}, below the floor of {gate.min:g}")
        if c.difference is None:
            continue
        real = c.ci_high is not None and c.ci_high < 0
        interval = f"{CONFIDENCE:.0%} interval of the change [{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        if gate.max_drop is not None and -c.difference > gate.max_drop:
            if real:
                passed = False
                reasons.append(
                    f"{metric} dropped by {-c.difference:.4f} against {baseline_key} "
                    f"(allowed {gate.max_drop:g}); {interval} is below zero"
                )
            else:
                reasons.append(
                    f"{metric} dropped by {-c.difference:.4f} against {baseline_key}, beyond "
                    f"{gate.max_drop:g}, but within noise: {interval} includes zero"
                )
        if gate.max_relative_drop is not None and c.baseline_value:
            relative = -c.difference / abs(c.baseline_value)
            if relative > gate.max_relative_drop:
                if real:
                    passed = False
                    reasons.append(
                        f"{metric} dropped by {relative:.1%} against {baseline_key} "
                        f"(allowed {gate.max_relative_drop:.1%}); {interval} is below zero"
                    )
                else:
                    reasons.append(
                        f"{metric} dropped by {relative:.1%} against {baseline_key}, "
                        f"but within noise: {interval} includes zero"
                    )
    if passed and not reasons:
        reasons.append(
            "every gate passed"
            + (f" against {baseline_key}" if baseline_key else " (no baseline yet: floors only)")
        )
    return GateVerdict(passed, reasons, comparisons)


def changed_share(current: pd.DataFrame, baseline: pd.DataFrame) -> tuple[float, int, int]:
    """The share of shared rows whose predicted label changed: (share, changed, shared)."""
    mine, theirs = paired_rows(current, baseline)
    if mine.empty:
        return 0.0, 0, 0
    changed = int((mine["y_pred"].to_numpy() != theirs["y_pred"].to_numpy()).sum())
    return changed / len(mine), changed, len(mine)


@dataclass(frozen=True)
class DiffVerdict:
    """The prediction-diff gate: how many predicted labels changed against the baseline."""

    outcome: str
    """'none' (no baseline or no limit), 'within', 'advisory breach' or 'blocking breach'."""
    sentence: str
    share: float | None = None
    changed: int | None = None
    shared: int | None = None

    @property
    def breached(self) -> bool:
        return self.outcome.endswith("breach")


def diff_gate(
    contract: Contract, changed: tuple[float, int, int] | None, baseline_key: str | None
) -> DiffVerdict:
    if changed is None:
        return DiffVerdict("none", "no baseline predictions to compare with")
    share, count, shared = changed
    limit = contract.max_changed_predictions
    words = f"{count} of {shared} predicted labels ({share:.1%}) changed against {baseline_key}"
    if limit is None:
        return DiffVerdict("none", words + "; no limit is set", share, count, shared)
    if share <= limit:
        return DiffVerdict("within", f"{words}; allowed {limit:.0%}", share, count, shared)
    mode = contract.prediction_diff
    return DiffVerdict(
        f"{mode} breach",
        f"{words}, beyond the allowed {limit:.0%} ({mode} prediction_diff gate)",
        share,
        count,
        shared,
    )


def with_diff(verdict: GateVerdict, diff: DiffVerdict) -> GateVerdict:
    """The verdict with the diff gate's breach in its reasons; a blocking breach fails it."""
    if not diff.breached:
        return verdict
    blocking = diff.outcome == "blocking breach"
    reasons = (
        [r for r in verdict.reasons if not r.startswith("every gate passed")] if blocking else verdict.reasons
    )
    return GateVerdict(verdict.passed and not blocking, [*reasons, diff.sentence], verdict.comparisons)
