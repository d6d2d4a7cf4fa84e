"""Train and score one commit in a separate process, with a time limit and a memory limit.

No Dagster here: the asset calls `evaluate`, and so do the tuning job and the benchmark.
Every way a commit can fail becomes an `EvaluationFailed` whose message says what and where,
with the data scientist's traceback.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from collab_pipelines.evaluation.contract import SUPPORTED_METRICS, Contract


class EvaluationFailed(RuntimeError):
    """A commit could not be evaluated. `stage` is import, features, fit, predict, limits or output."""

    def __init__(self, message: str, stage: str, traceback_text: str = ""):
        super().__init__(message)
        self.stage = stage
        self.traceback_text = traceback_text


@dataclass(frozen=True)
class Limits:
    seconds: float = 600
    memory_mb: int = 4096


@dataclass
class Outcome:
    predictions: pd.DataFrame
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    seconds: float


def compute_metrics(names, predictions: pd.DataFrame) -> dict[str, float]:
    y_true, y_pred, y_score = predictions["y_true"], predictions["y_pred"], predictions["y_score"]
    results = {}
    for name in names:
        if name == "roc_auc":
            results[name] = float(sk_metrics.roc_auc_score(y_true, y_score)) if y_true.nunique() > 1 else float("nan")
        elif name == "average_precision":
            results[name] = float(sk_metrics.average_precision_score(y_true, y_score))
        elif name == "neg_log_loss":
            results[name] = -float(sk_metrics.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]))
        elif name == "neg_brier_score":
            results[name] = -float(sk_metrics.brier_score_loss(y_true, y_score))
        else:
            scorer = {"accuracy": sk_metrics.accuracy_score, "balanced_accuracy": sk_metrics.balanced_accuracy_score,
                      "f1": sk_metrics.f1_score, "precision": sk_metrics.precision_score,
                      "recall": sk_metrics.recall_score}[name]
            kwargs = {"zero_division": 0} if name in ("f1", "precision", "recall") else {}
            results[name] = float(scorer(y_true, y_pred, **kwargs))
    assert set(results) <= set(SUPPORTED_METRICS)
    return results


def evaluate(
    source: Path, contract: Contract, frames: dict[str, pd.DataFrame], split_at: pd.Timestamp,
    where: str, limits: Limits = Limits(),
) -> Outcome:
    """Run the commit exported at `source`; `where` names it in every message."""
    with tempfile.TemporaryDirectory(prefix="collab-eval-") as tmp:
        work = Path(tmp)
        frame_paths = {}
        for name, frame in frames.items():
            frame_paths[name] = str(work / f"{name}.parquet")
            frame.to_parquet(frame_paths[name], index=False)
        job = {
            "source": str(source), "output": str(work), "frames": frame_paths,
            "split_at": split_at.isoformat(), "contract": dataclasses.asdict(contract),
        }
        (work / "job.json").write_text(json.dumps(job, default=str))
        started = time.perf_counter()
        returncode = _run(work / "job.json", source, limits, where)
        seconds = time.perf_counter() - started
        error_file = work / "error.json"
        if error_file.exists():
            error = json.loads(error_file.read_text())
            if error["type"] == "MemoryError":
                raise EvaluationFailed(
                    f"{where}: memory limit of {limits.memory_mb} MB exceeded during {error['stage']}",
                    "limits", error["traceback"])
            raise EvaluationFailed(
                f"{where}: {error['stage']} failed: {error['type']}: {error['message']}",
                error["stage"], error["traceback"])
        if returncode != 0:
            raise EvaluationFailed(
                f"{where}: the model process died (exit code {returncode}); "
                f"the memory limit is {limits.memory_mb} MB", "limits")
        predictions = pd.read_parquet(work / "predictions.parquet")
        sizes = json.loads((work / "sizes.json").read_text())
    missing = predictions[["y_pred", "y_score"]].isna().any(axis=1)
    if missing.any():
        sample = predictions.loc[missing, "row_id"].head(5).tolist()
        raise EvaluationFailed(
            f"{where}: {int(missing.sum())} of {len(predictions)} predictions are NaN (rows {sample} ...)", "output")
    return Outcome(predictions, compute_metrics(contract.metrics, predictions),
                   sizes["train_rows"], sizes["test_rows"], seconds)


def _run(job: Path, source: Path, limits: Limits, where: str) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "collab_pipelines.evaluation.runner", str(job), str(limits.memory_mb)],
        cwd=source, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"},
    )
    try:
        _, stderr = process.communicate(timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise EvaluationFailed(f"{where}: time limit of {limits.seconds:g} s exceeded; the run was stopped",
                               "limits") from None
    if process.returncode not in (0, 2):
        tail = stderr.decode(errors="replace")[-2000:]
        raise EvaluationFailed(f"{where}: the model process died (exit code {process.returncode}): {tail}",
                               "limits", tail)
    return process.returncode
