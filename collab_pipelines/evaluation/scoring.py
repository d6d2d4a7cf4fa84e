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
