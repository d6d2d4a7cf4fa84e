"""Reconstructable jobs on the product location: dagstermill re-imports them in the kernel."""

import dagster as dg

from collab_pipelines.definitions import build_definitions


def _job(name: str, asset: str) -> dg.JobDefinition:
    # The configuration folder comes from $COLLAB_CONFIG_DIR, as in a deployed run.
    defs = dg.Definitions.merge(
        build_definitions(), dg.Definitions(jobs=[dg.define_asset_job(name, selection=[asset])])
    )
    return defs.resolve_job_def(name)


def render_evaluation_report() -> dg.JobDefinition:
    return _job("render_evaluation_report", "evaluation_report")


def export_orders() -> dg.JobDefinition:
    return _job("export_orders", "orders")


def render_returns_drift_report() -> dg.JobDefinition:
    return _job("render_returns_drift_report", "returns_drift_report")
