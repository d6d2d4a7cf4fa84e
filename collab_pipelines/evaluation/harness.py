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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as sk_metrics

from collab_pipelines.evaluation.contract import SUPPORTED_METRICS, Contract

RUNNER = Path(__file__).with_name("runner.py")


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
            scorer = {
                "accuracy": sk_metrics.accuracy_score,
                "balanced_accuracy": sk_metrics.balanced_accuracy_score,
                "f1": sk_metrics.f1_score,
                "precision": sk_metrics.precision_score,
                "recall": sk_metrics.recall_score,
            }[name]
            kwargs = {"zero_division": 0} if name in ("f1", "precision", "recall") else {}
            results[name] = float(scorer(y_true, y_pred, **kwargs))
    assert set(results) <= set(SUPPORTED_METRICS)
    return results


def write_frames(frames: Mapping[str, pd.DataFrame], directory: Path) -> dict[str, Path]:
    """Hand the data over as Parquet files, written once when many candidates share them."""
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def evaluate(
    sources: Path | Sequence[Path],
    contract: Contract,
    frames: Mapping[str, pd.DataFrame | Path],
    split_at: pd.Timestamp,
    where: str,
    limits: Limits = Limits(),
    params: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run the commit(s) exported at `sources`; `where` names them in every message.

    The first source holds the contract and is the working directory; every source is
    importable, so a suite can combine one person's features with another's model.
    `params` are set on the estimator (or passed to `fit`), for tuning.
    """
    sources = [sources] if isinstance(sources, Path) else list(sources)
    with tempfile.TemporaryDirectory(prefix="collab-eval-") as tmp:
        work = Path(tmp)
        in_memory = {name: frame for name, frame in frames.items() if isinstance(frame, pd.DataFrame)}
        frame_paths = {
            **{name: path for name, path in frames.items() if isinstance(path, Path)},
            **write_frames(in_memory, work),
        }
        job = {
            "sources": [str(source) for source in sources],
            "output": str(work),
            "frames": {name: str(path) for name, path in frame_paths.items()},
            "split_at": split_at.isoformat(),
            "contract": dataclasses.asdict(contract),
            "params": dict(params or {}),
        }
        (work / "job.json").write_text(json.dumps(job, default=str))
        started = time.perf_counter()
        returncode = _run(work / "job.json", sources[0], limits, where)
        seconds = time.perf_counter() - started
        error_file = work / "error.json"
        if error_file.exists():
            error = json.loads(error_file.read_text())
            if error["type"] == "MemoryError":
                raise EvaluationFailed(
                    f"{where}: memory limit of {limits.memory_mb} MB exceeded during {error['stage']}",
                    "limits",
                    error["traceback"],
                )
            raise EvaluationFailed(
                f"{where}: {error['stage']} failed: {error['type']}: {error['message']}",
                error["stage"],
                error["traceback"],
            )
        if returncode != 0:
            raise EvaluationFailed(
                f"{where}: the model process died (exit code {returncode}); "
                f"the memory limit is {limits.memory_mb} MB",
                "limits",
            )
        predictions = pd.read_parquet(work / "predictions.parquet")
        sizes = json.loads((work / "sizes.json").read_text())
    missing = predictions[["y_pred", "y_score"]].isna().any(axis=1)
    if missing.any():
        sample = predictions.loc[missing, "row_id"].head(5).tolist()
        raise EvaluationFailed(
            f"{where}: {int(missing.sum())} of {len(predictions)} predictions are NaN (rows {sample} ...)",
            "output",
        )
    return Outcome(
        predictions,
        compute_metrics(contract.metrics, predictions),
        sizes["train_rows"],
        sizes["test_rows"],
        seconds,
    )


def _run(job: Path, source: Path, limits: Limits, where: str) -> int:
    process = subprocess.Popen(
        # By path and isolated (-I): `-m` would import the whole package (and Dagster) first,
        # seconds per evaluation; the runner needs only pandas and the candidate's code.
        [sys.executable, "-I", "-B", str(RUNNER), str(job), str(limits.memory_mb)],
        cwd=source,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        _, stderr = process.communicate(timeout=limits.seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise EvaluationFailed(
            f"{where}: time limit of {limits.seconds:g} s exceeded; the run was stopped", "limits"
        ) from None
    if process.returncode not in (0, 2):
        tail = stderr.decode(errors="replace")[-2000:]
        raise EvaluationFailed(
            f"{where}: the model process died (exit code {process.returncode}): {tail}", "limits", tail
        )
    return process.returncode
