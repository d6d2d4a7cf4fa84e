"""Start the candidate's process: one commit trained and scored, with limits, its own
environment and nothing of the project's secrets.

No Dagster here: the asset calls `evaluate`, and so do the tuning job and the benchmark.
Every way a commit can fail becomes an `EvaluationFailed` whose message says what and where,
with the data scientist's traceback. The process's output is forwarded line by line as it
runs (the asset sends it to the run's logs).
"""

import io
import json
import os
import re
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

from collab_pipelines.evaluation import heldout, sandbox
from collab_pipelines.evaluation.contract import Contract
from collab_pipelines.evaluation.environments import EnvironmentBuildError, python_for
from collab_pipelines.evaluation.scoring import compute_metrics
from collab_pipelines.evaluation.suites import Limits

CANDIDATE_SCRIPT = Path(__file__).with_name("candidate_script.py")
# Variables the candidate's process always gets; everything else of the parent's
# environment (Dagster's, the warehouse's and the API's secrets) stays out.
_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
MAX_FORWARDED_LINES = 2000
# What the parent reads of the candidate's messages: a line of JSON, and the predictions.
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_PREDICTION_BYTES = 512 * 1024 * 1024
DEFAULT_LIMITS = Limits()

OutputLog = Callable[[str, str], None]
"""(stream name, line) -> None; called from reader threads while the process runs."""


class EvaluationFailed(RuntimeError):
    """A commit could not be evaluated. `stage` is checkout, contract, sandbox, environment,
    import, features, fit, predict, limits or output."""

    def __init__(self, message: str, stage: str, traceback_text: str = ""):
        super().__init__(message)
        self.stage = stage
        self.traceback_text = traceback_text


@dataclass
class Outcome:
    predictions: pd.DataFrame
    """row_id, y_true (the harness's own labels), y_pred, y_score."""
    metrics: dict[str, float]
    train_rows: int
    test_rows: int
    seconds: float
    reported: dict[str, Any] = field(default_factory=dict)
    """Values the model reported itself through `collab_eval.report(...)`."""
    sandboxed: bool = True


def write_frames(frames: Mapping[str, pd.DataFrame], directory: Path) -> dict[str, Path]:
    """Hand the data over as Parquet files."""
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return paths


def candidate_environment(
    home: Path, passed_through: Sequence[str] = (), python: str = sys.executable
) -> dict[str, str]:
    """The whole environment of the candidate's process: what it needs, and the variables its
    contract names that the suite allows."""
    env = {
        # The interpreter's own bin first: the commit's environment's, when it has one.
        "PATH": os.pathsep.join([str(Path(python).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(home.parent),
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
    frames: Mapping[str, pd.DataFrame],
    split_at: pd.Timestamp,
    where: str,
    limits: Limits = DEFAULT_LIMITS,
    params: Mapping[str, Any] | None = None,
    *,
    output: OutputLog | None = None,
    environments: Path | None = None,
    sandboxed: bool = True,
) -> Outcome:
    """Run the commit(s) exported at `sources`; `where` names them in every message.

    The first source holds the contract and is the working directory; every source is
    importable, so a suite can combine one person's features with another's model.
    `params` are set on the estimator (or passed to `fit`), for tuning. `environments` is
    the per-commit environment cache (default: the state folder's).
    """
    with CandidateProcess(
        sources,
        contract,
        where,
        limits,
        params,
        output=output,
        environments=environments,
        sandboxed=sandboxed,
    ) as candidate:
        return candidate.finish(frames, split_at)


@dataclass
class _Messages:
    """What the candidate said on its message pipe, collected by a reader thread."""

    stage: str = "start"
    error: dict | None = None
    sizes: dict = field(default_factory=dict)
    predictions: bytes | None = None
    reported: dict = field(default_factory=dict)
    problem: str | None = None

    def read(self, stream) -> None:
        try:
            while line := stream.readline(MAX_MESSAGE_BYTES):
                if not line.endswith(b"\n"):
                    raise ValueError(f"a message longer than {MAX_MESSAGE_BYTES} bytes")
                message = json.loads(line)
                if not isinstance(message, dict):
                    raise ValueError("a message that is not a JSON object")
                if "stage" in message:
                    self.stage = str(message["stage"])
                if isinstance(message.get("report"), dict):
                    self.reported.update(message["report"])
                if isinstance(message.get("error"), dict):
                    self.error = message["error"]
                if isinstance(message.get("sizes"), dict):
                    self.sizes = message["sizes"]
                if "predictions" in message:
                    size = int(message["predictions"])
                    if not 0 <= size <= MAX_PREDICTION_BYTES:
                        raise ValueError(f"predictions of {size} bytes (at most {MAX_PREDICTION_BYTES})")
                    self.predictions = stream.read(size)
        except (ValueError, TypeError) as error:
            self.problem = f"the model process sent a malformed message: {error}"
            while stream.read(65536):  # keep draining, so the process never blocks on the pipe
                pass
        finally:
            stream.close()


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
        sandboxed: bool = True,
        origins: Sequence[str] | None = None,
    ):
        self.sources = [sources] if isinstance(sources, Path) else list(sources)
        # Where each source came from (a suite's repository at its commit), to name the one whose
        # code raised rather than the contract's.
        self.origins = list(origins) if origins else [where] * len(self.sources)
        self._inside_sources = self.sources
        self.contract, self.where, self.limits, self.sandboxed = contract, where, limits, sandboxed
        # The system's temporary folder, never the state folder: the candidate's files stay
        # away from the instance, the warehouse and the landing zone.
        self._tmp = tempfile.TemporaryDirectory(prefix="collab-eval-", dir=tempfile.gettempdir())
        self.work = Path(self._tmp.name)
        self.input = self.work / "input"
        self.input.mkdir()
        self._process: subprocess.Popen | None = None
        self._readers: list[threading.Thread] = []
        self._stderr_tail: deque = deque(maxlen=40)
        self._messages = _Messages()
        self._timed_out = False
        self._cap: sandbox.ProcessCap | None = None
        self._refusal: EvaluationFailed | None = None
        try:
            python = python_for(self.sources[0], contract.lock, environments, output)
        except EnvironmentBuildError as error:
            # Raised by `finish`, after the caller's own checks of the data, as before the
            # process was started early.
            self._refusal = EvaluationFailed(f"{where}: environment failed: {error}", "environment")
            return
        try:
            argv, inside_input, home = self._command(python)
        except sandbox.SandboxUnavailable as error:
            self._refusal = EvaluationFailed(f"{where}: {error}", "sandbox")
            return
        self._inside_input = inside_input
        job = {
            "sources": [str(s) for s in (self._inside_sources if sandboxed else self.sources)],
            "contract": candidate_contract(contract),
            "params": dict(params or {}),
            "limits": {
                "memory_mb": limits.memory_mb,
                "processes": limits.processes,
                "open_files": limits.open_files,
                "file_mb": limits.scratch_mb,
                # A backstop behind the wall-clock limit, which names the stage: the imports and
                # the wait for the data count as CPU time too, and the kernel's kill says nothing.
                "cpu_seconds": cpu_seconds(limits),
            },
        }
        (self.input / "job.json").write_text(json.dumps(job, default=str))
        reading, writing = os.pipe()
        self._started = time.perf_counter()
        try:
            self._process = subprocess.Popen(
                [*argv, str(inside_input / "job.json"), str(writing)],
                cwd=self.sources[0],
                start_new_session=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(writing,),
                env=candidate_environment(home, contract.env, python),
            )
        finally:
            os.close(writing)  # the candidate holds the only writing end: its exit ends the stream
        self._readers = [
            threading.Thread(
                target=_forward, args=(self._process.stdout, "stdout", output, deque(maxlen=1)), daemon=True
            ),
            threading.Thread(
                target=_forward, args=(self._process.stderr, "stderr", output, self._stderr_tail), daemon=True
            ),
            threading.Thread(target=self._messages.read, args=(os.fdopen(reading, "rb"),), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _command(self, python: str) -> tuple[list[str], Path, Path]:
        """The command line, where the candidate sees its input folder, and its home."""
        interpreter = [python, "-I", "-B"]
        if not self.sandboxed:
            scratch = self.work / "scratch"
            (scratch / "home").mkdir(parents=True)
            self._inside_sources = self.sources
            return [*interpreter, str(CANDIDATE_SCRIPT)], self.input, scratch / "home"
        sandbox.check()
        self._cap = sandbox.ProcessCap(self.limits.processes + sandbox.PROCESS_OVERHEAD)
        mounts = sandbox.Mounts(self.sources, self.input, CANDIDATE_SCRIPT, python, self.limits.scratch_mb)
        self._inside_sources = mounts.inside_sources()
        argv = sandbox.command(mounts, [*interpreter, str(sandbox.INSIDE_SCRIPT)])
        return self._cap.wrap(argv), sandbox.INSIDE_INPUT, sandbox.INSIDE_HOME

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
        if self._cap is not None:
            self._cap.close()
        self._tmp.cleanup()

    def _kill(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it ended on its own meanwhile

    def finish(self, frames: Mapping[str, pd.DataFrame], split_at: pd.Timestamp) -> Outcome:
        """Split, hand the data over without the held-out labels, wait, and score."""
        held = self._split(frames, split_at, every_row=False)
        said, seconds = self._run(held)
        predictions = scored(said.predictions, held.test_labels, self.where)
        return Outcome(
            predictions,
            self._metrics(predictions),
            int(said.sizes.get("train_rows", len(held.train_labels))),
            len(predictions),
            seconds,
            said.reported,
            self.sandboxed,
        )

    def predict(self, frames: Mapping[str, pd.DataFrame], split_at: pd.Timestamp) -> pd.DataFrame:
        """Fit on the labelled rows before `split_at` and predict every row from it on: row_id,
        y_true (NaN where not known yet), y_pred, y_score. Nothing is scored."""
        held = self._split(frames, split_at, every_row=True)
        if held.test_labels.empty:  # a day without rows: nothing to fit for
            return pd.DataFrame({"row_id": [], "y_true": [], "y_pred": [], "y_score": []})
        said, _ = self._run(held)
        return scored(said.predictions, held.test_labels, self.where)

    def _split(
        self, frames: Mapping[str, pd.DataFrame], split_at: pd.Timestamp, every_row: bool
    ) -> heldout.HeldOut:
        if self._refusal is not None:
            raise self._refusal
        try:
            return heldout.split(self.contract, frames, split_at, self.where, every_row=every_row)
        except heldout.SplitError as error:
            raise EvaluationFailed(str(error), "contract") from error

    def _metrics(self, predictions: pd.DataFrame) -> dict[str, float]:
        try:
            return compute_metrics(self.contract.metrics, predictions)
        except ValueError as error:
            # What the model returned does not fit the metric (scores for a label metric): the
            # model's failure, not the harness's, and it would fail the same way again.
            values = predictions["y_pred"].drop_duplicates().head(5).tolist()
            raise EvaluationFailed(
                f"{self.where}: output failed: the metrics {list(self.contract.metrics)} cannot be computed "
                f"on what predict returned ({error}); expected labels 0/1 (and scores in [0, 1]), got "
                f"values such as {values}",
                "output",
            ) from error

    def _run(self, held: heldout.HeldOut) -> tuple[_Messages, float]:
        """Hand the data over, wait for the process, and return what it said and its own time."""
        where, limits = self.where, self.limits
        paths = write_frames(
            {**held.frames, "_train_labels": held.train_labels, "_test_ids": held.test_labels[["row_id"]]},
            self.input,
        )
        inside = {name: str(self._inside_input / path.name) for name, path in paths.items()}
        data = {
            "frames": {name: inside[name] for name in held.frames},
            "labels": inside["_train_labels"],
            "test_ids": inside["_test_ids"],
        }
        try:
            self._process.stdin.write(json.dumps(data).encode() + b"\n")
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # it ended before reading (its imports failed): its messages say how
        returncode = self._wait(limits.seconds)
        seconds = time.perf_counter() - self._started
        said = self._messages
        if said.error is not None:
            error = said.error
            where = self._origin(str(error.get("traceback", "")))
            if error.get("type") == "MemoryError":
                raise EvaluationFailed(
                    f"{where}: memory limit of {limits.memory_mb} MB exceeded during {error.get('stage')}",
                    "limits",
                    str(error.get("traceback", "")),
                )
            raise EvaluationFailed(
                f"{where}: {error.get('stage')} failed: {error.get('type')}: {error.get('message')}",
                str(error.get("stage", "output")),
                str(error.get("traceback", "")),
            )
        if said.problem is not None:
            raise EvaluationFailed(f"{where}: {said.problem}", "output")
        if returncode != 0 or said.predictions is None:
            raise EvaluationFailed(
                f"{where}: the model process ended (exit code {returncode}) without predictions; "
                f"the memory limit is {limits.memory_mb} MB",
                "limits",
            )
        # The process's own time: not the wait for the data, which was the caller's reading.
        return said, max(seconds - float(said.sizes.get("waited", 0.0)), 0.0)

    def _origin(self, traceback_text: str) -> str:
        """The origin of the source holding the traceback's innermost frame of the commits' own
        code (a features repository's function, say), or `where` when no frame is theirs."""
        roots = [str(path).rstrip("/") + "/" for path in self._inside_sources]
        found = None
        for path in re.findall(r'File "([^"]+)"', traceback_text):
            for index, root in enumerate(roots):
                if path.startswith(root):
                    found = index
        return self.where if found is None else self.origins[found]

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
        if self._timed_out:
            raise EvaluationFailed(
                f"{self.where}: time limit of {seconds:g} s exceeded during {self._messages.stage}; "
                "the run was stopped",
                "limits",
            )
        if process.returncode not in (0, 2):
            tail = "\n".join(self._stderr_tail)[-2000:]
            if tail.startswith("bwrap:"):
                raise EvaluationFailed(f"{self.where}: the sandbox could not start: {tail}", "sandbox", tail)
            killed = process.returncode in (
                -signal.SIGKILL,
                128 + signal.SIGKILL,
                -signal.SIGXCPU,
                128 + signal.SIGXCPU,
            )
            cause = (
                f" (killed: past its CPU time of {cpu_seconds(self.limits)} s or another hard limit)"
                if killed
                else ""
            )
            raise EvaluationFailed(
                f"{self.where}: the model process died (exit code {process.returncode}){cause} during "
                f"{self._messages.stage}: {tail}",
                "limits",
                tail,
            )
        return process.returncode


def cpu_seconds(limits: Limits) -> int:
    return int(2 * limits.seconds + 60)


def candidate_contract(contract: Contract) -> dict[str, Any]:
    """What the candidate's process is told of the contract: how to call the commit and which
    columns it must not be given; no gate, metric or threshold."""
    return {
        "features": contract.features,
        "entry_point": contract.entry_point,
        "fit": contract.fit,
        "predict": contract.predict,
        "dataset": contract.dataset,
        "row_id": contract.row_id,
        "time_column": contract.time_column,
        "target": contract.target,
        "withheld": list(contract.withheld),
    }


def scored(payload: bytes, test_labels: pd.DataFrame, where: str) -> pd.DataFrame:
    """The candidate's predictions joined to the harness's own labels by row id."""
    try:
        returned = pd.read_parquet(io.BytesIO(payload))
    except Exception as error:  # noqa: BLE001 -- anything unreadable is the model's output failure
        raise EvaluationFailed(f"{where}: the predictions are not readable: {error}", "output") from error
    missing_columns = {"row_id", "y_pred", "y_score"} - set(returned.columns)
    if missing_columns:
        raise EvaluationFailed(f"{where}: the predictions lack {sorted(missing_columns)}", "output")
    returned = returned.assign(key=returned["row_id"].astype(str))
    expected = test_labels.assign(key=test_labels["row_id"].astype(str))
    if returned["key"].duplicated().any() or set(returned["key"]) != set(expected["key"]):
        extra = sorted(set(returned["key"]) - set(expected["key"]))[:5]
        absent = sorted(set(expected["key"]) - set(returned["key"]))[:5]
        raise EvaluationFailed(
            f"{where}: the predictions are not one per held-out row "
            f"(unknown row ids {extra}, missing {absent})",
            "output",
        )
    predictions = (
        expected[["key", "row_id", "y_true"]]
        .merge(returned[["key", "y_pred", "y_score"]], on="key", how="left")
        .drop(columns="key")
    )
    predictions["y_pred"] = pd.to_numeric(predictions["y_pred"], errors="coerce").astype(float)
    predictions["y_score"] = pd.to_numeric(predictions["y_score"], errors="coerce").astype(float)
    missing = predictions[["y_pred", "y_score"]].isna().any(axis=1)
    if missing.any():
        sample = predictions.loc[missing, "row_id"].head(5).tolist()
        raise EvaluationFailed(
            f"{where}: {int(missing.sum())} of {len(predictions)} predictions are NaN (rows {sample} ...)",
            "output",
        )
    return predictions


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
