"""One day of the champion's predictions: through the project vs a plain script doing the same.

The project's side is a materialization of `<suite>_predictions` for a day: the champion's
commit checked out, started in the sandbox, the training window and the day read from the
warehouse, fitted and predicted, the day's rows written, and the two checks (drift against the
window, the champion's quality on the day). The plain side is what a person would run by
hand: read the same window and day with pandas, build the same features, fit on the window,
predict the day.

Both run on the demo's model repository (its newest passing commit promoted to champion) and
exported flights and weather. Prints the median of a few repetitions of each and the ratio
against the goal (at most 1.3).

    .venv/bin/python benchmarks/predictions_day.py [--through 2013-04-01] [--train-days 60] [--repeat 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import yaml

from collab_pipelines import settings
from collab_pipelines.demo.model_repo import register_suite
from collab_pipelines.evaluation import champion
from collab_pipelines.evaluation.assets import build_model_evaluation
from collab_pipelines.evaluation.prediction_assets import build_prediction_assets
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import load_suites
from collab_pipelines.warehouse.resources import Warehouse

sys.path.insert(0, str(Path(__file__).parent))
from evaluation_commit import checked_out, prepare  # noqa: E402 -- the same demo source, exports and repository

GOAL_RATIO = 1.3
PLAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    import pandas as pd
    import sqlalchemy as sa

    started = time.perf_counter()
    code, warehouse, day, since = sys.argv[1], sys.argv[2], pd.Timestamp(sys.argv[3]), sys.argv[4]
    sys.path.insert(0, code)
    import features, model

    engine = sa.create_engine(warehouse)
    frames = {
        "flights": pd.read_sql(
            sa.text("SELECT * FROM flights WHERE _partition >= :since AND _partition <= :day"),
            engine, params={"since": since, "day": sys.argv[3]},
        ),
        "weather": pd.read_sql("SELECT * FROM weather", engine),
    }
    for frame in frames.values():
        for column in ("sched_dep_at", "time_hour", "observed_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
    delay = frames["flights"].set_index("id")["dep_delay"]
    table = features.build(frames)
    past = table[(table["sched_dep_at"] < day) & table["id"].isin(delay.dropna().index)]
    today = table[table["sched_dep_at"] >= day]
    drop = ["sched_dep_at", "id"]
    fitted = model.build().fit(past.drop(columns=drop), (delay.loc[past["id"]] > 15).astype(int).to_numpy())
    scores = fitted.predict_proba(today.drop(columns=drop))[:, 1]
    print(len(scores), float(scores.mean()), time.perf_counter() - started)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--through", default="2013-04-01", help="export the days before this one")
    parser.add_argument("--train-days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    day = (date.fromisoformat(args.through) - timedelta(days=1)).isoformat()
    since = (date.fromisoformat(day) - timedelta(days=args.train_days)).isoformat()
    with tempfile.TemporaryDirectory(prefix="bench-predictions-") as tmp:
        work = Path(tmp)
        print(f"preparing: demo source and exports before {args.through}, the demo model repository ...")
        repository, shas = prepare(work, date.fromisoformat(args.through))
        suites_file = work / "suites.yaml"
        os.environ[settings.SUITES_FILE_ENV] = str(suites_file)
        register_suite(suites_file, repository)
        raw = yaml.safe_load(suites_file.read_text())
        raw["suites"]["delay-model"]["predictions"] = {"train_days": args.train_days}
        suites_file.write_text(yaml.safe_dump(raw))
        suite = load_suites(suites_file)["delay-model"]
        resources = {"model_repositories": ModelRepositories(), "warehouse": Warehouse()}
        [predictions] = build_prediction_assets({"delay-model": suite})
        with dg.instance_for_test() as instance:
            key = f"delay-model:model@{shas[-1][:10]}"
            instance.add_dynamic_partitions("evaluation_commits", [key])
            dg.materialize(
                [build_model_evaluation()], partition_key=key, instance=instance, resources=resources
            )
            champion.promote(Warehouse(), suite, key, "benchmark", "the newest commit", "benchmark")
            project_times, plain_times = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                result = dg.materialize(
                    [predictions], partition_key=day, instance=instance, resources=resources
                )
                project_times.append(time.perf_counter() - started)
                [materialization] = result.asset_materializations_for_node(predictions.key.path[-1])
                rows = materialization.metadata["dagster/row_count"].value
                mean = materialization.metadata["mean_score"].value
                plain_times.append(plain(work, repository, shas[-1], day, since)[0])
            plain_rows, plain_mean = plain(work, repository, shas[-1], day, since)[1:]
    project, baseline = statistics.median(project_times), statistics.median(plain_times)
    paired = statistics.median(a / b for a, b in zip(project_times, plain_times, strict=True))
    print(
        f"day {day}, {args.train_days} training days: project {rows} rows (mean score {mean:.4f}), "
        f"plain {plain_rows} rows (mean score {plain_mean:.4f})"
    )
    print(f"project, one day's predictions (median of {args.repeat}): {project:7.2f} s")
    print(f"plain script, same fit and predict:           {baseline:7.2f} s")
    ratio = project / baseline
    print(
        f"ratio: {ratio:.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'NOT met'}); "
        f"median of paired ratios {paired:.2f}"
    )


def plain(work: Path, repository: Path, sha: str, day: str, since: str) -> tuple[float, int, float]:
    code = checked_out(work, repository, sha)
    script = work / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, str(script), str(code), settings.warehouse_url(), day, since],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return time.perf_counter() - started, int(output[0]), float(output[1])


if __name__ == "__main__":
    main()
