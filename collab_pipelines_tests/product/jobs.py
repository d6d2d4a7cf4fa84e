"""Reconstructable jobs on the product location: dagstermill re-imports them in the kernel."""

import dagster as dg

from collab_pipelines.definitions import build_definitions


def render_evaluation_report() -> dg.JobDefinition:
    # The configuration folder comes from $COLLAB_CONFIG_DIR, as in a deployed run.
    defs = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(
            jobs=[dg.define_asset_job("render_evaluation_report", selection=["evaluation_report"])]
        ),
    )
    return defs.resolve_job_def("render_evaluation_report")


def export_orders() -> dg.JobDefinition:
    defs = dg.Definitions.merge(
        build_definitions(),
        dg.Definitions(jobs=[dg.define_asset_job("export_orders", selection=["orders"])]),
    )
    return defs.resolve_job_def("export_orders")
