"""One commit, from commit to verdict: through the project vs the same work in a plain script.

The project's side is what happens after the sensor's interval: the sensor's tick finds the
commit, then the evaluation partition is materialized (checkout into a temporary directory,
training and scoring in a limited subprocess, the paired bootstrap against the baseline,
predictions and metrics written to the warehouse, gates as asset checks). The plain side is
a script a data scientist would run by hand: read the same exports with pandas, build the
same features, fit, predict the same held-out days and compute the same metrics.

Both run on the demo's model repository over the same months of exported flights and
weather. Prints the median of a few repetitions of each, their ratio against the goal (at
most 1.3), the sandbox's cost (the same evaluation in a suite that sets `unsandboxed: true`;
goal: at most 1.10), and Dagster's floor: a run of the same kind (a partition of evaluation_commits with
the two checks) whose asset does nothing, part of the project's figure.

    .venv/bin/python benchmarks/evaluation_commit.py [--through 2013-04-01] [--repeat 3]
        [--requirements "pyjokes==0.8.3"]

With --requirements, the newest commit also declares packages in requirements.txt; its
environment is built once before the timing (a warm cache), as it is for every commit after
the first with the same requirements.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml

from collab_pipelines import settings
from collab_pipelines.demo.model_repo import HISTORY, create_repository, register_suite
from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.demo.source import ProductDatabase
from collab_pipelines.evaluation.assets import (
    DIFF_CHECK,
    EVALUATION_ASSET,
    GATES_CHECK,
    build_model_evaluation,
)
from collab_pipelines.evaluation.environments import python_for
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor
from collab_pipelines.exports.assets import build_export_assets
from collab_pipelines.exports.catalog import load_catalog
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse.resources import Warehouse

GOAL_RATIO = 1.3
SANDBOX_GOAL = 1.10

PLAIN_SCRIPT = textwrap.dedent("""
    import sys, time
    import pandas as pd
    import sqlalchemy as sa
    from sklearn import metrics

    started = time.perf_counter()
    code, warehouse, split_at = sys.argv[1], sys.argv[2], pd.Timestamp(sys.argv[3])
    sys.path.insert(0, code)
    import features, model

    engine = sa.create_engine(warehouse)
    frames = {name: pd.read_sql(f"SELECT * FROM {name}", engine) for name in ("flights", "weather")}
    for frame in frames.values():
        for column in ("sched_dep_at", "time_hour", "observed_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
    # The label as the suite defines it: late is more than 15 minutes; cancelled flights unscored.
    delay = frames["flights"].set_index("id")["dep_delay"].dropna()
    table = features.build(frames)
    table = table[table["id"].isin(delay.index)].assign(delayed=lambda t: (delay.loc[t["id"]] > 15).astype(int).to_numpy())
    train, test = table[table["sched_dep_at"] < split_at], table[table["sched_dep_at"] >= split_at]
    drop = ["delayed", "sched_dep_at", "id"]
    fitted = model.build().fit(train.drop(columns=drop), train["delayed"])
    scores = fitted.predict_proba(test.drop(columns=drop))[:, 1]
    labels = fitted.predict(test.drop(columns=drop))
    print(metrics.roc_auc_score(test["delayed"], scores), metrics.average_precision_score(test["delayed"], scores),
          metrics.accuracy_score(test["delayed"], labels), time.perf_counter() - started)
""")


def declare_requirements(repository: Path, shas: list[str], requirements: str) -> None:
    """A last commit that adds requirements.txt, and its environment built (the warm cache)."""
    (repository / "requirements.txt").write_text(requirements.replace(",", "\n") + "\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com"}
    env.update(GIT_COMMITTER_NAME="Ada", GIT_COMMITTER_EMAIL="ada@example.com")
    for args in (["add", "requirements.txt"], ["commit", "--quiet", "-m", "Declare requirements"]):
        subprocess.run(["git", *args], cwd=repository, check=True, env=env, capture_output=True)
    shas.append(
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repository, check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    started = time.perf_counter()
    python_for(repository, None)
    print(f"environment for {requirements!r} built cold in {time.perf_counter() - started:.1f} s")


def prepare(work: Path, through: date) -> tuple[Path, list[str]]:
    os.environ[settings.STATE_DIR_ENV] = str(work)
    os.environ.pop(settings.WAREHOUSE_URL_ENV, None)
    # The demo is opt-in: its catalog (flights, weather) is the demo's configuration folder.
    os.environ.setdefault(settings.CONFIG_DIR_ENV, str(DEMO_CONFIG))
    engine = sa.create_engine(f"sqlite:///{work / 'product.db'}")
    ProductDatabase(engine).initialize(through)
    engine.dispose()
    exports = [
        a for a in build_export_assets(load_catalog()) if a.key.to_user_string() in ("flights", "weather")
    ]
    with dg.instance_for_test() as instance:
        last = date.fromordinal(through.toordinal() - 1).isoformat()
        dg.materialize(
            exports,
            instance=instance,
            resources={"warehouse": Warehouse(), "sources": SqlSources()},
            tags={
                "dagster/asset_partition_range_start": "2013-01-01",
                "dagster/asset_partition_range_end": last,
            },
        )
    repository = work / "model"
    shas = create_repository(repository)
    return repository, shas


def through_project(
    work: Path, repository: Path, shas: list[str], unsandboxed: bool = False
) -> tuple[float, dict]:
    """Sensor tick + materialization of the newest commit; its baseline was evaluated before."""
    resources = {"model_repositories": ModelRepositories(), "warehouse": Warehouse()}
    suites_file = work / f"suites-{time.monotonic_ns()}.yaml"
    os.environ[settings.SUITES_FILE_ENV] = str(suites_file)
    register_suite(suites_file, repository)
    if unsandboxed:
        raw = yaml.safe_load(suites_file.read_text())
        raw["suites"]["delay-model"]["unsandboxed"] = True
        suites_file.write_text(yaml.safe_dump(raw))
    with dg.instance_for_test() as instance:
        # The baseline (the last passing ancestor) exists already, as it would in practice.
        baseline = f"delay-model:model@{shas[1][:10]}"
        instance.add_dynamic_partitions("evaluation_commits", [baseline])
        for name in ("flights", "weather"):  # exported by prepare() through another instance
            instance.report_runless_asset_event(dg.AssetMaterialization(name))
        dg.materialize(
            [build_model_evaluation()], partition_key=baseline, instance=instance, resources=resources
        )
        context = dg.build_sensor_context(
            instance=instance,
            resources={"model_repositories": ModelRepositories()},
            cursor=json.dumps({"delay-model": {"model": {"main": shas[-2]}}}),
        )
        started = time.perf_counter()
        result = model_commits_sensor(context)
        [request] = result.run_requests
        instance.add_dynamic_partitions("evaluation_commits", [request.partition_key])
        run = dg.materialize(
            [build_model_evaluation()],
            partition_key=request.partition_key,
            instance=instance,
            resources=resources,
        )
        elapsed = time.perf_counter() - started
        # The node also reports the suite's champion when its policy promotes the commit.
        [materialization] = [
            m
            for m in run.asset_materializations_for_node("model_evaluation")
            if m.asset_key == EVALUATION_ASSET
        ]
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        assert metadata["baseline"] == baseline, metadata["baseline"]
        started = time.perf_counter()
        dg.materialize([floor_probe], partition_key=request.partition_key, instance=instance)
        metadata["floor"] = time.perf_counter() - started
    return elapsed, metadata


@dg.asset(
    name="floor_probe",
    partitions_def=evaluation_commits,
    check_specs=[dg.AssetCheckSpec(name, asset="floor_probe") for name in (GATES_CHECK, DIFF_CHECK)],
)
def floor_probe() -> dg.MaterializeResult:
    """Dagster's share: the evaluation's kind of run, with nothing to evaluate."""
    return dg.MaterializeResult(
        check_results=[
            dg.AssetCheckResult(check_name=name, passed=True) for name in (GATES_CHECK, DIFF_CHECK)
        ]
    )


def checked_out(work: Path, repository: Path, sha: str) -> Path:
    """The commit's files in a folder of their own, as a person would check it out."""
    code = work / f"plain-{time.monotonic_ns()}"
    code.mkdir()
    archive = subprocess.run(["git", "archive", sha], cwd=repository, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    return code


def plain(work: Path, repository: Path, sha: str, split_at: str) -> tuple[float, str]:
    code = checked_out(work, repository, sha)
    script = work / "plain.py"
    script.write_text(PLAIN_SCRIPT)
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, str(script), str(code), settings.warehouse_url(), split_at],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return time.perf_counter() - started, output.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--through", default="2013-04-01", help="export the days before this one")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requirements", help="comma-separated requirements of the newest commit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        work = Path(tmp)
        print(f"preparing: demo source and exports before {args.through}, the demo model repository ...")
        repository, shas = prepare(work, date.fromisoformat(args.through))
        if args.requirements:
            declare_requirements(repository, shas, args.requirements)
        project_times, plain_times, floor_times, unsandboxed_times = [], [], [], []
        for _ in range(args.repeat):
            seconds, metadata = through_project(work, repository, shas)
            project_times.append(seconds)
            unsandboxed_times.append(through_project(work, repository, shas, unsandboxed=True)[0])
            floor_times.append(metadata["floor"])
            seconds, output = plain(work, repository, shas[-1], metadata["split_at"])
            plain_times.append(seconds)
        project, baseline = statistics.median(project_times), statistics.median(plain_times)
        newest = "Declare requirements" if args.requirements else HISTORY[-1][0]
        print(
            f"commit '{newest}' on {metadata['train_rows']} training and {metadata['test_rows']} "
            f"test rows (data through {metadata['data_through']})"
        )
        print(
            f"  project: roc_auc {metadata['metric/roc_auc']:.4f}, verdict {metadata['verdict']} "
            f"against {metadata['baseline']}"
        )
        print(f"  plain:   roc_auc {float(output.split()[0]):.4f}")
        ratio = project / baseline
        pairs = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(project_times, plain_times, strict=True))
        print(f"each repetition, project/plain seconds: {pairs}")
        # Each pair ran back to back: on a shared machine their ratios vary less than the times.
        paired = statistics.median(a / b for a, b in zip(project_times, plain_times, strict=True))
        print(f"project, commit to verdict (median of {args.repeat}): {project:7.2f} s")
        print(
            f"  of which Dagster's floor (a run that does nothing): {statistics.median(floor_times):7.2f} s"
        )
        print(f"plain script, same training and scoring:      {baseline:7.2f} s")
        print(f"ratio: {ratio:.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'NOT met'})")
        print(f"median of the repetitions' own ratios: {paired:.2f}")
        bare = statistics.median(unsandboxed_times)
        sandbox_ratio = statistics.median(
            a / b for a, b in zip(project_times, unsandboxed_times, strict=True)
        )
        print(f"the same commit unsandboxed (suite sets unsandboxed: true): {bare:7.2f} s")
        print(
            f"sandbox cost, sandboxed/unsandboxed (median of paired ratios): {sandbox_ratio:.2f} "
            f"(goal <= {SANDBOX_GOAL}: {'met' if sandbox_ratio <= SANDBOX_GOAL else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
