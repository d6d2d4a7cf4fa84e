"""Report assets: one per template, and the ad-hoc diagnostic report.

Each step renders its partitions in one Jupyter kernel (see rendering.py), yields one
materialization per partition with its own notebook ("View Notebook" in the UI) and
code-hidden HTML (`html_path`), and fails with the failing cell named if a notebook fails.
"""

import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

with warnings.catch_warnings():
    # dagstermill announces its Beta status on import; the notice is known and noisy in notebooks.
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagstermill.factory import get_papermill_parameters
    from dagstermill.translator import DagsterTranslator

from collab_pipelines import settings
from collab_pipelines.reports.notebook import days_in_range
from collab_pipelines.reports.rendering import (
    KernelSession,
    ReportExecutionError,
    python_assignments,
    render,
)
from collab_pipelines.reports.templates import TemplateSpec
from collab_pipelines.warehouse.resources import Warehouse

REPORTS_GROUP = "reports"
DIAGNOSTIC_ASSET = "diagnostic_report"
# Evaluated in the kernel, so a warehouse URL with a password is never written into a notebook.
WAREHOUSE_URL_CODE = "context.resources.warehouse.resolved_url()"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_WARNED_RUNS: set[str] = set()


def reports_dir() -> Path:
    """Rendered reports live in the state folder, inside the code server's working directory
    under `make run`, which is where the UI's "View Notebook" may read."""
    return settings.state_dir() / "reports"


def path_part(key: str) -> str:
    return _UNSAFE.sub("_", key).strip("._") or "_"


def _dagstermill_boilerplate(context: dg.AssetExecutionContext, work: str) -> str:
    step_context = context.op_execution_context.get_step_execution_context()
    parameters = get_papermill_parameters(step_context, {}, os.path.join(work, "log"), "asset")
    return DagsterTranslator.codify(parameters)


def _check_parameters(spec: TemplateSpec, supplied: Mapping[str, Any]) -> None:
    unknown = sorted(set(supplied) - set(spec.defaults))
    if unknown:
        raise dg.Failure(
            description=f"template {spec.path.name}: unknown parameters {unknown}; its parameters "
            f"cell declares {sorted(spec.defaults)}"
        )


def _assignments(
    datasets: Mapping[str, str],
    partition_key: str | None,
    partition_keys: Sequence[str] | None,
    parameters: Mapping[str, Any],
) -> str:
    values = {
        "partition_key": partition_key,
        "partition_keys": list(partition_keys) if partition_keys else None,
        "datasets": dict(datasets),
    }
    return (
        python_assignments(values)
        + f"warehouse_url = {WAREHOUSE_URL_CODE}\n"
        + python_assignments(dict(parameters))
    )


def _warn_if_unviewable(context: dg.AssetExecutionContext, path: Path) -> None:
    try:
        path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        if context.run.run_id in _WARNED_RUNS:
            return
        _WARNED_RUNS.add(context.run.run_id)
        context.log.warning(
            f"{path} is outside this code location's working directory {Path.cwd()}, so the UI's "
            "View Notebook will refuse it; set COLLAB_STATE_DIR to a folder inside it"
        )


def _materialization(
    context: dg.AssetExecutionContext,
    spec: TemplateSpec,
    rendered,
    partition_key: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dg.AssetMaterialization:
    _warn_if_unviewable(context, rendered.notebook_path)
    return dg.AssetMaterialization(
        asset_key=context.asset_key,
        partition=partition_key,
        metadata={
            "notebook": dg.MetadataValue.notebook(str(rendered.notebook_path)),
            "html_path": dg.MetadataValue.path(str(rendered.html_path)),
            "template": dg.MetadataValue.path(str(spec.path)),
            "render_seconds": round(rendered.seconds, 3),
            "warm_kernel": rendered.warm_kernel,
            **(extra or {}),
        },
    )


def _failure(errors: list[tuple[str, ReportExecutionError]], rendered: int) -> dg.Failure:
    first_key, first = errors[0]
    lines = [f"{key}: {error}" for key, error in errors]
    metadata: dict[str, Any] = {"failed_partitions": len(errors), "rendered_partitions": rendered}
    if first.notebook_path is not None:
        metadata["notebook"] = dg.MetadataValue.notebook(str(first.notebook_path))
        metadata["html_path"] = dg.MetadataValue.path(str(first.notebook_path.with_suffix(".html")))
    if first.cell_number is not None:
        metadata["failing_cell"] = first.cell_number
    return dg.Failure(
        description=f"{len(errors)} report(s) failed; the first, {first_key}: {first}"
        + ("\n" + "\n".join(lines[1:]) if len(lines) > 1 else ""),
        metadata=metadata,
    )


def follow_upstream(read_whole: list[str]) -> dg.AutomationCondition:
    """Render a day (or a commit) once its upstream partition is written.

    Not `eager()`: that looks only at the newest partition of the definition, which for the
    catalog's fixed 2013 range is a day that a replayed or backfilled source reaches last. Deps
    read whole (the flights behind a per-commit report) neither trigger nor hold a report.
    """

    def on(condition: dg.AutomationCondition) -> dg.AutomationCondition:
        return condition.ignore(dg.AssetSelection.assets(*read_whole)) if read_whole else condition

    return (
        on(dg.AutomationCondition.any_deps_updated())
        & ~on(dg.AutomationCondition.any_deps_missing())
        & ~on(dg.AutomationCondition.any_deps_in_progress())
        & ~dg.AutomationCondition.in_progress()
    ).with_label("render when upstream is updated")


def report_deps(spec: TemplateSpec, partitions_def, upstream_partitions: dict) -> list[dg.AssetDep]:
    """A dep partitioned otherwise than the report (the flights days of a per-commit report) is
    read whole: without this, Dagster maps a commit key onto a day that does not exist, and
    a backfill of several commits fails."""
    deps = []
    for dep in spec.deps:
        upstream = upstream_partitions.get(dep)
        whole = upstream is not None and upstream != partitions_def
        deps.append(dg.AssetDep(dep, partition_mapping=dg.AllPartitionMapping() if whole else None))
    return deps


def build_report_asset(
    spec: TemplateSpec,
    partitions_def: dg.PartitionsDefinition | None,
    upstream_partitions: dict[str, dg.PartitionsDefinition | None] | None = None,
) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # single_run backfills are the point of these assets; the Beta notice is known.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _define_report_asset(
            spec, partitions_def, report_deps(spec, partitions_def, upstream_partitions or {})
        )


def _define_report_asset(
    spec: TemplateSpec, partitions_def: dg.PartitionsDefinition | None, deps: list[dg.AssetDep]
) -> dg.AssetsDefinition:
    defaults_md = "\n".join(f"- `{name} = {value}`" for name, value in spec.defaults.items())

    @dg.asset(
        name=spec.asset,
        description=spec.description,
        group_name=REPORTS_GROUP,
        owners=list(spec.owners),
        kinds={"jupyter", "dagstermill"},
        tags={"collab/pattern": "reports", **spec.tags},
        deps=deps,
        partitions_def=partitions_def,
        # A range of days renders in one run and one kernel instead of one run per day.
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        automation_condition=follow_upstream(
            [
                dep.asset_key.to_user_string()
                for dep in deps
                if isinstance(dep.partition_mapping, dg.AllPartitionMapping)
            ]
        ),
        output_required=False,
        config_schema={
            "parameters": dg.Field(
                dg.Permissive(),
                default_value={},
                description="Values for the template's parameters cell; any left out keep its defaults.",
            )
        },
        op_tags={"notebook_path": str(spec.path)},
        metadata={
            "template": dg.MetadataValue.path(str(spec.path)),
            "parameters": dg.MetadataValue.md(defaults_md or "_none_"),
            "datasets": dg.MetadataValue.json(dict(spec.datasets)),
        },
    )
    def _report(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetMaterialization]:
        parameters = context.op_execution_context.op_config["parameters"]
        _check_parameters(spec, parameters)
        keys: list[str | None] = list(context.partition_keys) if partitions_def else [None]
        errors: list[tuple[str, ReportExecutionError]] = []
        rendered_count = 0
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="collab-dagstermill-") as work, KernelSession() as session:
            boilerplate = _dagstermill_boilerplate(context, work)
            for key in keys:
                folder = reports_dir() / spec.asset / path_part(key or "unpartitioned")
                assignments = _assignments(spec.datasets, key, [key] if key else None, parameters)
                try:
                    rendered = render(
                        session,
                        spec.path,
                        folder / context.run.run_id[:8],
                        assignments,
                        boilerplate=boilerplate,
                        title=f"{spec.asset} {key or ''}".strip(),
                        note=f"Parameters supplied by Dagster run {context.run.run_id}",
                    )
                except ReportExecutionError as error:
                    errors.append((key or spec.asset, error))
                    context.log.error(f"{spec.asset} {key or ''}: {error}")
                    continue
                rendered_count += 1
                yield _materialization(context, spec, rendered, key)
        context.log.info(
            f"rendered {rendered_count} of {len(keys)} {spec.asset} report(s) in one kernel in "
            f"{time.perf_counter() - started:.1f}s"
        )
        if errors:
            raise _failure(errors, rendered_count)

    return _report


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
            raise dg.Failure(description=f"no template {config.template!r}; available: {available}")
        _check_parameters(spec, config.parameters)
        unknown_roles = sorted(set(config.datasets) - set(spec.datasets))
        if unknown_roles:
            raise dg.Failure(
                description=f"template {spec.path.name} reads {sorted(spec.datasets)}, not {unknown_roles}"
            )
        datasets = {**spec.datasets, **config.datasets}
        if config.file:
            role = config.file_role or (next(iter(spec.datasets)) if len(spec.datasets) == 1 else None)
            if role not in spec.datasets:
                raise dg.Failure(
                    description=f"template {spec.path.name} reads {sorted(spec.datasets)}: set `file_role` "
                    "to the one the file replaces"
                )
            datasets[role] = str(Path(config.file).resolve())
        keys = None
        key = config.partition_key
        if config.start or config.end:
            if not (config.start and config.end):
                raise dg.Failure(description="a date range needs both `start` and `end`")
            keys = days_in_range(config.start, config.end)
            key = keys[-1]
        assignments = _assignments(datasets, key, keys, config.parameters)
        label = (
            config.file and Path(config.file).name or (f"{keys[0]}..{keys[-1]}" if keys else key or "latest")
        )
        stem = reports_dir() / DIAGNOSTIC_ASSET / f"{context.run.run_id[:8]}-{spec.name}"
        with tempfile.TemporaryDirectory(prefix="collab-dagstermill-") as work, KernelSession() as session:
            try:
                rendered = render(
                    session,
                    spec.path,
                    stem,
                    assignments,
                    boilerplate=_dagstermill_boilerplate(context, work),
                    title=f"{spec.name} on {label}",
                    note=f"Parameters supplied by Dagster run {context.run.run_id}",
                )
            except ReportExecutionError as error:
                raise _failure([(spec.name, error)], 0) from None
        yield _materialization(
            context,
            spec,
            rendered,
            None,
            extra={"template_name": spec.name, "datasets": dg.MetadataValue.json(datasets), "subject": label},
        )

    return _diagnostic
