"""The project's one entry point for Dagster: `defs`, built lazily when Dagster loads it.

`workspace.yaml`, the Dockerfile, Compose and the Helm values all point at
`collab_pipelines.definitions:defs`. The `@dg.definitions` decorator defers the build to
the loader, so importing this module (or anything in the package) builds nothing.
"""

from __future__ import annotations

import dagster as dg


def shared_resources() -> dict:
    from collab_pipelines.exports.resources import SqlSources
    from collab_pipelines.warehouse.resources import Warehouse

    # Empty configuration means "resolve from the environment when a run starts", so the
    # same definitions serve the embedded default and production without a code change.
    return {"warehouse": Warehouse(), "sources": SqlSources()}


def build_definitions() -> dg.Definitions:
    """Every pattern's definitions merged with the shared resources and the executor."""
    from collab_pipelines.demo.definitions import build_defs as demo_defs
    from collab_pipelines.evaluation.definitions import build_defs as evaluation_defs
    from collab_pipelines.executors import collab_executor
    from collab_pipelines.exports.definitions import build_defs as export_defs
    from collab_pipelines.intake.definitions import build_defs as intake_defs
    from collab_pipelines.reports.definitions import build_defs as report_defs

    upstream = (export_defs(), evaluation_defs(), intake_defs())
    return dg.Definitions.merge(
        *upstream,
        report_defs(upstream_defs=upstream),
        demo_defs(),
        # Multiprocess unless a run's config picks Celery workers (deploy/celery.yaml).
        dg.Definitions(resources=shared_resources(), executor=collab_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
