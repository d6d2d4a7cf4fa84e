"""Report assets: one per template. The ad-hoc diagnostic report is in diagnose.py.

Each step renders its partitions on a few kept Jupyter kernels (kernel.py, rendering.py),
yields one materialization per partition with its notebook, a link that opens it in the UI
(`report`) and the code-hidden HTML (`html_path`), and fails naming the failing cell if a
notebook fails, or the dataset and partition if an input is missing.
"""

import contextlib
import re
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.reports import links
from collab_pipelines.reports.injection import dagstermill_boilerplate, report_assignments
from collab_pipelines.reports.kernel import KernelSession, in_kernels
from collab_pipelines.reports.notebook import missing_inputs
from collab_pipelines.reports.publishing import missing_inputs_notebook
from collab_pipelines.reports.rendering import ReportExecutionError, render, write_report
from collab_pipelines.reports.templates import TemplateSpec
from collab_pipelines.warehouse.resources import Warehouse

REPORTS_GROUP = "reports"
# A kernel's first notebook pays its start and imports (about as much again as a day's render),
# so a second kernel starts only for a range of at least two days each.
DAYS_PER_KERNEL = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")
_WARNED_RUNS: set[str] = set()
_UNLINKED_RUNS: set[str] = set()


def reports_dir() -> Path:
    """Rendered reports live in the shared folder: a run writes them, and the code server reads
    them for the UI's notebook view, only from inside its own working directory."""
    return settings.shared_dir() / "reports"


def path_part(key: str) -> str:
    return _UNSAFE.sub("_", key).strip("._") or "_"


def check_parameters(spec: TemplateSpec, supplied: Mapping[str, Any]) -> None:
    unknown = sorted(set(supplied) - set(spec.defaults))
    if unknown:
        raise dg.Failure(
            description=f"template {spec.path.name}: unknown parameters {unknown}; its parameters "
            f"cell declares {sorted(spec.defaults)}",
            allow_retries=False,
        )


def _warn_if_unviewable(context: dg.AssetExecutionContext, path: Path) -> None:
    directory = links.code_server_directory(context)
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        if context.run.run_id in _WARNED_RUNS:
            return
        _WARNED_RUNS.add(context.run.run_id)
        context.log.warning(
            f"{path} is outside the code server's working directory {directory}, so the UI's "
            "notebook view will refuse it; set COLLAB_SHARED_DIR to a folder inside it"
        )


def _say_link(context: dg.AssetExecutionContext, notebook_path: Path, link: str | None) -> None:
    """Print the link in the run's log too: a command-line run shows it in the terminal."""
    if link is not None:
        context.log.info(f"report {notebook_path.name}: {links.absolute(link)}")
    elif context.run.run_id not in _UNLINKED_RUNS:
        _UNLINKED_RUNS.add(context.run.run_id)
        context.log.warning(
            "no `report` link: this run carries no code location name, COLLAB_CODE_LOCATION is not "
            f"set, and no workspace.yaml in {links.code_server_directory(context)} loads this code"
        )


def notebook_metadata(context: dg.AssetExecutionContext, notebook_path: Path) -> dict[str, Any]:
    _warn_if_unviewable(context, notebook_path)
    link = links.notebook_link(context, notebook_path)
    _say_link(context, notebook_path, link)
    return {
        **({"report": dg.MetadataValue.url(link)} if link else {}),
        "notebook": dg.MetadataValue.notebook(str(notebook_path)),
        "html_path": dg.MetadataValue.path(str(notebook_path.with_suffix(".html"))),
    }


def materialization(
    context: dg.AssetExecutionContext,
    spec: TemplateSpec,
    rendered,
    partition_key: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key=context.asset_key,
        partition=partition_key,
        metadata={
            **notebook_metadata(context, rendered.notebook_path),
            "template": dg.MetadataValue.path(str(spec.path)),
            "render_seconds": round(rendered.seconds, 3),
            "kernel_seconds": round(rendered.kernel_seconds, 3),
            "warm_kernel": rendered.warm_kernel,
            **(extra or {}),
        },
    )


def report_failure(
    context: dg.AssetExecutionContext, errors: list[tuple[str, ReportExecutionError]], rendered: int
) -> dg.Failure:
    first_key, first = errors[0]
    lines = [f"{key}: {error}" for key, error in errors]
    metadata: dict[str, Any] = {"failed_partitions": len(errors), "rendered_partitions": rendered}
    if first.notebook_path is not None:
        metadata.update(notebook_metadata(context, first.notebook_path))
    if first.cell_number is not None:
        metadata["failing_cell"] = first.cell_number
    # The same notebook on the same data fails the same way. allow_retries=False keeps op retry
    # policies off it; run retries skip it only through the run's tag (collab_pipelines/retries.py).
    return dg.Failure(
        description=f"{len(errors)} report(s) failed; the first, {first_key}: {first}"
        + ("\n" + "\n".join(lines[1:]) if len(lines) > 1 else ""),
        metadata=metadata,
        allow_retries=False,
    )


def kernels_for(partitions: int, configured: int | None = None) -> int:
    """How many kernels render `partitions` at once: the run's `kernels` config, else
    `$COLLAB_REPORT_KERNELS` (default 1), and never fewer than DAYS_PER_KERNEL days each."""
    most = configured if configured is not None else settings.report_kernels()
    return max(1, min(most, partitions // DAYS_PER_KERNEL))


def render_or_explain(
    session: KernelSession,
    spec: TemplateSpec,
    stem: Path,
    datasets: Mapping[str, str],
    keys: Sequence[str] | None,
    assignments: str,
    **render_options,
):
    """Render, unless an input is missing: then the published notebook says which, at the top."""
    # The warehouse, whatever COLLAB_REPORT_SOURCE says: it serves a data scientist's own machine.
    missing = missing_inputs(datasets, keys, source="warehouse")
    if missing:
        notebook = stem.with_suffix(".ipynb")
        title = render_options.get("title", spec.name)
        write_report(missing_inputs_notebook(title, missing), notebook, title)
        raise ReportExecutionError(
            "missing inputs: " + "; ".join(missing) + f". Nothing was rendered; see {notebook}",
            None,
            notebook,
        )
    return render(session, spec.path, stem, assignments, **render_options)


def follow_upstream(
    read_whole: list[str], partitioned: bool = True, tables: Sequence[str] = ()
) -> dg.AutomationCondition:
    """Render a day (or a commit) once its upstream partition is written.

    Not `eager()`: that looks only at the newest partition of the definition, which for the
    catalog's fixed range is a day that a replayed or backfilled source reaches last. Deps
    read whole (the exports behind a per-commit report) neither trigger nor hold a report.
    `tables`, unpartitioned deps of a partitioned report (an upload's combined table), hold it
    until they are first written, but their rewrite does not trigger: every day of the report
    depends on them, and each rewrite would render them all.
    An unpartitioned report (a trend across commits) renders when any upstream partition is
    written; a partition that was never written (a failed evaluation) does not hold it.

    A run of the upstream that newly failed renders too: a failed evaluation writes no partition,
    yet its commit's report explains the failure and the trend marks it failed.
    """
    newly_failed = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.execution_failed().newly_true()
    )
    if not partitioned:
        return (
            (dg.AutomationCondition.any_deps_updated() | newly_failed)
            & ~dg.AutomationCondition.any_deps_in_progress()
            & ~dg.AutomationCondition.in_progress()
        ).with_label("render when upstream is updated or fails")

    def on(condition: dg.AutomationCondition, ignored: Sequence[str] = read_whole) -> dg.AutomationCondition:
        return condition.ignore(dg.AssetSelection.assets(*ignored)) if ignored else condition

    not_triggering = [*read_whole, *tables]
    return (
        (
            (
                on(dg.AutomationCondition.any_deps_updated(), not_triggering)
                & ~on(dg.AutomationCondition.any_deps_missing())
            )
            | on(newly_failed, not_triggering)
        )
        & ~on(dg.AutomationCondition.any_deps_in_progress())
        & ~dg.AutomationCondition.in_progress()
    ).with_label("render when upstream is updated or fails")


def report_deps(spec: TemplateSpec, partitions_def, upstream_partitions: dict) -> list[dg.AssetDep]:
    """A dep partitioned otherwise than the report (the days behind a per-commit report) is
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
    deps = report_deps(spec, partitions_def, upstream_partitions or {})
    read_whole = [
        dep.asset_key.to_user_string()
        for dep in deps
        if isinstance(dep.partition_mapping, dg.AllPartitionMapping)
    ]
    defaults_md = "\n".join(f"- `{name} = {value}`" for name, value in spec.defaults.items())
    with warnings.catch_warnings():
        # single_run backfills are the point of these assets; the Beta notice is known.
        warnings.simplefilter("ignore", dg.BetaWarning)
        decorator = dg.asset(
            name=spec.asset,
            description=spec.description,
            group_name=REPORTS_GROUP,
            owners=list(spec.owners),
            kinds={"jupyter", "dagstermill"},
            tags={"collab/pattern": "reports", **spec.tags},
            deps=deps,
            partitions_def=partitions_def,
            # A range of days renders in one run, on kept kernels, instead of one run per day.
            backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
            automation_condition=follow_upstream(
                read_whole,
                partitions_def is not None,
                tables=[dep for dep, upstream in (upstream_partitions or {}).items() if upstream is None],
            ),
            output_required=False,
            config_schema={
                "parameters": dg.Field(
                    dg.Permissive(),
                    default_value={},
                    description="Values for the template's parameters cell; any left out keep its defaults.",
                ),
                "kernels": dg.Field(
                    int,
                    is_required=False,
                    description="At most this many Jupyter kernels render a range's days at once, "
                    "each taking at least two days (default: $COLLAB_REPORT_KERNELS, else 1).",
                ),
            },
            op_tags={"notebook_path": str(spec.path)},
            metadata={
                "template": dg.MetadataValue.path(str(spec.path)),
                "parameters": dg.MetadataValue.md(defaults_md or "_none_"),
                "datasets": dg.MetadataValue.json(dict(spec.datasets)),
            },
        )

    @decorator
    def _report(context: dg.AssetExecutionContext, warehouse: Warehouse) -> Iterator[dg.AssetMaterialization]:
        config = context.op_execution_context.op_config
        parameters = config["parameters"]
        check_parameters(spec, parameters)
        keys: list[str | None] = list(context.partition_keys) if partitions_def else [None]
        kernels = kernels_for(len(keys), config.get("kernels"))
        errors: list[tuple[str, ReportExecutionError]] = []
        rendered_count = 0
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="collab-dagstermill-") as work:
            boilerplate = dagstermill_boilerplate(context, work)

            def render_key(session: KernelSession, key: str | None):
                folder = reports_dir() / spec.asset / path_part(key or "unpartitioned")
                try:
                    return render_or_explain(
                        session,
                        spec,
                        folder / context.run.run_id[:8],
                        spec.datasets,
                        [key] if key else None,
                        report_assignments(spec.datasets, key, [key] if key else None, parameters),
                        boilerplate=boilerplate,
                        title=f"{spec.asset} {key or ''}".strip(),
                        note=f"Parameters supplied by Dagster run {context.run.run_id}",
                    )
                except ReportExecutionError as error:
                    # One day's failure is its own: the other days still render.
                    return error

            # Closed at once if the step stops: that kills the kernels still running.
            with contextlib.closing(in_kernels(keys, render_key, kernels)) as outcomes:
                for key, outcome in outcomes:
                    if isinstance(outcome, ReportExecutionError):
                        errors.append((key or spec.asset, outcome))
                        context.log.error(f"{spec.asset} {key or ''}: {outcome}")
                        continue
                    rendered_count += 1
                    yield materialization(context, spec, outcome, key)
        context.log.info(
            f"rendered {rendered_count} of {len(keys)} {spec.asset} report(s) on {kernels} kernel(s) in "
            f"{time.perf_counter() - started:.1f}s"
        )
        if errors:
            # Days finish in any order on several kernels; the failure names them in the range's.
            order = {key or spec.asset: n for n, key in enumerate(keys)}
            errors.sort(key=lambda failed: order[failed[0]])
            raise report_failure(context, errors, rendered_count)

    return _report
