"""The product's one entry point for Dagster: `defs`, built lazily when Dagster loads it.

The Dockerfile, Compose, the Helm values and deploy/workspace.yaml point at
`collab_pipelines.definitions:defs`: the product, built from the team's configuration folder
($COLLAB_CONFIG_DIR). `make run`'s workspace.yaml loads the demo location instead
(`collab_pipelines.demo.definitions:defs`), which wraps this one. The `@dg.definitions`
decorator defers the build to the loader, so importing this module builds nothing.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from collab_pipelines import settings


def shared_resources() -> dict:
    from collab_pipelines.exports.resources import SqlSources
    from collab_pipelines.warehouse.resources import Warehouse

    # Empty configuration means "resolve from the environment when a run starts", so the
    # same definitions serve the embedded default and production without a code change.
    return {"warehouse": Warehouse(), "sources": SqlSources()}


def build_definitions(config_dir: Path | None = None) -> dg.Definitions:
    """Every pattern's definitions, from one team's configuration folder, with the shared resources.

    `config_dir` defaults to `settings.config_dir()` ($COLLAB_CONFIG_DIR). Runs, report kernels
    and the data API resolve the folder through that variable too, so a caller that passes
    another folder sets the variable to it as well (the demo location does). No demo here.
    """
    from collab_pipelines.evaluation.definitions import build_defs as evaluation_defs
    from collab_pipelines.evaluation.prediction_assets import build_prediction_defs
    from collab_pipelines.evaluation.suites import load_suites
    from collab_pipelines.executors import collab_executor
    from collab_pipelines.exports.definitions import build_defs as export_defs
    from collab_pipelines.intake.definitions import build_defs as intake_defs
    from collab_pipelines.reports.definitions import build_defs as report_defs
    from collab_pipelines.reports.templates import TEMPLATES_DIR

    config = Path(config_dir) if config_dir is not None else settings.config_dir()
    catalog = config / settings.catalog_file().name
    upstream = (
        export_defs(catalog) if catalog.exists() else dg.Definitions(),
        # No suite, no evaluation: nothing of pattern 2 is drawn downstream of the exports, and
        # the reports that read its tables are left out with it (reports/definitions.py).
        evaluation_defs(catalog) if load_suites(settings.suites_file()) else dg.Definitions(),
        build_prediction_defs(catalog) if catalog.exists() else dg.Definitions(),
        intake_defs(config / settings.uploads_file().name),
    )
    # The shipped templates (generic ones, such as evaluation_report) and the team's own.
    templates = [TEMPLATES_DIR, config / settings.templates_dir().name]
    return dg.Definitions.merge(
        *upstream,
        report_defs(templates, upstream_defs=upstream),
        # Multiprocess unless a run's config picks Celery workers (deploy/celery.yaml).
        dg.Definitions(resources=shared_resources(), executor=collab_executor),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
