"""The demo's model repository: a data scientist predicting departure delays, as real git history.

`collab-demo model-repo` creates it under the state folder and registers it as the suite
`delay-model`, so the commit sensor has commits to evaluate the moment the demo starts. The
history is short and ordinary: a baseline, an improvement, a commit that regresses (the
weather overfits), one that crashes (a typo), then a fix.
"""

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from collab_pipelines import settings

SUITE = "delay-model"
AUTHOR = ("Ada Lovelace", "ada@example.com")

CONTRACT = """\
# How continuous evaluation runs this repository (see the project's README, "model contract").
[model]
entry_point = "model:build"

[data]
dataset = "flights"
join = ["weather"]
time_column = "sched_dep_at"
row_id = "id"
# Late: more than 15 minutes. The harness computes it; the held-out days' delays (and the
# actual times that give them away) are hidden from the feature function.
target = {column = "dep_delay", above = 15}
withheld = ["dep_time", "arr_time", "arr_delay", "air_time"]
features = "features:build"

[evaluation]
metrics = ["roc_auc", "average_precision", "accuracy"]
test_days = 3
max_changed_predictions = 0.35

[gates.roc_auc]
min = 0.55
max_drop = 0.01
"""

FEATURES_V1 = '''\
"""Features for predicting whether a flight leaves more than 15 minutes late."""

import pandas as pd


def build(frames):
    # Every scheduled flight: the harness trains and scores those with a delay to predict.
    flown = frames["flights"]
    return pd.DataFrame({
        "id": flown["id"],
        "sched_dep_at": flown["sched_dep_at"],
        "distance": flown["distance"],
        "carrier": flown["carrier"],
        "origin": flown["origin"],
    })
'''

FEATURES_HOUR = FEATURES_V1.replace(
    '        "distance": flown["distance"],\n',
    '        "hour": flown["hour"],  # delays pile up over the day\n        "distance": flown["distance"],\n',
)

FEATURES_WEATHER = FEATURES_HOUR.replace(
    """    return pd.DataFrame({""",
    """    weather = frames["weather"][["origin", "time_hour", "visib", "wind_speed", "precip", "humid"]]
    flown = flown.merge(weather, on=["origin", "time_hour"], how="left")
    table = pd.DataFrame({""",
).replace(
    """        "origin": flown["origin"],
    })
""",
    """        "origin": flown["origin"],
    })
    for column in ("visib", "wind_speed", "precip", "humid"):
        table[column] = flown[column].fillna(flown[column].median()).to_numpy()
    return table
""",
)

# Congestion, with a typo in a column name: this commit fails in the features stage.
FEATURES_CRASH = FEATURES_WEATHER.replace(
    """    return table
""",
    """    table["departures_that_hour"] = flown.groupby(["origin", "time_hour"])["id"].transform("count").to_numpy()
    table["late_share"] = flown["dep_dealy"].gt(15).mean()
    return table
""",
)

FEATURES_FIXED = FEATURES_HOUR.replace(
    """    return pd.DataFrame({""", """    table = pd.DataFrame({"""
).replace(
    """        "origin": flown["origin"],
    })
""",
    """        "origin": flown["origin"],
    })
    # The weather is left out until it generalises beyond a few weeks of January.
    table["departures_that_hour"] = flown.groupby(["origin", "time_hour"])["id"].transform("count")
    return table
""",
)

MODEL = '''\
"""The estimator: a scikit-learn pipeline, tuned through its step names (classifier__C, ...)."""

from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORIES = ["carrier", "origin"]


def build():
    columns = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES)],
        remainder=StandardScaler(),
    )
    # Balanced classes: about one flight in six is late, and the labels should say so.
    classifier = LogisticRegression(max_iter=1000, class_weight="balanced")
    return Pipeline([("columns", columns), ("classifier", classifier)])
'''

README = """\
# delay-model

Predicts whether a flight from New York leaves more than 15 minutes late.
`collab.toml` tells continuous evaluation how to train and score it; commit, and the
evaluation of your commit appears in the Dagster UI.
"""

# (message, files, days before now)
HISTORY = [
    (
        "Baseline: logistic regression on carrier, airport and distance",
        {"README.md": README, "collab.toml": CONTRACT, "features.py": FEATURES_V1, "model.py": MODEL},
        9,
    ),
    ("Add the scheduled departure hour", {"features.py": FEATURES_HOUR}, 7),
    (
        "Add the weather at departure: visibility, wind, precipitation, humidity",
        {"features.py": FEATURES_WEATHER},
        5,
    ),
    ("Add congestion: departures in the same hour at the same airport", {"features.py": FEATURES_CRASH}, 2),
    ("Fix the congestion feature; leave the weather out for now", {"features.py": FEATURES_FIXED}, 1),
]


def git(path: Path, *args: str, when: datetime | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    return subprocess.run(
        ["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def create_repository(path: Path, now: datetime | None = None) -> list[str]:
    """Create the repository with its history; returns the commit SHAs, oldest first."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    shas = []
    for message, files, days_ago in HISTORY:
        for name, content in files.items():
            (path / name).write_text(content)
        git(path, "add", "--all")
        git(path, "commit", "--quiet", "-m", message, when=now - timedelta(days=days_ago))
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


def register_suite(suites_file: Path, repository: Path) -> None:
    """Add (or point) the demo suite in the suites file, keeping every other suite."""
    raw = yaml.safe_load(suites_file.read_text()) if suites_file.exists() else None
    raw = raw or {}
    raw.setdefault("suites", {})[SUITE] = {
        "repositories": {"model": {"location": str(repository), "branches": ["main"]}},
        "baseline": "last_passing",
        "limits": {"seconds": 600, "memory_mb": 4096},
        # The engineers' half of the contract: a commit cannot move what judges it.
        "pinned": {
            "data": {
                "dataset": "flights",
                "time_column": "sched_dep_at",
                "row_id": "id",
                "target": {"column": "dep_delay", "above": 15},
                "withheld": ["dep_time", "arr_time", "arr_delay", "air_time"],
            },
            "evaluation": {"test_days": 3},
            "gates": {"roc_auc": {"min": 0.55, "max_drop": 0.01}},
        },
        # The product's side: every passing commit on main becomes the champion, which predicts
        # each new day of flights (fitted on the two weeks before it) into delay_model_predictions.
        "champion": {"policy": "last_passing", "branch": "main"},
        "predictions": {"train_days": 14, "repredict_days": 3, "challengers": 2},
        # What a flight is, not when: the calendar columns (year, month, day) differ every day.
        "drift": {"columns": ["carrier", "origin", "dest", "distance", "sched_dep_time"]},
    }
    suites_file.parent.mkdir(parents=True, exist_ok=True)
    suites_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def _model_repo(args) -> None:
    path = Path(args.path) if args.path else settings.state_dir() / "model-repos" / SUITE
    if path.exists():
        print(f"model repository already at {path}")
    else:
        shas = create_repository(path)
        print(f"created {path} with {len(shas)} commits")
    register_suite(settings.suites_file(), path)
    print(f"suite {SUITE!r} registered in {settings.suites_file()}")


def register(commands) -> None:
    command = commands.add_parser("model-repo", help="create the demo's model repository and watch it")
    command.add_argument("--path", help="where to create it (default: model-repos/ in the state folder)")
    command.set_defaults(func=_model_repo)
