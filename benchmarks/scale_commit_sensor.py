"""The commit sensor's tick with 10,000 evaluated commits in its history, against an empty one.

A real (bare) git repository holds the demo's model repository with 10,000 commits, written in
one `git fast-import`; a real (SQLite) instance holds what 10,000 evaluations leave behind: a
partition of evaluation_commits per commit, a run per commit with the sensor's run key, and a
materialization of model_evaluation per partition. The sensor's cursor points at the newest
commit, and before each tick 5 new commits arrive.

A tick is what the daemon does with the sensor: evaluate it (git, the contract, the exports'
latest materializations), then, for its result, look up each run key among the runs and each
requested partition among the partitions, and add the new ones. Creating the runs is left out:
it costs the same per run whatever the history. The baseline is the same tick on a repository
with one commit before the new ones and an instance with no evaluation. Prints the median
tick of each, their ratio and the goal (each tick under 1 s).

    .venv/bin/python benchmarks/scale_commit_sensor.py [--commits 10000] [--ticks 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from _history import instance_with_history
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

from collab_pipelines import settings
from collab_pipelines.demo.model_repo import AUTHOR, CONTRACT, FEATURES_FIXED, MODEL, SUITE, register_suite
from collab_pipelines.demo.paths import DEMO_CONFIG
from collab_pipelines.evaluation.assets import EVALUATION_ASSET
from collab_pipelines.evaluation.definitions import build_defs
from collab_pipelines.evaluation.partitions import evaluation_commits
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor
from collab_pipelines.warehouse.resources import Warehouse

GOAL_SECONDS = 1.0
NEW_PER_TICK = 5
_EPOCH = 1_700_000_000


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def append_commits(repository: Path, first: int, count: int) -> list[str]:
    """`count` commits on main, numbered from `first`, in one fast-import; returns their SHAs."""
    stream = []
    for number in range(first, first + count):
        stream.append(b"commit refs/heads/main\nmark :%d\n" % (number + 1))
        stamp = _EPOCH + number * 60
        stream.append(f"committer {AUTHOR[0]} <{AUTHOR[1]}> {stamp} +0000\n".encode())
        stream.append(_data(f"Tune the model, revision {number}"))
        if number == 0:
            stream.append(b"M 100644 inline collab.toml\n" + _data(CONTRACT))
            stream.append(b"M 100644 inline features.py\n" + _data(FEATURES_FIXED))
        elif number == first:
            stream.append(b"from refs/heads/main^0\n")
        stream.append(b"M 100644 inline model.py\n" + _data(f"{MODEL}\n# revision {number}\n"))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repository, input=b"".join(stream), check=True)
    output = subprocess.run(
        ["git", "rev-list", f"--max-count={count}", "--reverse", "refs/heads/main"],
        cwd=repository,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output.split()


def key_of(sha: str) -> str:
    return f"{SUITE}:model@{sha[:10]}"


def record_history(instance: dg.DagsterInstance, shas: list[str]) -> None:
    """What evaluating each commit left in the instance: partition, run, materialization."""
    keys = [key_of(sha) for sha in shas]
    instance.add_dynamic_partitions(evaluation_commits.name, keys)
    for key in keys:
        run = dg.DagsterRun(
            job_name="evaluate_commits",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={RUN_KEY_TAG: key, SENSOR_NAME_TAG: "model_commits_sensor", PARTITION_NAME_TAG: key},
        )
        instance.add_run(run)
        instance.report_runless_asset_event(dg.AssetMaterialization(EVALUATION_ASSET, partition=key))


def tick(instance: dg.DagsterInstance, repository_def, cursor: str) -> tuple[float, str, int]:
    """One tick as the daemon runs it; returns its seconds, the new cursor and the requests."""
    resources = {"model_repositories": ModelRepositories()}
    started = time.perf_counter()
    # With the instance's ref, as the code server evaluates it: partitions are then checked
    # against the instance plus the tick's own requests.
    context = dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        resources=resources,
        cursor=cursor,
        repository_def=repository_def,
    )
    # As the daemon and the code server run it: partitions are looked up in the instance.
    with partition_loading_context(dynamic_partitions_store=instance):
        data = model_commits_sensor.evaluate_tick(context)
    run_keys = [request.run_key for request in data.run_requests or []]
    for run_key in run_keys:  # the daemon's idempotence check, one query per run key
        instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}))
    for request in data.dynamic_partitions_requests or []:
        new = [
            key
            for key in request.partition_keys
            if not instance.has_dynamic_partition(request.partitions_def_name, key)
        ]
        instance.add_dynamic_partitions(request.partitions_def_name, new)
    return time.perf_counter() - started, data.cursor, len(run_keys)


def measure(work: Path, name: str, history: int, ticks: int) -> tuple[float, float, float]:
    """Median tick with `history` evaluated commits; also the setup's seconds."""
    repository = work / name
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repository)], check=True)
    suites_file = work / f"suites-{name}.yaml"
    register_suite(suites_file, repository)
    os.environ[settings.SUITES_FILE_ENV] = str(suites_file)
    started = time.perf_counter()
    shas = append_commits(repository, 0, history)
    git_seconds = time.perf_counter() - started

    def fill(instance: dg.DagsterInstance) -> None:
        for dataset in ("flights", "weather"):  # exported already: the sensor does not wait
            instance.report_runless_asset_event(dg.AssetMaterialization(dataset))
        record_history(instance, shas if history > 1 else [])  # one commit: nothing evaluated yet

    with instance_with_history(work / f"instance-{name}", fill) as (instance, instance_seconds):
        cursor = json.dumps({SUITE: {"model": {"main": shas[-1]}}})
        repository_def = dg.Definitions.merge(
            build_defs(), dg.Definitions(resources={"warehouse": Warehouse()})
        ).get_repository_def()
        times = []
        # The first tick pays for imports and caches; the median of the others is reported.
        for number in range(ticks + 1):
            new = append_commits(repository, history + number * NEW_PER_TICK, NEW_PER_TICK)
            seconds, cursor, requested = tick(instance, repository_def, cursor)
            assert requested == NEW_PER_TICK, (
                f"{name}: {requested} run requests for {NEW_PER_TICK} new commits"
            )
            assert json.loads(cursor)[SUITE]["model"]["main"] == new[-1]
            times.append(seconds)
            record_history(instance, new)  # as their runs would
    return statistics.median(times[1:]), git_seconds, instance_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()
    # The contract reads the demo's datasets (flights, weather).
    os.environ.setdefault(settings.CONFIG_DIR_ENV, str(DEMO_CONFIG))
    with tempfile.TemporaryDirectory(prefix="bench-commit-sensor-") as tmp:
        work = Path(tmp)
        os.environ[settings.STATE_DIR_ENV] = str(work)
        empty, _, _ = measure(work, "empty", 1, args.ticks)
        full, git_seconds, instance_seconds = measure(work, "history", args.commits, args.ticks)
    print(
        f"commit sensor ticks, {NEW_PER_TICK} new commits each ({args.commits} commits written by "
        f"git fast-import in {git_seconds:.1f} s, their evaluations recorded in {instance_seconds:.0f} s)"
    )
    verdict = "met" if max(empty, full) < GOAL_SECONDS else "NOT met"
    print(f"  empty history     {empty * 1000:7.1f} ms")
    print(f"  {args.commits} evaluated {full * 1000:7.1f} ms")
    print(f"  ratio {full / empty:5.2f}   goal: each tick < {GOAL_SECONDS:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
