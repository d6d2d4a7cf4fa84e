"""Gates know about noise: a drop beyond tolerance fails only when the paired interval says it is real."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from collab_pipelines.evaluation.contract import SUPPORTED_METRICS, parse_contract
from collab_pipelines.evaluation.gates import (
    _fast_metric,
    _resampled,
    changed_share,
    compare,
    judge,
)

CONTRACT = parse_contract(
    """
[model]
entry_point = "m:build"
[data]
dataset = "d"
target = "y"
time_column = "t"
[evaluation]
metrics = ["roc_auc", "accuracy"]
[gates.roc_auc]
min = 0.6
max_drop = 0.005
""",
    "test",
)


def predictions(scores: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"row_id": np.arange(len(y)), "y_true": y, "y_pred": (scores > 0.5).astype(int), "y_score": scores}
    )


def scored(noise: float, shift_on_positives: float, seed: int, n: int = 3000, independent: bool = False):
    generator = np.random.default_rng(seed)
    y = (generator.random(n) < 0.3).astype(int)
    signal = y * 0.35 + generator.random(n) * 0.6
    baseline = predictions(signal, y)
    # The candidate: the same model perturbed (a shift on the positives moves its AUC down),
    # or an equally good model that ranks rows differently.
    base = y * 0.35 + generator.random(n) * 0.6 if independent else signal
    candidate_scores = base + generator.normal(0, noise, n) - shift_on_positives * y
    return baseline, predictions(candidate_scores, y)


def verdict(baseline: pd.DataFrame, candidate: pd.DataFrame):
    values = {
        "roc_auc": sk.roc_auc_score(candidate["y_true"], candidate["y_score"]),
        "accuracy": sk.accuracy_score(candidate["y_true"], candidate["y_pred"]),
    }
    comparisons = compare(CONTRACT.metrics, candidate, baseline, values, gated=("roc_auc",))
    return judge(CONTRACT, comparisons, "suite:model@base"), comparisons["roc_auc"]


def test_a_drop_beyond_tolerance_but_within_noise_passes():
    baseline, candidate = scored(noise=0.0, shift_on_positives=0.0, seed=0, n=400, independent=True)
    result, roc = verdict(baseline, candidate)
    assert roc.difference < -0.005  # beyond the tolerance ...
    assert roc.ci_low < 0 < roc.ci_high  # ... but the interval includes no change
    assert result.passed
    assert "within noise" in result.reasons[0] and "includes zero" in result.reasons[0]


def test_a_real_drop_beyond_tolerance_fails():
    baseline, candidate = scored(noise=0.02, shift_on_positives=0.08, seed=3)
    result, roc = verdict(baseline, candidate)
    assert roc.ci_high < 0 and -roc.difference > 0.005
    assert not result.passed
    assert "roc_auc dropped by" in result.reasons[0] and "suite:model@base" in result.reasons[0]


def test_a_real_drop_within_tolerance_passes():
    baseline, candidate = scored(noise=0.0, shift_on_positives=0.004, seed=3)
    result, roc = verdict(baseline, candidate)
    assert roc.ci_high < 0 and -roc.difference < 0.005
    assert result.passed and result.reasons == ["every gate passed against suite:model@base"]


def test_the_floor_needs_no_baseline():
    generator = np.random.default_rng(0)
    y = (generator.random(500) < 0.3).astype(int)
    weak = predictions(generator.random(500), y)  # a coin toss: AUC near 0.5
    comparisons = compare(CONTRACT.metrics, weak, None, {"roc_auc": 0.5, "accuracy": 0.5})
    result = judge(CONTRACT, comparisons, None)
    assert not result.passed and result.reasons == ["roc_auc is 0.5000, below the floor of 0.6"]


def test_relative_drops_are_gated_too():
    contract = parse_contract(
        "[model]\nentry_point='m:b'\n[data]\ndataset='d'\ntarget='y'\ntime_column='t'\n"
        "[evaluation]\nmetrics=['roc_auc']\n[gates.roc_auc]\nmax_relative_drop=0.02\n",
        "test",
    )
    baseline, candidate = scored(noise=0.02, shift_on_positives=0.08, seed=3)
    values = {"roc_auc": sk.roc_auc_score(candidate["y_true"], candidate["y_score"])}
    result = judge(contract, compare(("roc_auc",), candidate, baseline, values, gated=("roc_auc",)), "b")
    assert not result.passed and "% against b (allowed 2.0%)" in result.reasons[0]


def test_changed_share_counts_flipped_labels_on_shared_rows():
    baseline, candidate = scored(noise=0.0, shift_on_positives=0.0, seed=1, n=100)
    candidate.loc[:9, "y_pred"] = 1 - candidate.loc[:9, "y_pred"]
    assert changed_share(candidate, baseline) == (0.1, 10, 100)
    assert changed_share(candidate.iloc[50:], baseline) == (0.0, 0, 50)


def sklearn_metric(metric: str, y: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    return {
        "roc_auc": lambda: sk.roc_auc_score(y, scores),
        "average_precision": lambda: sk.average_precision_score(y, scores),
        "neg_log_loss": lambda: -sk.log_loss(y, scores, labels=[0, 1]),
        "neg_brier_score": lambda: -sk.brier_score_loss(y, scores),
        "accuracy": lambda: sk.accuracy_score(y, labels),
        "balanced_accuracy": lambda: sk.balanced_accuracy_score(y, labels),
        "f1": lambda: sk.f1_score(y, labels, zero_division=0),
        "precision": lambda: sk.precision_score(y, labels, zero_division=0),
        "recall": lambda: sk.recall_score(y, labels, zero_division=0),
    }[metric]()


def scored_rows(seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    n = int(generator.integers(20, 300))
    y = (generator.random(n) < 0.4).astype(float)
    y[:2] = [0, 1]
    scores = np.clip(generator.random(n) * 0.7 + y * 0.2, 0.01, 0.99)
    if ties:
        scores = np.round(scores, 1)
    return y, (scores > 0.5).astype(float), scores


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), ties=st.booleans(), metric=st.sampled_from(sorted(SUPPORTED_METRICS)))
def test_the_bootstraps_fast_metrics_agree_with_scikit_learn(seed, ties, metric):
    y, labels, scores = scored_rows(seed, ties)
    expected = sklearn_metric(metric, y, labels, scores)
    assert _fast_metric(metric, y, labels, scores) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), ties=st.booleans(), metric=st.sampled_from(sorted(SUPPORTED_METRICS)))
def test_each_resample_is_scored_as_scikit_learn_scores_its_rows(seed, ties, metric):
    # The bootstrap scores a resample from counts per row (rows drawn twice, rows left out);
    # scikit-learn gets the resample's rows themselves. Both must agree on every resample.
    y, labels, scores = scored_rows(seed, ties)
    samples = np.random.default_rng(seed).integers(0, len(y), (7, len(y)))
    samples[0] = np.flatnonzero(y == 0)[0]  # one class only: AUC and AP are undefined
    values = _resampled(metric, y, (labels, scores), samples)
    for rows, value in zip(samples, values, strict=True):
        if metric in ("roc_auc", "average_precision") and len(set(y[rows])) < 2:
            assert np.isnan(value)
            continue
        assert value == pytest.approx(sklearn_metric(metric, y[rows], labels[rows], scores[rows]), abs=1e-9)
