"""Metrics from labels and scores, named as scikit-learn names its scorers. No Dagster."""

import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from collab_pipelines.evaluation.contract import SUPPORTED_METRICS

_LABEL_SCORERS = {
    "accuracy": sk_metrics.accuracy_score,
    "balanced_accuracy": sk_metrics.balanced_accuracy_score,
    "f1": sk_metrics.f1_score,
    "precision": sk_metrics.precision_score,
    "recall": sk_metrics.recall_score,
}


# What each metric divides by or compares, so it is a number only where that exists: a day with
# one row (or one class of label) has no AUC, and a recall with no positive label would be
# scikit-learn's zero_division fill-in, not a recall.
_NEEDS = {
    "roc_auc": "both",
    "average_precision": "both",
    "balanced_accuracy": "both",
    "recall": "positive label",
    "precision": "positive prediction",
    "f1": "positive label or prediction",
}


def undefined_reason(name: str, predictions: pd.DataFrame) -> str | None:
    """Why `name` cannot be computed on these rows (None when it can), in words for a reader."""
    if predictions.empty:
        return "no rows"
    y_true, y_pred = predictions["y_true"], predictions["y_pred"]
    needs = _NEEDS.get(name)
    if needs == "both" and y_true.nunique() < 2:
        return f"a single class of label, and {name} needs both"
    positive_label, positive_prediction = bool((y_true == 1).any()), bool((y_pred == 1).any())
    if needs == "positive label" and not positive_label:
        return f"no positive label, which {name} divides by"
    if needs == "positive prediction" and not positive_prediction:
        return f"no positive prediction, which {name} divides by"
    if needs == "positive label or prediction" and not (positive_label or positive_prediction):
        return f"no positive label or prediction, which {name} divides by"
    return None


def compute_metrics(names, predictions: pd.DataFrame) -> dict[str, float]:
    y_true, y_pred, y_score = predictions["y_true"], predictions["y_pred"], predictions["y_score"]
    results = {}
    for name in names:
        if name == "roc_auc":
            results[name] = (
                float(sk_metrics.roc_auc_score(y_true, y_score)) if y_true.nunique() > 1 else float("nan")
            )
        elif name == "average_precision":
            results[name] = float(sk_metrics.average_precision_score(y_true, y_score))
        elif name == "neg_log_loss":
            results[name] = -float(
                sk_metrics.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1])
            )
        elif name == "neg_brier_score":
            results[name] = -float(sk_metrics.brier_score_loss(y_true, y_score))
        else:
            kwargs = {"zero_division": 0} if name in ("f1", "precision", "recall") else {}
            results[name] = float(_LABEL_SCORERS[name](y_true, y_pred, **kwargs))
    assert set(results) <= set(SUPPORTED_METRICS)
    return results
