"""The ad-hoc diagnostic report: any template on any dataset, partition, date range or file."""

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from collab_pipelines.reports.assets import (
    REPORTS_GROUP,
    check_parameters,
    materialization,
    render_or_explain,
    report_failure,
    reports_dir,
)
from collab_pipelines.reports.injection import dagstermill_boilerplate, report_assignments
from collab_pipelines.reports.kernel import KernelSession
from collab_pipelines.reports.notebook import days_in_range
from collab_pipelines.reports.rendering import ReportExecutionError
from collab_pipelines.reports.templates import TemplateSpec
from collab_pipelines.warehouse.resources import Warehouse

DIAGNOSTIC_ASSET = "diagnostic_report"


class DiagnoseConfig(dg.Config):
    """Apply any template to any dataset, partition, date range or uploaded file."""

    template: str
    """The template's name (its file name without .ipynb)."""
    datasets: dict[str, str] = Field(default_factory=dict)
    """Role to dataset (or file path), overriding the template's own, e.g. {"flights": "weather"}."""
    file: str | None = None
    """A CSV, Parquet or JSON file (an upload) to read instead of one of the template's datasets."""
    file_role: str | None = None
    """Which role the file replaces; needed only if the template reads several."""
    partition_key: str | None = None
    """A day or an evaluation key. Empty: the newest in the warehouse."""
    start: str | None = None
    """First day of a date range (with `end`), rendered as one report."""
    end: str | None = None
    """Last day of the date range, included."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Values for the template's other parameters."""


def _refuse(description: str) -> dg.Failure:
    # A wrong launchpad config stays wrong on a retry.
    return dg.Failure(description=description, allow_retries=False)


def _datasets(spec: TemplateSpec, config: DiagnoseConfig) -> dict[str, str]:
    unknown_roles = sorted(set(config.datasets) - set(spec.datasets))
    if unknown_roles:
        raise _refuse(f"template {spec.path.name} reads {sorted(spec.datasets)}, not {unknown_roles}")
    datasets = {**spec.datasets, **config.datasets}
    if config.file:
        role = config.file_role or (next(iter(spec.datasets)) if len(spec.datasets) == 1 else None)
        if role not in spec.datasets:
            raise _refuse(
                f"template {spec.path.name} reads {sorted(spec.datasets)}: set `file_role` "
                "to the one the file replaces"
            )
        datasets[role] = str(Path(config.file).resolve())
    return datasets


def build_diagnostic_asset(specs: Mapping[str, TemplateSpec], problems: Sequence[str]) -> dg.AssetsDefinition:
    available = ", ".join(sorted(specs)) or "none"
    problem_note = (
        ("\n\nTemplates that did not load:\n" + "\n".join(f"- {p}" for p in problems)) if problems else ""
    )

    @dg.asset(
        name=DIAGNOSTIC_ASSET,
        description=(
            "An ad-hoc report: any template applied to any dataset, partition, date range or "
            f"uploaded file, chosen in the launchpad's run config. Templates: {available}." + problem_note
        ),
        group_name=REPORTS_GROUP,
        owners=["team:data-science"],
        kinds={"jupyter", "dagstermill"},
        tags={"collab/pattern": "reports"},
        output_required=False,
    )
    def _diagnostic(
        context: dg.AssetExecutionContext, config: DiagnoseConfig, warehouse: Warehouse
    ) -> Iterator[dg.AssetMaterialization]:
        spec = specs.get(config.template)
        if spec is None:
            raise _refuse(f"no template {config.template!r}; available: {available}")
        check_parameters(spec, config.parameters)
        datasets = _datasets(spec, config)
        keys = None
        key = config.partition_key
        if config.start or config.end:
            if not (config.start and config.end):
                raise _refuse("a date range needs both `start` and `end`")
            keys = days_in_range(config.start, config.end)
            key = keys[-1]
        label = (
            config.file and Path(config.file).name or (f"{keys[0]}..{keys[-1]}" if keys else key or "latest")
        )
        stem = reports_dir() / DIAGNOSTIC_ASSET / f"{context.run.run_id[:8]}-{spec.name}"
        with tempfile.TemporaryDirectory(prefix="collab-dagstermill-") as work, KernelSession() as session:
            try:
                rendered = render_or_explain(
                    session,
                    spec,
                    stem,
                    datasets,
                    keys or ([key] if key else None),
                    report_assignments(datasets, key, keys, config.parameters),
                    boilerplate=dagstermill_boilerplate(context, work),
                    title=f"{spec.name} on {label}",
                    note=f"Parameters supplied by Dagster run {context.run.run_id}",
                )
            except ReportExecutionError as error:
                raise report_failure(context, [(spec.name, error)], 0) from None
        yield materialization(
            context,
            spec,
            rendered,
            None,
            extra={"template_name": spec.name, "datasets": dg.MetadataValue.json(datasets), "subject": label},
        )

    return _diagnostic
