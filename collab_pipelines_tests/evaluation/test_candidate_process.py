"""The candidate's process runs real model code in a real subprocess; every kind of bad commit is explained."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collab_pipelines.evaluation.candidate_process import CandidateProcess, EvaluationFailed, Limits, evaluate
from collab_pipelines.evaluation.contract import parse_contract

CONTRACT = """
[model]
entry_point = "model:build"
[data]
dataset = "events"
time_column = "at"
target = "label"
[evaluation]
metrics = ["roc_auc", "accuracy"]
"""
GOOD_MODEL = """
from sklearn.linear_model import LogisticRegression

def build():
    return LogisticRegression()
"""


def frames() -> dict[str, pd.DataFrame]:
    generator = np.random.default_rng(7)
    x = generator.normal(size=400)
    return {
        "events": pd.DataFrame(
            {
                "id": range(400),
                "at": pd.date_range("2013-01-01", periods=400, freq="h"),
                "x": x,
                "label": (x + generator.normal(scale=0.5, size=400) > 0).astype(int),
            }
        )
    }


TEST_LIMITS = Limits(seconds=60, memory_mb=2048)


def source_with(tmp_path: Path, model: str) -> Path:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    (source / "model.py").write_text(model)
    return source


def run(tmp_path: Path, model: str, contract: str = CONTRACT, limits: Limits = TEST_LIMITS):
    return evaluate(
        source_with(tmp_path, model),
        parse_contract(contract, "model@abc1234:collab.toml"),
        frames(),
        pd.Timestamp("2013-01-14"),
        "model@abc1234",
        limits,
    )


def test_a_good_model_is_trained_and_scored(tmp_path):
    outcome = run(tmp_path, GOOD_MODEL)
    assert outcome.test_rows == len(outcome.predictions) == 400 - 13 * 24
    assert outcome.train_rows == 13 * 24
    assert outcome.metrics["roc_auc"] > 0.8
    assert set(outcome.predictions["row_id"]) == set(range(13 * 24, 400))


PAIR = CONTRACT.replace('entry_point = "model:build"', 'fit = "model:fit"\npredict = "model:predict"')


@pytest.mark.parametrize(
    ("model", "contract", "stage", "message"),
    [
        ("def build(:\n    pass\n", CONTRACT, "import", "SyntaxError"),
        (
            "import sklearn_nonexistent\n",
            CONTRACT,
            "import",
            "ModuleNotFoundError: No module named 'sklearn_nonexistent'",
        ),
        (
            "class M:\n    def fit(self, x, y):\n        raise ValueError('bad learning rate')\n\ndef build():\n    return M()\n",
            CONTRACT,
            "fit",
            "ValueError: bad learning rate",
        ),
        (
            "import numpy as np\ndef fit(x, y):\n    return None\ndef predict(m, x):\n    return np.full(len(x), np.nan)\n",
            PAIR,
            "output",
            "predictions are NaN",
        ),
        (
            "def fit(x, y):\n    return None\ndef predict(m, x):\n    return [0.5] * (len(x) - 3)\n",
            PAIR,
            "predict",
            "returned 85 predictions for 88 test rows",
        ),
    ],
    ids=["syntax-error", "import-error", "exception-in-fit", "nan-predictions", "wrong-length"],
)
def test_bad_commits_are_explained(tmp_path, model, contract, stage, message):
    with pytest.raises(EvaluationFailed) as raised:
        run(tmp_path, model, contract)
    assert raised.value.stage == stage
    assert message in str(raised.value) and str(raised.value).startswith("model@abc1234")
    if stage in ("import", "fit"):
        assert "model.py" in raised.value.traceback_text  # the data scientist's own traceback


def test_an_endless_loop_hits_the_time_limit(tmp_path):
    model = "def build():\n    while True:\n        pass\n"
    with pytest.raises(EvaluationFailed, match="time limit of 3 s exceeded") as raised:
        run(tmp_path, model, limits=Limits(seconds=3, memory_mb=2048))
    assert raised.value.stage == "limits"


def test_runaway_memory_hits_the_memory_limit(tmp_path):
    model = "def build():\n    hoard = bytearray(8 * 1024 ** 3)\n    return hoard\n"
    with pytest.raises(EvaluationFailed, match="memory limit of 2048 MB exceeded during fit") as raised:
        run(tmp_path, model)
    assert raised.value.stage == "limits"


def started(tmp_path: Path, model: str, lines: list, limits: Limits = TEST_LIMITS) -> CandidateProcess:
    return CandidateProcess(
        source_with(tmp_path, model),
        parse_contract(CONTRACT, "model@abc1234:collab.toml"),
        "model@abc1234",
        limits,
        output=lambda stream, line: lines.append(line),
    )


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_the_process_imports_the_commit_before_its_data_is_handed_over(tmp_path):
    lines: list[str] = []
    with started(tmp_path, "print('model imported')\n" + GOOD_MODEL, lines) as candidate:
        # The import ran while the caller had no data yet (it would be reading the warehouse).
        wait_for(lambda: "model imported" in lines, "the commit's import")
        outcome = candidate.finish(frames(), pd.Timestamp("2013-01-14"))
    assert outcome.metrics["roc_auc"] > 0.8 and not candidate.work.exists()


def test_a_commit_that_fails_before_its_data_arrives_is_explained(tmp_path):
    with started(tmp_path, "import sklearn_nonexistent\n", []) as candidate:
        wait_for(lambda: candidate._process.poll() is not None, "the process to end")
        with pytest.raises(EvaluationFailed, match="^model@abc1234: import failed: ModuleNotFoundError"):
            candidate.finish(frames(), pd.Timestamp("2013-01-14"))


def test_leaving_without_data_stops_the_process_and_removes_its_folder(tmp_path):
    with pytest.raises(RuntimeError, match="the warehouse is down"):
        with started(tmp_path, GOOD_MODEL, []) as candidate:
            process = candidate._process
            raise RuntimeError("the warehouse is down")
    assert process.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of its process group is left
    assert not candidate.work.exists()


def test_the_time_limit_counts_from_the_hand_over_of_the_data(tmp_path):
    lines: list[str] = []
    limits = Limits(seconds=5, memory_mb=2048)
    with started(tmp_path, "print('model imported')\n" + GOOD_MODEL, lines, limits) as candidate:
        # A slow warehouse read: the process has imported the commit and waits for its data
        # (the event), and the caller hands it over only once a whole limit has passed since
        # the start, which is not the model's time.
        wait_for(lambda: "model imported" in lines, "the commit's import")
        wait_for(
            lambda: time.perf_counter() - candidate._started > limits.seconds, "a limit's worth of reading"
        )
        outcome = candidate.finish(frames(), pd.Timestamp("2013-01-14"))
    assert outcome.test_rows == 400 - 13 * 24
    assert outcome.seconds < limits.seconds  # the wait for the data is not counted


def test_scores_where_labels_are_scored_are_the_models_output_failure(tmp_path):
    # fit/predict returning probabilities, in a contract that also computes accuracy.
    model = (
        "from sklearn.linear_model import LogisticRegression\n"
        "def fit(x, y):\n    return LogisticRegression().fit(x, y)\n"
        "def predict(m, x):\n    return m.predict_proba(x)[:, 1]\n"
    )
    with pytest.raises(EvaluationFailed) as raised:
        run(tmp_path, model, PAIR)
    assert raised.value.stage == "output"
    assert "cannot be computed on what predict returned" in str(raised.value)
    assert "expected labels 0/1" in str(raised.value)


def test_predicting_a_new_day_fits_on_the_past_and_predicts_every_row_labelled_or_not(tmp_path):
    data = frames()
    data["events"].loc[data["events"].index[-5:], "label"] = None  # today's outcomes are not known yet
    with started(tmp_path, GOOD_MODEL, []) as candidate:
        predictions = candidate.predict(data, pd.Timestamp("2013-01-14"))
    assert list(predictions["row_id"]) == list(range(13 * 24, 400))
    assert predictions["y_true"].isna().sum() == 5
    assert predictions["y_score"].between(0, 1).all() and predictions["y_pred"].isin([0, 1]).all()
