"""Run retries as production configures them, for any pattern's tests.

`deploy/dagster.yaml` turns run retries on. When a run fails, Dagster decides at once whether
it will be retried and records that on the run (`dagster/will_retry`): false for a run whose
step failed and that carries `NO_RETRY_OF_STEP_FAILURES` (collab_pipelines/retries.py), true
for any other failure while retries remain. What the step raised plays no part:
`dg.Failure(allow_retries=False)` only stops an op's retry policy. The daemon then re-executes
the run from its failure. `run_with_retries` does what the daemon does, in the test's own
process, so a test sees every attempt without a daemon; `daemon_would_retry` asks the daemon's
own decision for one run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import dagster as dg
import yaml
from dagster._core.storage.tags import RETRY_NUMBER_TAG, WILL_RETRY_TAG
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import should_retry

from collab_pipelines_tests.e2e.processes import PROJECT

DEPLOY_INSTANCE = PROJECT / "deploy" / "dagster.yaml"


def production_run_retries() -> dict:
    """The `run_retries` block of deploy/dagster.yaml, exactly as deployed."""
    settings = yaml.safe_load(DEPLOY_INSTANCE.read_text())["run_retries"]
    assert settings.get("enabled") is True, "deploy/dagster.yaml no longer retries runs"
    return settings


@contextlib.contextmanager
def retrying_instance() -> Iterator[dg.DagsterInstance]:
    """A test instance with deploy/dagster.yaml's run retry settings."""
    with dg.instance_for_test(overrides={"run_retries": production_run_retries()}) as instance:
        yield instance


def will_retry(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.tags.get(WILL_RETRY_TAG) == "true"


def daemon_would_retry(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run-retry daemon's own decision for a finished run (Dagster's `should_retry`)."""
    run = instance.get_run_by_id(run_id)
    assert run is not None, run_id
    return should_retry(run, instance)


def run_with_retries(
    job: dg.ReconstructableJob,
    instance: dg.DagsterInstance,
    *,
    before_attempt: Callable[[int], None] | None = None,
    **execute_kwargs,
) -> list[dg.DagsterRun]:
    """Every attempt of one run: the first, then each re-execution from failure Dagster asked for.

    `before_attempt(n)` runs before attempt n (0 first), e.g. to bring a database back.
    """
    attempts = []
    if before_attempt:
        before_attempt(0)
    with dg.execute_job(job, instance=instance, raise_on_error=False, **execute_kwargs) as result:
        attempts.append(result.dagster_run)
    limit = 1 + int(production_run_retries().get("max_retries", 1))
    while will_retry(instance, attempts[-1].run_id):
        assert len(attempts) < limit, f"Dagster asked for attempt {len(attempts) + 1} of at most {limit}"
        if before_attempt:
            before_attempt(len(attempts))
        options = dg.ReexecutionOptions.from_failure(attempts[-1].run_id, instance)
        # The retry number is how Dagster counts attempts against max_retries; the daemon sets it.
        tags = {**_carried_tags(attempts[-1]), RETRY_NUMBER_TAG: str(len(attempts))}
        with dg.execute_job(
            job, instance=instance, raise_on_error=False, reexecution_options=options, tags=tags
        ) as result:
            attempts.append(result.dagster_run)
    return [instance.get_run_by_id(run.run_id) for run in attempts]


def _carried_tags(run: dg.DagsterRun) -> dict[str, str]:
    """The parent's own tags (its partition among them), as the daemon's retry keeps them."""
    return {
        key: value
        for key, value in run.tags.items()
        if not key.startswith("dagster/") or key.startswith(("dagster/partition", "dagster/asset_partition"))
    }
