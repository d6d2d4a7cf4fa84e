"""Issue 25's acceptance under the real daemon: every commit gets a verdict, every author their own note.

A team that is not the demo (product/team.py: its own orders source, catalog and models) runs
the product location on PostgreSQL with a code server, `dagster-daemon` and run workers of their
own (faults/deployment.py), and watches its model repositories by URL: bare repositories served
over `file://`, pushed to from the data scientists' clones. Nothing but the daemon's commit
sensor starts an evaluation. What a data scientist sees is checked where they see it: the note
in a fresh clone, the trend's rows, and `collab-eval wait` through the data API.
"""

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.scheduler.instigation import TickStatus

from collab_pipelines import settings
from collab_pipelines.evaluation.jobs import evaluate_commits
from collab_pipelines.reports.evaluation_figures import commit_trend
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.conftest import new_postgres_database
from collab_pipelines_tests.data_api import conftest as data_api
from collab_pipelines_tests.e2e.processes import BIN, PROJECT, Service, start_code_server
from collab_pipelines_tests.evaluation.conftest import Repo
from collab_pipelines_tests.evaluation.test_cli import wait
from collab_pipelines_tests.evaluation.test_sensor import commit_at
from collab_pipelines_tests.faults.deployment import Deployment
from collab_pipelines_tests.product import team

# Its module-scoped deployment is built once, on one xdist worker (make test: --dist loadgroup).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("commit_verdicts")]

FOREIGN, PAIR = "foreign", "pair"
REPORTS_SENSOR = "reports_automation_sensor"
FIRST_DAY, LAST_DAY = "2024-03-01", f"2024-03-{team.DAYS:02d}"
PINNED = {
    "data": {"dataset": "orders", "time_column": "placed_at", "row_id": "id", "target": "returned"},
    "evaluation": {"metrics": ["roc_auc", "accuracy"], "test_days": 3},
    "gates": {"roc_auc": {"min": 0.55, "max_drop": 0.02}},
}
# The foreign suite's time limit, where the endless loop ends. It counts from the data's
# hand-over, while the harness may still be importing pandas and scikit-learn: on a busy
# machine that alone has taken 6 s.
SECONDS = 15

MODEL = team.MODEL
REGULARISED = MODEL.replace("LogisticRegression()", "LogisticRegression(C=0.5)")
BALANCED = MODEL.replace("LogisticRegression()", 'LogisticRegression(class_weight="balanced")')
FIT_PREDICT_CONTRACT = team.CONTRACT.replace(
    'entry_point = "model:build"', 'fit = "model:fit"\npredict = "model:predict"'
)
# fit/predict returning probabilities, where the suite's metrics include accuracy (labels).
SCORES = """
from sklearn.linear_model import LogisticRegression

def fit(x, y):
    return LogisticRegression().fit(x, y)

def predict(model, x):
    return model.predict_proba(x)[:, 1]
"""
BASE_RATE = "from sklearn.dummy import DummyClassifier\n\ndef build():\n    return DummyClassifier()\n"
NAN = (
    "import numpy as np\n\nclass Imputed:\n    def fit(self, x, y):\n        return self\n\n"
    "    def predict(self, x):\n        return np.full(len(x), np.nan)\n\ndef build():\n    return Imputed()\n"
)
# It sleeps in its loop, so that it takes no core from the other evaluations while it lasts.
ENDLESS = (
    "import time\n\nclass Converging:\n    def fit(self, x, y):\n        while True:\n"
    "            time.sleep(0.05)\n\ndef build():\n    return Converging()\n"
)
# The hour an order was placed says nothing of its return: a real drop against the size features.
HOUR_FEATURES = """
import pandas as pd

def build(frames):
    f = frames["orders"]
    return pd.DataFrame({"id": f["id"], "placed_at": f["placed_at"], "hour": f["placed_at"].dt.hour})
"""
PASSED, FLOOR = "every gate passed", "below the floor of 0.55"
# The foreign repository's history, oldest first: message, files changed, verdict, words of its reasons.
HISTORY = [
    ("Logistic regression on the order's size", {}, "passed", PASSED),
    ("Regularise a little more", {"model.py": REGULARISED}, "passed", PASSED),
    ("Predict the base rate", {"model.py": BASE_RATE}, "regressed", FLOOR),
    ("Back to logistic regression", {"model.py": MODEL}, "passed", PASSED),
    (
        "fit and predict, returning probabilities",
        {"collab.toml": FIT_PREDICT_CONTRACT, "model.py": SCORES},
        "failed",
        "output failed: the metrics ['roc_auc', 'accuracy'] cannot be computed on what predict returned",
    ),
    (
        "Gradient boosting",
        {"collab.toml": team.CONTRACT, "model.py": "from sklearn.ensemble import GradientBoostingMachine\n"},
        "failed",
        "import failed: ImportError: cannot import name 'GradientBoostingMachine'",
    ),
    (
        "Iterate until it converges",
        {"model.py": ENDLESS},
        "failed",
        f"time limit of {SECONDS} s exceeded during fit",
    ),
    ("Impute the scores", {"model.py": NAN}, "failed", "240 of 240 predictions are NaN"),
    (
        "Pin a faster solver",
        {"model.py": MODEL, "requirements.txt": "collab-no-such-package-8d1f3a==1.0\n"},
        "failed",
        "environment failed: installing requirements.txt failed",
    ),
    ("Drop the pin", {"requirements.txt": None}, "passed", PASSED),
    ("Balance the classes", {"model.py": BALANCED}, "passed", PASSED),
    ("The hour instead of the size", {"features.py": HOUR_FEATURES}, "regressed", "roc_auc dropped by"),
    ("The size again", {"features.py": team.FEATURES}, "passed", PASSED),
    ("Describe the model", {"README.md": "Predicts returns from the order's size.\n"}, "passed", PASSED),
]
EXPECTED = {"passed": 0, "regressed": 1, "failed": 2}


class Served:
    """A data scientist's clone and the bare repository it pushes to, which the suite watches by URL."""

    def __init__(self, root: Path, name: str):
        self.bare = root / "served" / f"{name}.git"
        self.work = Repo(root / "work" / name)
        self.work.git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        self.work.git("remote", "add", "origin", str(self.bare))
        self.url = f"file://{self.bare}"

    def push(self) -> None:
        self.work.git("push", "--quiet", "origin", "main")

    def notes(self, clone: Path, shas: list[str]) -> dict[str, str]:
        """Each commit's note as a data scientist reads it: a fresh clone, then the notes fetched."""
        self.work.git("clone", "--quiet", self.url, str(clone))
        self.work.git("-C", str(clone), "fetch", "--quiet", "origin", "refs/notes/collab:refs/notes/collab")
        return {
            sha: self.work.git("-C", str(clone), "log", "-1", "--notes=collab", "--format=%N", sha)
            for sha in shas
        }


class Scene:
    """The deployment, the served repositories, their commits, and what a data scientist asks."""

    def __init__(self, deployment: Deployment, root: Path):
        self.deployment = deployment
        self.api_url = ""
        self.root = root
        self.warehouse = Warehouse(url=deployment.warehouse_url)
        self.foreign = Served(root, FOREIGN)
        self.features = Served(root, "features")
        self.model = Served(root, "model")
        self.hold = root / "hold"
        self.history: list[str] = []
        self.pair: dict[str, str] = {}

    def runs(self, key: str) -> list[dg.DagsterRun]:
        runs = dg.RunsFilter(job_name=evaluate_commits.name, tags={"dagster/partition": key})
        return list(self.deployment.instance.get_runs(runs))

    def finished(self, keys: list[str]) -> bool:
        return all(self.runs(key) and all(run.is_finished for run in self.runs(key)) for key in keys)

    def results(self, suite: str) -> dict[str, dict]:
        rows = self.warehouse.read("evaluation_results", where={"suite": suite})
        rows = rows.astype(object).where(rows.notna(), None)  # an empty baseline is None, not NaN
        return {row["evaluation_key"]: row for row in rows.to_dict("records")}

    def logged(self, key: str, words: str) -> bool:
        return any(
            words in entry.user_message
            for run in self.runs(key)
            for entry in self.deployment.instance.all_logs(run.run_id)
        )


def key(suite: str, **commits: str) -> str:
    return f"{suite}:" + "+".join(f"{name}@{sha[:10]}" for name, sha in commits.items())


def gated_features(hold: Path) -> str:
    """The first features: while `hold` exists they wait, so the combination holding them is
    still being evaluated when a newer one has its model's predictions."""
    return f"import time\nfrom pathlib import Path\n\nHOLD = Path({str(hold)!r})\n" + team.FEATURES.replace(
        "def build(frames):", "def build(frames):\n    while HOLD.exists():\n        time.sleep(0.05)"
    )


def write_suites(config: Path, scene: Scene) -> None:
    suites = {
        # Listed first: its first combination is queued ahead of the foreign burst.
        PAIR: {
            "repositories": {
                "features": {"location": scene.features.url},
                "model": {"location": scene.model.url},
            },
            "contract": "model",
            "initial_commits": 1,
            "notes": {"push": True},
            "pinned": PINNED,
            # The held features read a file of the host's: only outside the sandbox.
            "unsandboxed": True,
            "limits": {"seconds": 300, "memory_mb": 3072},
        },
        FOREIGN: {
            "repositories": {"model": {"location": scene.foreign.url}},
            "initial_commits": len(HISTORY),
            "notes": {"push": True},
            "pinned": PINNED,
            "limits": {"seconds": SECONDS, "memory_mb": 3072},
        },
    }
    (config / "suites.yaml").write_text(yaml.safe_dump({"suites": suites}, sort_keys=False))


def start_without_reports(deployment: Deployment) -> None:
    """Deployment.start() with the reports' sensor stopped in between: their renders are other
    tests' (reports/), and here they would only take the cores from the evaluations. Stopped
    before the daemon starts: a stop during the sensor's tick is overwritten when the tick
    stores its cursor (seen with Dagster 1.13)."""
    deployment.services.append(
        start_code_server(
            deployment.port, deployment.code.env(**deployment.project), deployment.root, deployment.code.cwd
        )
    )
    # Through the daemon's own workspace: a sensor's state is kept per code location.
    subprocess.run(
        [f"{BIN}/dagster", "sensor", "stop", REPORTS_SENSOR, "-w", "workspace.yaml"],
        cwd=deployment.daemon_place.cwd,
        env=deployment.daemon_place.env(PYTHONPATH=str(PROJECT)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    deployment.start_daemon()


def patient_run_monitoring(deployment: Deployment) -> None:
    """deploy/dagster.yaml's start timeout instead of the faults' 30 s: a burst of commits
    starts a run worker per commit, and on a busy 2-core machine loading the project in each
    has taken longer than that."""
    deployed = yaml.safe_load((PROJECT / "deploy" / "dagster.yaml").read_text())["run_monitoring"]
    for place in (deployment.code, deployment.daemon_place, deployment.run):
        path = place.home / "dagster.yaml"
        config = yaml.safe_load(path.read_text())
        config["run_monitoring"]["start_timeout_seconds"] = deployed["start_timeout_seconds"]
        path.write_text(yaml.safe_dump(config))


def start_data_api(root: Path, deployment: Deployment) -> Service:
    """The data API over the team's warehouse, in a place of its own, not yet answering."""
    place = root / "api"
    (place / "dagster").mkdir(parents=True)
    shutil.copy(deployment.daemon_place.home / "dagster.yaml", place / "dagster" / "dagster.yaml")
    return data_api.start_api(
        data_api.Deployment(
            "postgresql", place, deployment.warehouse_url, place / "dagster", deployment.instance
        ),
        root,
        {
            settings.CONFIG_DIR_ENV: str(deployment.config),
            settings.SUITES_FILE_ENV: str(deployment.config / "suites.yaml"),
        },
        wait=False,
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory, postgres_server_url):
    root = tmp_path_factory.mktemp("verdicts")
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(new_postgres_database(postgres_server_url, f"collab_verdicts_{name}"))
            for name in ("instance", "warehouse", "source")
        }
        team.create_source(urls["source"])
        deployment = Deployment(root, urls["instance"], urls["warehouse"], urls["source"])
        patient_run_monitoring(deployment)
        # The team's days are exported before the daemon starts: its sensor finds them there.
        deployment.export_in_process(FIRST_DAY, LAST_DAY)
        scene = Scene(deployment, root)
        for message, files, _, _ in HISTORY:
            scene.history.append(scene.foreign.work.commit(message, {**team.MODEL_FILES, **files}))
        scene.foreign.push()
        with pytest.MonkeyPatch.context() as patch:
            scene.pair["f1"] = commit_at(
                scene.features.work, patch, 0, "Size features", {"features.py": gated_features(scene.hold)}
            )
            scene.pair["m1"] = commit_at(
                scene.model.work,
                patch,
                1,
                "Logistic regression",
                {"collab.toml": team.CONTRACT, "model.py": MODEL},
            )
        scene.features.push()
        scene.model.push()
        write_suites(deployment.config, scene)
        # The data API, which `collab-eval wait` asks, starts while the deployment does.
        api = start_data_api(root, deployment)
        stack.callback(api.stop)
        stack.callback(deployment.stop)
        start_without_reports(deployment)
        data_api.wait_until_healthy(api)
        scene.api_url = api.url
        yield scene


def verdict_of(scene: Scene, suite: str, sha: str, *extra: str) -> subprocess.CompletedProcess:
    return wait(scene.api_url, sha, *extra, token=data_api.TOKEN, suite=suite)


# First in the module: its second poll's runs queue behind the foreign burst, so its pushes
# happen while those runs go on, and the next test finds them done.
def test_two_repositories_pushed_within_one_poll_are_judged_by_the_commit_graph_and_each_author_answered(
    scene, monkeypatch
):
    f1, m1 = scene.pair["f1"], scene.pair["m1"]
    first = key(PAIR, features=f1, model=m1)
    scene.deployment.wait(f"the evaluation of {first}", lambda: scene.finished([first]), timeout=300)
    assert scene.results(PAIR)[first]["status"] == "passed"

    # Both authors push right after a tick of the commit sensor, so both pushes land before the next.
    poll_ended(scene, first, after=time.time())
    scene.hold.touch()
    m2 = commit_at(scene.model.work, monkeypatch, 20, "Regularise a little more", {"model.py": REGULARISED})
    scene.model.push()
    f2 = commit_at(
        scene.features.work, monkeypatch, 30, "The hour instead of the size", {"features.py": HOUR_FEATURES}
    )
    scene.features.push()
    nearer, newer = key(PAIR, features=f1, model=m2), key(PAIR, features=f2, model=m2)
    try:
        # The nearer combination's features are held: the newer one has its predictions first.
        scene.deployment.wait(
            f"{newer} to wait for {nearer}",
            lambda: scene.logged(newer, f"{newer} waits for the evaluation of {nearer}"),
            timeout=600,
        )
        assert not scene.finished([nearer])
    finally:
        scene.hold.unlink(missing_ok=True)  # whatever failed, no evaluation is left held
    scene.deployment.wait(
        "both combinations' runs to finish", lambda: scene.finished([nearer, newer]), timeout=300
    )

    [ticked] = {run.tags["dagster/tick"] for k in (nearer, newer) for run in scene.runs(k)}
    assert ticked != scene.runs(first)[0].tags["dagster/tick"]  # one poll requested both
    results = scene.results(PAIR)
    judged = {
        k: (results[k]["status"], results[k]["baseline_key"], results[k]["trigger"])
        for k in (first, nearer, newer)
    }
    assert judged == {
        # Both commits were new at the suite's first poll: it is each one's own change.
        first: ("passed", None, "features/main, model/main"),
        nearer: ("passed", first, "model/main"),
        # Compared with the nearer combination though it finished last, not with the older
        # one that happened to be done.
        newer: ("regressed", nearer, "features/main"),
    }

    # Each commit's note, fetched from the server, lists every combination it was judged in.
    judged_in = {
        scene.features: {f1: [first, nearer], f2: [newer]},
        scene.model: {m1: [first], m2: [nearer, newer]},
    }
    for served, commits in judged_in.items():
        notes = served.notes(scene.root / f"clone-{served.bare.stem}", list(commits))
        for sha, keys in commits.items():
            assert notes[sha].count("collab evaluation ") == len(keys), notes[sha]
            for k in keys:
                assert f"collab evaluation {k}: {results[k]['status']}" in notes[sha], notes[sha]

    # The model's author is answered for their own change, not failed by the features pushed after.
    done = verdict_of(scene, PAIR, m2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == f"{nearer}: passed"
    assert f"  {newer}: regressed" in done.stdout.splitlines()[2:]
    assert verdict_of(scene, PAIR, f2).returncode == 1
    for sha in (f1, m1):
        done = verdict_of(scene, PAIR, sha)
        assert done.returncode == 0 and done.stdout.startswith(f"{first}: passed"), (sha, done.stdout)


def poll_ended(scene: Scene, requested: str, after: float) -> None:
    """Until a tick of the commit sensor (the one that requested `requested`) ends after `after`."""
    instance = scene.deployment.instance
    tick = instance.schedule_storage.get_tick(int(scene.runs(requested)[0].tags["dagster/tick"]))
    origin, selector = tick.tick_data.instigator_origin_id, tick.tick_data.selector_id

    def ended() -> bool:
        latest = instance.get_ticks(origin, selector, limit=1)
        return bool(latest) and latest[0].timestamp > after and latest[0].status != TickStatus.STARTED

    scene.deployment.wait("the commit sensor's next tick", ended, timeout=120)


def test_every_commit_of_a_repository_watched_by_url_gets_a_verdict_a_note_and_a_trend_row(scene, tmp_path):
    keys = [key(FOREIGN, model=sha) for sha in scene.history]
    scene.deployment.wait("every foreign commit's run to finish", lambda: scene.finished(keys), timeout=600)

    results = scene.results(FOREIGN)
    statuses = {k: results[k]["status"] if k in results else None for k in keys}
    assert statuses == {k: status for k, (_, _, status, _) in zip(keys, HISTORY, strict=True)}
    for k, (message, _, _, words) in zip(keys, HISTORY, strict=True):
        assert words in results[k]["message"], (message, results[k]["message"])
        [run] = scene.runs(k)  # one run each: a commit's own failure is not retried
        assert run.is_success == (results[k]["status"] != "failed"), (message, run.status)

    notes = scene.foreign.notes(tmp_path / "clone", scene.history)
    for k, sha in zip(keys, scene.history, strict=True):
        assert notes[sha].startswith(f"collab evaluation {k}: {results[k]['status']}"), notes[sha]

    trend = commit_trend(
        scene.warehouse.read("evaluation_results"), scene.warehouse.read("evaluation_metrics")
    )
    trend = trend[trend["suite"] == FOREIGN]
    assert trend.drop_duplicates("evaluation_key").set_index("evaluation_key")["status"].to_dict() == statuses
    # A failed commit is a row without metrics (the report's cross at the foot of each plot).
    unscored = set(trend.loc[trend["value"].isna(), "evaluation_key"])
    assert unscored == {k for k, status in statuses.items() if status == "failed"}

    for k, sha in zip(keys, scene.history, strict=True):
        done = verdict_of(scene, FOREIGN, sha)
        assert done.returncode == EXPECTED[statuses[k]], (k, done.stdout, done.stderr)
        assert done.stdout.splitlines()[0] == f"{k}: {statuses[k]}"
