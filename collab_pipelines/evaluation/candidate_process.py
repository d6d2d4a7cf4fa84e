"""Start the candidate's process: one commit trained and scored, with limits, its own
environment and nothing of the project's secrets.

No Dagster here: the asset calls `evaluate`, and so do the tuning job and the benchmark.
Every way a commit can fail becomes an `EvaluationFailed` whose message says what and where,
with the data scientist's traceback. The process's output is forwarded line by line as it
runs (the asset sends it to the run's logs).
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from collab_pipelines.evaluation.contract import Contract
from collab_pipelines.evaluation.environments import EnvironmentBuildError, python_for
from collab_pipelines.evaluation.scoring import compute_metrics
from collab_pipelines.evaluation.suites import Limits

CANDIDATE_SCRIPT = Path(__file__).with_name("candidate_script.py")
# Variables the candidate's process always gets; everything else of the parent's
# environment (Dagster's, the warehouse's and the API's secrets) stays out.
_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
MAX_FORWARDED_LINES = 2000
DEFAULT_LIMITS = Limits()

OutputLog = Callable[[str, str], None]
"""(stream name, line) -> None; called from reader threads while the process runs."""


class EvaluationFailed(RuntimeError):
    """A commit could not be evaluated. `stage` is checkout, contract, environment, import,
    features, fit, predict, limits or output."""

    def __init__(self, message: str, stage: str, traceback_text: str = ""):
        super().__init__(message)
        self.stage = stage
        self.traceback_text = traceback_text


@dataclass
class Outcome:
    predictions: pd.DataFrame
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    seconds: float
    reported: dict[str, Any] = field(default_factory=dict)
    """Values the model reported itself through `collab_eval.report(...)`."""


def write_frames(frames: Mapping[str, pd.DataFrame], directory: Path) -> dict[str, Path]:
    """Hand the data over as Parquet files, written once when many candidates share them."""
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def candidate_environment(
    work: Path, passed_through: Sequence[str] = (), python: str = sys.executable
) -> dict[str, str]:
    """The whole environment of the candidate's process: what it needs, and what its contract names."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {
        # The interpreter's own bin first: the commit's environment's, when it has one.
        "PATH": os.pathsep.join([str(Path(python).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        **dict.fromkeys(_THREADS, "1"),
    }
    for name in passed_through:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def evaluate(
    sources: Path | Sequence[Path],
    contract: Contract,
    frames: Mapping[str, pd.DataFrame | Path],
    split_at: pd.Timestamp,
    where: str,
    limits: Limits = DEFAULT_LIMITS,
    params: Mapping[str, Any] | None = None,
    *,
    output: OutputLog | None = None,
    environments: Path | None = None,
) -> Outcome:
    """Run the commit(s) exported at `sources`; `where` names them in every message.

    The first source holds the contract and is the working directory; every source is
    importable, so a suite can combine one person's features with another's model.
    `params` are set on the estimator (or passed to `fit`), for tuning. `environments` is
    the per-commit environment cache (default: the state folder's).
    """
    with CandidateProcess(
        sources, contract, where, limits, params, output=output, environments=environments
    ) as candidate:
        return candidate.finish(frames, split_at)


class CandidateProcess:
    """The candidate's process, started before its data exists: `finish` hands the data over
    and waits for the outcome.

    The interpreter's start and the imports of pandas, scikit-learn and the commit take
    about a second; a caller that starts the process first reads the warehouse meanwhile.
    Leaving the `with` block without `finish` (the data could not be read) stops the process.
    """

    def __init__(
        self,
        sources: Path | Sequence[Path],
        contract: Contract,
        where: str,
        limits: Limits = DEFAULT_LIMITS,
        params: Mapping[str, Any] | None = None,
        *,
        output: OutputLog | None = None,
        environments: Path | None = None,
    ):
        self.sources = [sources] if isinstance(sources, Path) else list(sources)
        self.contract, self.where, self.limits = contract, where, limits
        # The system's temporary folder, never the state folder: the candidate's files and
        # working directory stay away from the instance, the warehouse and the landing zone.
        self._tmp = tempfile.TemporaryDirectory(prefix="collab-eval-", dir=tempfile.gettempdir())
        self.work = Path(self._tmp.name)
        self._process: subprocess.Popen | None = None
        self._readers: list[threading.Thread] = []
        self._stderr_tail: deque = deque(maxlen=40)
        self._timed_out = False
        self._environment_error: str | None = None
        try:
            python = python_for(self.sources[0], contract.lock, environments)
        except EnvironmentBuildError as error:
            # Raised by `finish`, after the caller's own checks of the data, as before the
            # process was started early.
            self._environment_error = str(error)
            return
        job = {
            "sources": [str(source) for source in self.sources],
            "output": str(self.work),
            "contract": dataclasses.asdict(contract),
            "params": dict(params or {}),
        }
        (self.work / "job.json").write_text(json.dumps(job, default=str))
        self._started = time.perf_counter()
        self._process = subprocess.Popen(
            # By path and isolated (-I): the script needs only pandas and the candidate's code,
            # and importing the package (and Dagster) first would cost seconds per evaluation.
            [python, "-I", "-B", str(CANDIDATE_SCRIPT), str(self.work / "job.json"), str(limits.memory_mb)],
            cwd=self.sources[0],
            start_new_session=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=candidate_environment(self.work, contract.env, python),
        )
        self._readers = [
            threading.Thread(
                target=_forward, args=(self._process.stdout, "stdout", output, deque(maxlen=1)), daemon=True
            ),
            threading.Thread(
                target=_forward, args=(self._process.stderr, "stderr", output, self._stderr_tail), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    def __enter__(self) -> "CandidateProcess":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._kill()
                self._process.wait()
            self._process.stdin.close()
        for reader in self._readers:
            reader.join(timeout=5)
        self._tmp.cleanup()

    def _kill(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended on its own meanwhile

    def finish(self, frames: Mapping[str, pd.DataFrame | Path], split_at: pd.Timestamp) -> Outcome:
        """Hand the data over (frames in memory are written as Parquet) and wait for the outcome."""
        where, limits, work = self.where, self.limits, self.work
        if self._environment_error is not None:
            raise EvaluationFailed(f"{where}: environment failed: {self._environment_error}", "environment")
        in_memory = {name: frame for name, frame in frames.items() if isinstance(frame, pd.DataFrame)}
        frame_paths = {
            **{name: path for name, path in frames.items() if isinstance(path, Path)},
            **write_frames(in_memory, work),
        }
        data = {
            "frames": {name: str(path) for name, path in frame_paths.items()},
            "split_at": split_at.isoformat(),
        }
        try:
            self._process.stdin.write(json.dumps(data).encode() + b"\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # it ended before reading (its imports failed): error.json says how
        returncode = self._wait(limits.seconds)
        seconds = time.perf_counter() - self._started
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
        reported = _reported(work / "reported.jsonl")
        missing = predictions[["y_pred", "y_score"]].isna().any(axis=1)
        if missing.any():
            sample = predictions.loc[missing, "row_id"].head(5).tolist()
            raise EvaluationFailed(
                f"{where}: {int(missing.sum())} of {len(predictions)} predictions are NaN (rows {sample} ...)",
                "output",
            )
        return Outcome(
            predictions,
            compute_metrics(self.contract.metrics, predictions),
            sizes["train_rows"],
            sizes["test_rows"],
            # The process's own time: not the wait for the data, which was the caller's reading.
            max(seconds - sizes["waited"], 0.0),
            reported,
        )

    def _wait(self, seconds: float) -> int:
        """Wait for the process; the time limit counts from the hand-over of the data."""
        process = self._process

        def stop() -> None:
            self._timed_out = True
            self._kill()

        # A timer rather than wait(timeout=...), whose polling adds up to 50 ms to every run.
        timer = threading.Timer(seconds, stop)
        timer.start()
        try:
            process.wait()
        finally:
            timer.cancel()
            for reader in self._readers:
                reader.join(timeout=5)
        if self._timed_out and process.returncode == -signal.SIGKILL:
            stage_file = self.work / "stage"
            stage = stage_file.read_text().strip() if stage_file.exists() else "start"
            raise EvaluationFailed(
                f"{self.where}: time limit of {seconds:g} s exceeded during {stage}; the run was stopped",
                "limits",
            )
        if process.returncode not in (0, 2):
            tail = "\n".join(self._stderr_tail)[-2000:]
            raise EvaluationFailed(
                f"{self.where}: the model process died (exit code {process.returncode}): {tail}",
                "limits",
                tail,
            )
        return process.returncode


def _reported(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            values.update(json.loads(line))
    return values


def _forward(stream, name: str, output: OutputLog | None, tail: deque) -> None:
    forwarded = 0
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        tail.append(line)
        if output is None:
            continue
        forwarded += 1
        if forwarded <= MAX_FORWARDED_LINES:
            output(name, line[:2000])
        elif forwarded == MAX_FORWARDED_LINES + 1:
            output(name, f"... more {name} than the {MAX_FORWARDED_LINES} lines forwarded")
    stream.close()
