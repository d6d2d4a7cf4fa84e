"""The one Definitions object: every pattern's definitions, plus the shared resources."""

from __future__ import annotations

import dagster as dg

from collab_pipelines import evaluation, exports, intake, reports
from collab_pipelines.demo.definitions import defs as demo_defs
from collab_pipelines.executors import collab_executor
from collab_pipelines.exports.resources import SqlSources
from collab_pipelines.warehouse import Warehouse


def shared_resources() -> dict:
    # Empty configuration means "resolve from the environment when a run starts", so the
    # same definitions serve the embedded default and production without a code change.
    return {"warehouse": Warehouse(), "sources": SqlSources()}


defs = dg.Definitions.merge(
    exports.defs,
    evaluation.defs,
    reports.defs,
    intake.defs,
    demo_defs,
    # Multiprocess unless a run's config picks Celery workers (deploy/celery.yaml).
    dg.Definitions(resources=shared_resources(), executor=collab_executor),
)
