"""The champion: promoted by a person through the job or by the suite's policy, recorded in
champion_history, shown on the suite's asset and tagged in the model repository."""

import subprocess

import dagster as dg
import pytest

from collab_pipelines.evaluation.champion import (
    HISTORY,
    POLICY_BY,
    current_champion,
    history,
    mark,
    promote,
    row_change,
)
from collab_pipelines.evaluation.champion_assets import (
    CHAMPION_BY_TAG,
    CHAMPION_REASON_TAG,
    champion_specs,
    promote_champion,
)
from collab_pipelines.evaluation.records import (
    empty_predictions,
    metrics_frame,
    results_row,
    write_evaluation,
)
from collab_pipelines.evaluation.repos import GitRepository
from collab_pipelines.evaluation.resources import ModelRepositories
from collab_pipelines.evaluation.suites import asset_name, parse_suites
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines_tests.evaluation.test_evaluation import (
    GOOD,
    MODEL,
    WITHOUT_HOUR,
    checks,
    evaluate,
    metadata,
)
from collab_pipelines_tests.evaluation.test_feedback import Log

TAG = "collab/champion/delay-model"


def change(
    instance, suite: str, reason: str, tags: dict | None = None, **config
) -> dg.ExecuteInProcessResult:
    return promote_champion.execute_in_process(
        instance=instance,
        resources={"model_repositories": ModelRepositories(), "warehouse": Warehouse()},
        run_config={"ops": {"change_champion": {"config": {"suite": suite, "reason": reason, **config}}}},
        tags=tags,
        raise_on_error=False,
    )


def failure(result: dg.ExecuteInProcessResult) -> str:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.step_failure_data.user_failure_data.description


def champion_event(result, suite: str = "delay-model") -> dict:
    [event] = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == dg.AssetKey(f"{asset_name(suite)}_champion")
    ]
    return {key: value.value for key, value in event.metadata.items()}


@pytest.mark.parametrize(
    ("suite", "name"), [("delay-model", "delay_model"), ("a.b_c-1", "a_b_c_1"), ("plain", "plain")]
)
def test_a_suite_name_becomes_an_asset_name(suite, name):
    assert asset_name(suite) == name


def test_two_suites_that_make_one_asset_name_are_refused():
    suites = parse_suites(
        {"suites": {n: {"repositories": {"m": {"location": "/x"}}} for n in ("a-b", "a.b")}}, "suites.yaml"
    )
    with pytest.raises(ValueError, match="'a-b' and 'a.b' both make the asset a_b_champion"):
        champion_specs(suites)


def test_a_person_promotes_through_the_job_and_a_regressed_key_is_refused(
    ticks, instance, warehouse, suites, make_repo
):
    repo = make_repo("model")
    good = repo.commit("Baseline", GOOD)
    repo.commit("Simplify: drop the departure hour", {"features.py": WITHOUT_HOUR})
    suites.add("delay-model", {"model": repo})
    good_key, worse_key = ticks.keys()
    assert evaluate(instance, good_key).success
    assert not checks(evaluate(instance, worse_key))["metric_gates"].passed

    promoted = change(
        instance,
        "delay-model",
        "best recall on the holiday week",
        tags={"dagster/user": "grace@example.com"},
        evaluation_key=good_key,
    )
    assert promoted.success
    assert current_champion(warehouse, "delay-model") == good_key
    [row] = history(warehouse, "delay-model").to_dict("records")
    assert (row["action"], row["evaluation_key"], row["previous_key"]) == ("promote", good_key, None)
    assert (row["by"], row["reason"], row["run_id"]) == (
        "grace@example.com",
        "best recall on the holiday week",
        promoted.run_id,
    )
    assert row_change(row).commits == {"model": good}
    tags = instance.get_run_by_id(promoted.run_id).tags
    assert tags[CHAMPION_BY_TAG] == "grace@example.com"
    assert tags[CHAMPION_REASON_TAG] == "best recall on the holiday week"
    shown = champion_event(promoted)
    assert (shown["champion"], shown["previous"], shown["by"]) == (good_key, "none", "grace@example.com")
    assert shown["commits"] == {"model": good}
    assert repo.git("rev-parse", f"{TAG}^{{commit}}") == good  # a local repository: tagged in place

    refused = change(instance, "delay-model", "it is newer", by="bob", evaluation_key=worse_key)
    assert not refused.success
    message = failure(refused)
    assert worse_key in message and "its evaluation is regressed" in message
    assert instance.get_run_by_id(refused.run_id).tags[CHAMPION_BY_TAG] == "bob"  # who tried, and why
    again = change(instance, "delay-model", "again", evaluation_key=good_key)
    assert "already the champion" in failure(again)
    assert (
        len(history(warehouse, "delay-model")) == 1 and current_champion(warehouse, "delay-model") == good_key
    )

    demoted = change(instance, "delay-model", "drifted", action="demote")
    assert demoted.success
    assert current_champion(warehouse, "delay-model") is None
    last = history(warehouse, "delay-model").iloc[-1]
    assert (last["action"], last["previous_key"], last["by"]) == ("demote", good_key, "unknown")
    assert champion_event(demoted)["champion"] == "none (demoted)"
    assert repo.git("tag", "--list", TAG) == ""
    assert "the suite has none" in failure(change(instance, "delay-model", "twice", action="demote"))


def test_the_last_passing_policy_promotes_passing_commits_on_its_branch(
    ticks, instance, warehouse, suites, make_repo
):
    repo = make_repo("model")
    good = repo.commit("Baseline", GOOD)
    worse = repo.commit("Simplify: drop the departure hour", {"features.py": WITHOUT_HOUR})
    repo.git("checkout", "--quiet", "-b", "experiments", good)
    tuned = repo.commit("Try C=0.5", {"model.py": MODEL.replace('"balanced")', '"balanced", C=0.5)')})
    repo.git("checkout", "--quiet", "main")
    policy = {"policy": "last_passing", "branch": "main"}
    suites.add("delay-model", {"model": repo}, champion={**policy, "branch": "release"})
    good_key, worse_key, tuned_key = (f"delay-model:model@{sha[:10]}" for sha in (good, worse, tuned))
    instance.add_dynamic_partitions("evaluation_commits", [good_key, worse_key, tuned_key])

    # A policy that cannot be applied (no branch `release`) leaves the verdict as it was.
    first = evaluate(instance, good_key)
    assert first.success and metadata(first)["verdict"] == "passed"
    assert current_champion(warehouse, "delay-model") is None
    warnings = [e.message for e in instance.all_logs(first.run_id) if e.level == 30]
    assert any(
        "champion policy of suite 'delay-model' was not applied" in w and "release" in w for w in warnings
    )

    suites.add("delay-model", {"model": repo}, branches={"model": ["main", "experiments"]}, champion=policy)
    promoted = evaluate(instance, good_key)
    assert current_champion(warehouse, "delay-model") == good_key
    [row] = history(warehouse, "delay-model").to_dict("records")
    assert (row["by"], row["run_id"], row["previous_key"]) == (POLICY_BY, promoted.run_id, None)
    assert "branch 'main'" in row["reason"]
    assert champion_event(promoted)["by"] == POLICY_BY
    assert repo.git("rev-parse", f"{TAG}^{{commit}}") == good

    assert metadata(evaluate(instance, tuned_key))["verdict"] == "passed"  # on experiments, not main
    assert metadata(evaluate(instance, worse_key))["verdict"] == "regressed"
    assert current_champion(warehouse, "delay-model") == good_key
    assert len(history(warehouse, "delay-model")) == 1


def passed(warehouse: Warehouse, key: str, commits: dict) -> None:
    write_evaluation(
        warehouse,
        key,
        results_row(key, key.split(":")[0], commits, "run-1", status="passed"),
        metrics_frame(key, {}),
        empty_predictions(),
    )


def test_the_tag_reaches_a_clone_of_a_repository_watched_by_url(make_repo, tmp_path, warehouse):
    repo = make_repo("model")
    first = repo.commit("first", {"model.py": "x = 1\n"})
    second = repo.commit("second", {"model.py": "x = 2\n"})
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repo.path), str(remote)], check=True)
    url = f"file://{remote}"
    [suite] = parse_suites(
        {"suites": {"delay-model": {"repositories": {"model": {"location": url}}}}}, "suites.yaml"
    ).values()
    watched = GitRepository(url, tmp_path / "mirrors", "model")
    watched.sync()
    clone = tmp_path / "scientist"
    subprocess.run(["git", "clone", "--quiet", url, str(clone)], check=True)

    def fetched() -> str:
        subprocess.run(
            ["git", "-C", str(clone), "fetch", "--quiet", "--tags", "--force", "--prune-tags"], check=True
        )
        return subprocess.run(
            ["git", "-C", str(clone), "tag", "--list", "--format=%(objectname)", TAG],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    for sha in (first, second):
        key = f"delay-model:model@{sha[:10]}"
        passed(warehouse, key, {"model": sha})
        log = Log()
        mark(suite, watched, promote(warehouse, suite, key, "ada", "better", "r"), log)
        assert log.warnings == []
        assert fetched() == sha  # moved, not only created
    assert watched.tag_target(TAG) == second

    unreachable = GitRepository(f"file://{tmp_path}/gone.git", tmp_path / "mirrors", "model")
    log = Log()
    mark(suite, unreachable, row_change(history(warehouse, "delay-model").iloc[-1].to_dict()), log)
    [warning] = log.warnings
    assert TAG in warning and "repository 'model'" in warning and "gone.git" in warning


def test_history_is_its_own_table_and_another_suite_is_apart(warehouse):
    [delays, other] = parse_suites(
        {"suites": {n: {"repositories": {"model": {"location": "/x"}}} for n in ("delay-model", "other")}},
        "f",
    ).values()
    passed(warehouse, "delay-model:model@1111111111", {"model": "1" * 40})
    passed(warehouse, "other:model@2222222222", {"model": "2" * 40})
    promote(warehouse, delays, "delay-model:model@1111111111", "ada", "first", "r1")
    with pytest.raises(ValueError, match="other:model@2222222222 .* is an evaluation of suite 'other'"):
        promote(warehouse, delays, "other:model@2222222222", "ada", "wrong suite", "r2")
    with pytest.raises(ValueError, match=r"delay-model:model@3333333333 .* no evaluation of it is recorded"):
        promote(warehouse, delays, "delay-model:model@3333333333", "ada", "unknown", "r3")
    with pytest.raises(ValueError, match="a reason is required"):
        promote(warehouse, other, "other:model@2222222222", "ada", " ", "r4")
    assert current_champion(warehouse, "other") is None
    assert warehouse.count(HISTORY) == 1


def test_each_suite_of_the_suites_file_has_its_champion_asset(suites, make_repo):
    from collab_pipelines.evaluation.definitions import build_defs

    repo = make_repo("model")
    repo.commit("Baseline", GOOD)
    suites.add("delay-model", {"model": repo})
    suites.add("rain", {"model": repo})
    # The warehouse comes from the root; the evaluation domain alone names it unresolved.
    defs = dg.Definitions.merge(build_defs(), dg.Definitions(resources={"warehouse": Warehouse()}))
    graph = defs.resolve_asset_graph()
    champions = {
        key.to_user_string() for key in graph.get_all_asset_keys() if "champion" in key.to_user_string()
    }
    assert champions == {"champion_history", "delay_model_champion", "rain_champion"}
    node = graph.get(dg.AssetKey("delay_model_champion"))
    assert node.group_name == "evaluation" and node.owners and node.kinds
    assert "'delay-model'" in node.description and "collab/champion/delay-model" in node.description
    assert dg.AssetKey("model_evaluation") in node.parent_keys
