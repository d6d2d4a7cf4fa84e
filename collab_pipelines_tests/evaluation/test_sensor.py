"""The commit sensor on real git repositories: partitions, run requests, cursor, combinations."""

import json
import subprocess

import dagster as dg
import pytest

from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.sensors import model_commits_sensor


class Ticks:
    """Runs the sensor tick after tick, carrying its cursor the way the daemon does."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor: str | None = None

    def __call__(self) -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"model_repositories": ModelRepositories()}
        )
        result = model_commits_sensor(context)
        if isinstance(result, dg.SensorResult):
            self.cursor = result.cursor
            for request in result.dynamic_partitions_requests or []:
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
        return result

    def keys(self) -> list[str]:
        result = self()
        return (
            [request.partition_key for request in (result.run_requests or [])]
            if isinstance(result, dg.SensorResult)
            else []
        )


@pytest.fixture
def ticks(instance, state_dir) -> Ticks:
    return Ticks(instance)


def test_a_new_commit_becomes_a_partition_and_a_run_request(ticks, instance, suites, make_repo):
    repo = make_repo("model")
    first = repo.commit("Baseline model", {"model.py": "x = 1\n"})
    suites.add("delays", {"model": repo})

    result = ticks()
    [request] = result.run_requests
    assert request.partition_key == f"delays:model@{first[:10]}"
    assert request.run_key == request.partition_key
    assert instance.get_dynamic_partitions("evaluation_commits") == [request.partition_key]
    assert request.tags["collab/commit.model"] == first
    assert request.tags["collab/author.model"] == "Ada Scientist"
    assert request.tags["collab/message.model"] == "Baseline model"
    assert request.tags["collab/committed_at.model"].startswith("20")

    second = repo.commit("Use the departure hour", {"model.py": "x = 2\n"})
    assert ticks.keys() == [f"delays:model@{second[:10]}"]
    assert json.loads(ticks.cursor)["delays"]["model"]["main"] == second


def test_the_cursor_prevents_re_evaluation(ticks, suites, make_repo):
    repo = make_repo("model")
    repo.commit("one", {"a.py": "1"})
    suites.add("delays", {"model": repo})
    assert len(ticks.keys()) == 1
    cursor = ticks.cursor

    again = ticks()
    assert isinstance(again, dg.SensorResult) and not again.run_requests
    assert "No new commit" in again.skip_reason.skip_message
    assert ticks.cursor == cursor  # re-running a tick from the same cursor requests nothing new


def test_the_first_tick_evaluates_only_the_newest_commits(ticks, suites, make_repo):
    repo = make_repo("model")
    shas = [repo.commit(f"commit {i}", {"a.py": str(i)}) for i in range(5)]
    suites.add("delays", {"model": repo}, initial_commits=2)
    # Oldest first, so each commit's baseline is evaluated before it.
    assert ticks.keys() == [f"delays:model@{sha[:10]}" for sha in shas[-2:]]


def test_a_two_repository_suite_makes_combination_keys(ticks, suites, make_repo, monkeypatch):
    features, model = make_repo("features"), make_repo("model")
    f1 = features.commit("features v1", {"features.py": "1"})
    m1 = model.commit("model v1", {"model.py": "1"})
    suites.add("delays", {"features": features, "model": model}, contract="model")
    assert ticks.keys() == [f"delays:features@{f1[:10]}+model@{m1[:10]}"]

    f2 = features.commit("features v2", {"features.py": "2"})
    assert ticks.keys() == [f"delays:features@{f2[:10]}+model@{m1[:10]}"]

    # Both moved between ticks: each new commit is combined with what the other held when it
    # was made, in commit time whatever the suites file's order of repositories.
    m2 = commit_at(model, monkeypatch, 100, "model v2", {"model.py": "2"})
    f3 = commit_at(features, monkeypatch, 200, "features v3", {"features.py": "3"})
    assert ticks.keys() == [
        f"delays:features@{f2[:10]}+model@{m2[:10]}",
        f"delays:features@{f3[:10]}+model@{m2[:10]}",
    ]
    assert ticks.keys() == []
    # Pushed in the other order, with the features commit made first.
    m3 = commit_at(model, monkeypatch, 400, "model v3", {"model.py": "3"})
    f4 = commit_at(features, monkeypatch, 300, "features v4", {"features.py": "4"})
    assert ticks.keys() == [
        f"delays:features@{f4[:10]}+model@{m2[:10]}",
        f"delays:features@{f4[:10]}+model@{m3[:10]}",
    ]
    # Equal commit times follow the suites file's order: features first.
    m4 = commit_at(model, monkeypatch, 500, "model v4", {"model.py": "4"})
    f5 = commit_at(features, monkeypatch, 500, "features v5", {"features.py": "5"})
    assert ticks.keys() == [
        f"delays:features@{f5[:10]}+model@{m3[:10]}",
        f"delays:features@{f5[:10]}+model@{m4[:10]}",
    ]


def test_the_first_polls_combination_is_each_new_commits_own_change(ticks, suites, make_repo):
    features, model = make_repo("features"), make_repo("model")
    features.commit("features v1", {"features.py": "1"})
    model.commit("model v1", {"model.py": "1"})
    suites.add("delays", {"features": features, "model": model}, contract="model")
    [first] = ticks().run_requests
    assert first.tags["collab/trigger"] == "features/main, model/main"
    features.commit("features v2", {"features.py": "2"})
    [second] = ticks().run_requests
    assert second.tags["collab/trigger"] == "features/main"


def commit_at(repo, monkeypatch, seconds: int, message: str, files: dict) -> str:
    """A commit whose author and committer dates are `seconds` after a fixed moment."""
    stamp = f"@{1_767_000_000 + seconds} +0000"
    monkeypatch.setenv("GIT_AUTHOR_DATE", stamp)
    monkeypatch.setenv("GIT_COMMITTER_DATE", stamp)
    return repo.commit(message, files)


def test_several_branches_are_followed(ticks, suites, make_repo):
    repo = make_repo("model")
    main = repo.commit("main", {"a.py": "1"})
    repo.git("checkout", "--quiet", "-b", "experiment")
    experiment = repo.commit("experiment", {"a.py": "2"})
    suites.add("delays", {"model": repo}, branches={"model": ["main", "experiment"]})
    assert set(ticks.keys()) == {f"delays:model@{main[:10]}", f"delays:model@{experiment[:10]}"}


def test_an_unreachable_repository_does_not_stop_the_other_suites(ticks, suites, make_repo, tmp_path):
    good = make_repo("model")
    sha = good.commit("good", {"a.py": "1"})
    suites.add("broken", {"model": str(tmp_path / "no-such-repository")})
    suites.add("delays", {"model": good})
    assert ticks.keys() == [f"delays:model@{sha[:10]}"]
    assert "broken" not in json.loads(ticks.cursor)


def test_a_repository_is_watched_through_a_git_url(ticks, suites, make_repo):
    upstream = make_repo("upstream")
    first = upstream.commit("first", {"a.py": "1"})
    suites.add("remote", {"model": f"file://{upstream.path}"})
    assert ticks.keys() == [f"remote:model@{first[:10]}"]
    second = upstream.commit("second", {"a.py": "2"})
    assert ticks.keys() == [f"remote:model@{second[:10]}"]  # the mirror was fetched


def test_no_suites_file_is_a_skip_with_the_reason(ticks, state_dir):
    result = ticks()
    assert isinstance(result, dg.SkipReason)
    assert "suites.yaml" in result.skip_message


def test_commits_wait_for_the_first_export_of_their_data(ticks, instance, suites, make_repo):
    repo = make_repo("model")
    sha = repo.commit(
        "Baseline",
        {
            "collab.toml": (
                '[model]\nentry_point = "m:b"\n[data]\ndataset = "flights"\njoin = ["weather"]\n'
                'target = "y"\ntime_column = "t"\n'
            )
        },
    )
    suites.add("delays", {"model": repo})
    waiting = ticks()
    assert not waiting.run_requests
    assert "waits for its first export of flights, weather" in waiting.skip_reason.skip_message
    instance.report_runless_asset_event(dg.AssetMaterialization("flights"))
    assert ticks.keys() == []  # still waiting for the weather
    instance.report_runless_asset_event(dg.AssetMaterialization("weather"))
    assert ticks.keys() == [f"delays:model@{sha[:10]}"]  # nothing was skipped while it waited


def fast_import(repo, count: int) -> list[str]:
    """`count` commits on main in one `git fast-import`, oldest first; their SHAs."""
    parent = repo.git("rev-parse", "main")
    chunks = []
    for number in range(count):
        message = f"burst commit {number}\n".encode()
        content = f"x = {number}\n".encode()
        chunks.append(
            b"commit refs/heads/main\n"
            + f"mark :{number + 1}\ncommitter Ada <ada@example.com> {1_700_000_000 + number} +0000\n".encode()
            + f"data {len(message)}\n".encode()
            + message
            + (f"from {parent}\n" if number == 0 else "").encode()
            + f"M 644 inline model.py\ndata {len(content)}\n".encode()
            + content
            + b"\n"
        )
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        input=b"".join(chunks),
        cwd=repo.path,
        check=True,
        capture_output=True,
    )
    return repo.git("rev-list", "--reverse", f"{parent}..main").split()


def test_a_burst_larger_than_a_ticks_share_is_worked_off_over_the_following_ticks(
    ticks, instance, suites, make_repo
):
    repo = make_repo("model")
    repo.commit("start", {"model.py": "x = 0\n"})
    suites.add("delays", {"model": repo}, commits_per_tick=1000)
    assert len(ticks.keys()) == 1
    burst = fast_import(repo, 2500)
    assert len(burst) == 2500

    requested, cursors = [], []
    for _ in range(4):
        result = ticks()
        requested += [request.partition_key for request in result.run_requests or []]
        cursors.append(json.loads(ticks.cursor)["delays"]["model"]["main"])
    # Every commit, once, oldest first; the cursor moved only past what each tick requested.
    assert requested == [f"delays:model@{sha[:10]}" for sha in burst]
    assert cursors == [burst[999], burst[1999], burst[2499], burst[2499]]
    assert "No new commit to evaluate." in result.skip_reason.skip_message
