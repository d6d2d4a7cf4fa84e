"""Runs a data scientist's code at one commit, inside the candidate's own (sandboxed) process.

    python -I -B path/to/candidate_script.py job.json MESSAGES_FD < data.json

candidate_process.py starts it by path, not with `-m`, so the package (and Dagster) is never
imported here. It imports only from the exported commit and the files it is given, and it
writes nothing to disk: everything it says goes to the parent as messages on one pipe
(MESSAGES_FD), one JSON object a line, so the sandbox needs no writable folder of the host's.

    {"stage": "fit"}                       as the stage changes, so a time limit can name it
    {"report": {...}}                      values the model reports (below)
    {"error": {"stage", "type", "message", "traceback"}}
    {"predictions": N}                     followed by N bytes: Parquet of row_id, y_pred, y_score

It holds no held-out label. The parent hands over, as Parquet files in a read-only folder:
the frames (where the held-out rows' target and withheld columns are empty), the training
rows' labels, and the held-out rows' ids. The feature function turns the frames into a table
with one row per row id; the model is fitted on the training ids' rows with the parent's
labels and predicts every held-out id. The parent scores the predictions.

It is started before its data is ready: interpreter, pandas and the commit's imports take
about a second, which the parent spends reading the warehouse. Then one JSON line on stdin
names the files; an empty stdin means the parent gave up.

A model reports values of its own (a loss per epoch, feature importances) without importing
anything of the project; they become metadata of the evaluation in the UI:

    try:
        from collab_eval import report
    except ImportError:  # run outside the project
        def report(**values): pass

    report(train_loss=0.31, importances={"distance": 0.4})
"""

import importlib
import io
import json
import os
import resource
import sys
import time
import traceback
import types
from pathlib import Path

import pandas as pd

_MB = 1024 * 1024


class Messages:
    def __init__(self, fd: int):
        self._file = os.fdopen(fd, "wb", buffering=0)

    def send(self, message: dict, payload: bytes = b"") -> None:
        self._file.write(json.dumps(message, default=str).encode() + b"\n" + payload)


def _install_report_module(messages: Messages) -> None:
    def report(**values) -> None:
        """Record JSON-serializable values as this evaluation's metadata (`model/<name>`)."""
        messages.send({"report": values})

    module = types.ModuleType("collab_eval", "The project's call for a model to report its own values.")
    module.report = report
    sys.modules["collab_eval"] = module


def _load(reference: str):
    module_name, _, function = reference.partition(":")
    return getattr(importlib.import_module(module_name), function)


def confine(limits: dict) -> None:
    """Hard and soft limits, set before any of the candidate's code is imported: an
    unprivileged process cannot raise a hard limit again. An allocation past the address-space
    limit raises MemoryError, reported like any other failure."""
    for name, value in (
        ("RLIMIT_AS", limits["memory_mb"] * _MB),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_NOFILE", limits["open_files"]),
        ("RLIMIT_FSIZE", limits["file_mb"] * _MB),
        ("RLIMIT_CPU", int(limits["cpu_seconds"])),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _feature_table(contract: dict, frames: dict) -> pd.DataFrame:
    features = _load(contract["features"]) if contract.get("features") else None
    table = features(frames) if features else frames[contract["dataset"]]
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"the feature function returned {type(table).__name__}, not a DataFrame")
    row_id = contract["row_id"]
    if row_id not in table.columns:
        raise KeyError(f"the features table has no column {row_id!r} (the row id)")
    duplicated = table[row_id][table[row_id].duplicated()]
    if not duplicated.empty:
        raise ValueError(f"the features table has row ids more than once: {duplicated.head(5).tolist()}")
    # Whatever the feature function kept of the target or the time, the model does not get.
    drop = {row_id, contract["time_column"], contract["target"], *contract["withheld"]}
    return table.set_index(row_id).drop(columns=[c for c in table.columns if c in drop and c != row_id])


def main(job_path: str, messages: Messages) -> int:
    job = json.loads(Path(job_path).read_text())
    contract = job["contract"]
    stage = "import"

    def enter(name: str) -> str:
        messages.send({"stage": name})
        return name

    _install_report_module(messages)
    try:
        enter(stage)
        for source in reversed(job["sources"]):
            sys.path.insert(0, source)
        for reference in ("features", "entry_point", "fit", "predict"):
            if contract.get(reference):
                _load(contract[reference])
        build = _load(contract["entry_point"]) if contract.get("entry_point") else None
        fit = _load(contract["fit"]) if contract.get("fit") else None
        predict = _load(contract["predict"]) if contract.get("predict") else None
        # Parquet's reader is imported now too, while the parent is still reading the warehouse.
        import pyarrow.parquet  # noqa: F401

        waiting = time.perf_counter()
        line = sys.stdin.buffer.readline()
        waited = time.perf_counter() - waiting
        if not line:
            return 3  # the parent could not load the data; it says why
        data = json.loads(line)

        stage = enter("features")
        frames = {name: pd.read_parquet(path) for name, path in data["frames"].items()}
        labels = pd.read_parquet(data["labels"])
        test_ids = pd.read_parquet(data["test_ids"])["row_id"]
        table = _feature_table(contract, frames)
        train = labels[labels["row_id"].isin(table.index)]
        missing = test_ids[~test_ids.isin(table.index)]
        if not missing.empty:
            raise KeyError(
                f"the features table has no row for {len(missing)} of the {len(test_ids)} held-out row ids "
                f"(e.g. {missing.head(5).tolist()}); every held-out row must be predicted"
            )
        x_train, y_train = table.loc[train["row_id"]], train["y"].to_numpy()
        x_test = table.loc[test_ids]

        stage = enter("fit")
        params = job.get("params") or {}
        if build:
            model = build()
            if params:
                model.set_params(**params)
            model = model.fit(x_train, y_train)
        else:
            model = fit(x_train, y_train, **params)

        stage = enter("predict")
        if build and hasattr(model, "predict_proba"):
            scores = model.predict_proba(x_test)[:, 1]
            labels_out = model.predict(x_test)
        else:
            raw = model.predict(x_test) if build else predict(model, x_test)
            scores = labels_out = raw
        if len(scores) != len(test_ids) or len(labels_out) != len(test_ids):
            raise ValueError(f"predict returned {len(scores)} predictions for {len(test_ids)} test rows")
        buffer = io.BytesIO()
        pd.DataFrame(
            {
                "row_id": test_ids.to_numpy(),
                "y_pred": pd.Series(labels_out).astype(float).to_numpy(),
                "y_score": pd.Series(scores).astype(float).to_numpy(),
            }
        ).to_parquet(buffer)
        messages.send({"sizes": {"train_rows": len(train), "waited": waited}})
        messages.send({"predictions": buffer.tell()}, buffer.getvalue())
        return 0
    except BaseException as error:  # noqa: BLE001 -- everything the candidate does wrong is reported
        messages.send(
            {
                "error": {
                    "stage": stage,
                    "type": type(error).__name__,
                    "message": str(error)[:2000],
                    "traceback": traceback.format_exc()[-8000:],
                }
            }
        )
        return 2


if __name__ == "__main__":
    # -I ignores PYTHONUNBUFFERED; line buffering lets each printed line reach the run's logs
    # while the model trains, not when it ends.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    job_file = sys.argv[1]
    confine(json.loads(Path(job_file).read_text())["limits"])
    sys.exit(main(job_file, Messages(int(sys.argv[2]))))
