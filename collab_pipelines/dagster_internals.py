"""The one module of the package that reaches into Dagster's private parts, and why.

(dagstermill's are in reports/dagstermill_internals.py, the only other one.) Each name below has
no public spelling in Dagster 1.13; collab_pipelines_tests/test_dagster_internals.py checks each
one's place and shape, so an upgrade that moves one fails there, by name, before an export or
run monitoring does. docs/architecture.md lists them with the public routes that were weighed.

- The exports' per-day materializations (exports/assets.py). A range run reports each day with
  its own data version, which is Dagster's `dagster/data_version` tag on the event: the public
  `MaterializeResult(data_version=...)` gives every partition of a run the same one. Dagster
  batches only the materializations it derives from an output, so with
  DAGSTER_EVENT_BATCH_SIZE set PostgreSQL storage writes those in batches, while yielded
  `AssetMaterialization`s are written one by one; `batched_materializations` builds the days'
  events with the same batch metadata Dagster gives its own (docs/exports.md has the figures).
- A run launcher's health check (run_launcher.py) must answer in `CheckRunHealthResult` and
  `WorkerStatus`, and reach the launcher's instance through `_instance`, as dagster-k8s's
  launcher does.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_IS_USER_PROVIDED_TAG, DATA_VERSION_TAG
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id
from dagster._core.launcher import CheckRunHealthResult, RunLauncher, WorkerStatus

__all__ = [
    "CheckRunHealthResult",
    "WorkerStatus",
    "batched_materializations",
    "data_version_of",
    "launcher_instance",
    "versioned",
]


def versioned(version: str) -> dict[str, str]:
    """A materialization's tags that give it `version` as its data version, as Dagster's own do."""
    return {DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"}


def data_version_of(materialization: dg.AssetMaterialization | None) -> str | None:
    return materialization.tags.get(DATA_VERSION_TAG) if materialization is not None else None


def batched_materializations(
    context: dg.AssetExecutionContext, materializations: list[dg.AssetMaterialization]
) -> Iterator[DagsterEvent]:
    """`materializations` as one event batch, as Dagster sends those it derives from an output.

    With DAGSTER_EVENT_BATCH_SIZE set, PostgreSQL storage writes them that many at a time.
    Without it, or on SQLite, each is written on its own, as a plain yield would. Building an
    event logs it to the instance; yielding it hands it to the step, so a caller that acts
    between two events (a fault point) sees the earlier ones recorded.
    """
    step = context.op_execution_context.get_step_execution_context()
    batch_id = generate_event_batch_id()
    last = len(materializations) - 1
    for index, materialization in enumerate(materializations):
        yield DagsterEvent.asset_materialization(
            step, materialization, DagsterEventBatchMetadata(batch_id, index == last)
        )


def launcher_instance(launcher: RunLauncher) -> dg.DagsterInstance:
    """The instance a run launcher was registered with (Dagster keeps it behind a weak reference)."""
    return launcher._instance
