"""Runs a data scientist's code at one commit, inside the candidate's own process.

    python -I -B path/to/candidate_script.py job.json MEMORY_MB < data.json

candidate_process.py starts it by path, not with `-m`, so the package (and Dagster) is
never imported here. It imports only from the exported commit and the frames it is given;
whatever goes wrong is written to error.json with the stage and the data scientist's own
traceback. The stage is also written to `stage` as it changes, so a time limit can name it.

It is started before its data is ready: interpreter, pandas and the commit's imports take
about a second, which the parent spends reading the warehouse. Then one JSON line on stdin
names the frames (Parquet files) and the split; an empty stdin means the parent gave up.

A model reports values of its own (a loss per epoch, feature importances) without importing
anything of the project; they become metadata of the evaluation in the UI:

    try:
        from collab_eval import report
    except ImportError:  # run outside the project
        def report(**values): pass

    report(train_loss=0.31, importances={"distance": 0.4})
"""

import importlib
import json
import resource
import sys
import time
import traceback
import types
from pathlib import Path

import pandas as pd


def _install_report_module(output: Path) -> None:
    def report(**values) -> None:
        """Record JSON-serializable values as this evaluation's metadata (`model/<name>`)."""
        with (output / "reported.jsonl").open("a") as file:
            file.write(json.dumps(values, default=str) + "\n")

    module = types.ModuleType("collab_eval", "The project's call for a model to report its own values.")
    module.report = report
    sys.modules["collab_eval"] = module


def _load(reference: str):
    module_name, _, function = reference.partition(":")
    return getattr(importlib.import_module(module_name), function)


def confine(memory_mb: int) -> None:
    # Address-space limit, set before any of the candidate's code is imported: an allocation
    # past it raises MemoryError, which is reported like any other failure.
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    output = Path(job["output"])
    contract = job["contract"]
    stage = "import"

    def enter(name: str) -> str:
        (output / "stage").write_text(name)
        return name

    _install_report_module(output)
    try:
        enter(stage)
        for source in reversed(job["sources"]):
            sys.path.insert(0, source)
        features = _load(contract["features"]) if contract.get("features") else None
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
        table = features(frames) if features else frames[contract["dataset"]]
        for column in (contract["target"], contract["time_column"], contract["row_id"]):
            if column not in table.columns:
                raise KeyError(f"the features table has no column {column!r}")
        split_at = pd.Timestamp(data["split_at"])
        times = pd.to_datetime(table[contract["time_column"]])
        train, test = table[times < split_at], table[times >= split_at]
        drop = [contract["target"], contract["time_column"], contract["row_id"]]
        x_train, y_train = train.drop(columns=drop), train[contract["target"]]
        x_test = test.drop(columns=drop)

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
            labels = model.predict(x_test)
        else:
            raw = model.predict(x_test) if build else predict(model, x_test)
            scores = labels = raw
        if len(scores) != len(test) or len(labels) != len(test):
            raise ValueError(f"predict returned {len(scores)} predictions for {len(test)} test rows")
        pd.DataFrame(
            {
                "row_id": test[contract["row_id"]].to_numpy(),
                "y_true": test[contract["target"]].astype(float).to_numpy(),
                "y_pred": pd.Series(labels).astype(float).to_numpy(),
                "y_score": pd.Series(scores).astype(float).to_numpy(),
            }
        ).to_parquet(output / "predictions.parquet")
        sizes = {"train_rows": len(train), "test_rows": len(test), "waited": waited}
        (output / "sizes.json").write_text(json.dumps(sizes))
        return 0
    except BaseException as error:  # noqa: BLE001 -- everything the candidate does wrong is reported
        (output / "error.json").write_text(
            json.dumps(
                {
                    "stage": stage,
                    "type": type(error).__name__,
                    "message": str(error)[:2000],
                    "traceback": traceback.format_exc()[-8000:],
                }
            )
        )
        return 2


if __name__ == "__main__":
    # -I ignores PYTHONUNBUFFERED; line buffering lets each printed line reach the run's logs
    # while the model trains, not when it ends.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    confine(int(sys.argv[2]))
    sys.exit(main(sys.argv[1]))
