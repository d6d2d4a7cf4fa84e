"""Everything pattern 3 defines, from the notebooks in templates/. Resources come from the root."""

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from collab_pipelines import settings
from collab_pipelines.evaluation.predictions_table import PREDICTIONS_TAG
from collab_pipelines.reports.assets import build_report_asset
from collab_pipelines.reports.diagnose import build_diagnostic_asset
from collab_pipelines.reports.jobs import diagnose_report_job
from collab_pipelines.reports.partitions import partitions_for
from collab_pipelines.reports.templates import (
    TEMPLATES_DIR,
    LoadedTemplates,
    TemplateError,
    TemplateSpec,
    load_templates,
)
from collab_pipelines.retries import NO_RETRY_OF_STEP_FAILURES

# The run queue launches higher priorities first (0 by default), in order within one.
PRIORITY_TAG = "dagster/priority"
BACKGROUND_PRIORITY = "-1"

log = logging.getLogger(__name__)
_LOGGED_PROBLEMS: set[str] = set()
_LOGGED_NOTES: set[str] = set()


def upstream_assets(upstream_defs: Sequence[dg.Definitions] | None = None) -> dict[str, dg.AssetsDefinition]:
    """The assets templates may read: the other patterns' definitions (built here if not given)."""
    if upstream_defs is None:
        from collab_pipelines.evaluation.definitions import build_defs as evaluation_defs
        from collab_pipelines.exports.definitions import build_defs as export_defs
        from collab_pipelines.intake.definitions import build_defs as intake_defs

        upstream_defs = (export_defs(), evaluation_defs(), intake_defs())
    assets = {}
    for defs in upstream_defs:
        for asset in defs.assets or []:
            if isinstance(asset, dg.AssetsDefinition):
                for key in asset.keys:
                    assets[key.to_user_string()] = asset
    return assets


def dataset_writers() -> dict[str, str]:
    from collab_pipelines.datasets import all_datasets

    return {name: dataset.asset_key for name, dataset in all_datasets().items()}


def load_project_templates(
    folder: Path | Sequence[Path] = TEMPLATES_DIR, upstream_defs: Sequence[dg.Definitions] | None = None
) -> tuple[LoadedTemplates, dict[str, dg.AssetsDefinition]]:
    upstream = upstream_assets(upstream_defs)
    writers = dataset_writers()
    # Writers are known even before their asset is defined (evaluation lands separately).
    loaded = load_templates(folder, set(upstream) | set(writers.values()), writers)
    if upstream_defs is not None:
        _leave_out_reports_of_undefined_writers(loaded, upstream)
    assets = {}
    for name, spec in list(loaded.specs.items()):
        try:
            partitions_def = partitions_for(spec.partitions, list(spec.deps), upstream)
        except ValueError as error:
            loaded.problems[str(spec.path)] = str(error)
            del loaded.specs[name]
            continue
        upstream_partitions = {
            dep: upstream[dep].specs_by_key[dg.AssetKey(dep)].partitions_def
            for dep in spec.deps
            if dep in upstream
        }
        assets[name] = build_report_asset(spec, partitions_def, upstream_partitions)
    problems = loaded.problem_lines()
    if problems and settings.strict():
        # CI's `COLLAB_STRICT=1 dagster definitions validate` exits non-zero on a broken template.
        raise TemplateError(
            f"{len(problems)} report template(s) did not load (COLLAB_STRICT is set):\n" + "\n".join(problems)
        )
    # Dagster builds a location's definitions twice in one process when it loads it (the code
    # server's targets, then the repository), so each problem is logged the first time only.
    for line in problems:
        if line not in _LOGGED_PROBLEMS:
            _LOGGED_PROBLEMS.add(line)
            log.warning("report template not loaded: %s", line)
    return loaded, assets


def _leave_out_reports_of_undefined_writers(loaded: LoadedTemplates, upstream: Mapping[str, object]) -> None:
    """A template reading a dataset whose writer this location does not define (the evaluation
    tables when no suite is configured) would be a report of nothing, and its dependency would
    draw the missing writer in the lineage: it is left out, and said so once (not a problem)."""
    for name, spec in list(loaded.specs.items()):
        missing = [dep for dep in spec.deps if dep not in upstream]
        if missing:
            del loaded.specs[name]
            line = (
                f"{spec.path}: left out: it reads what {', '.join(missing)} writes, "
                "which this location does not define"
            )
            if line not in _LOGGED_NOTES:
                _LOGGED_NOTES.add(line)
                log.info("report template %s", line)


# Templates applied once per suite with daily predictions (`<suite>_drift_report`): kept apart
# from templates/, whose notebooks each become one asset.
PER_SUITE_DIR = TEMPLATES_DIR / "per_suite"


def per_suite_reports(upstream: dict[str, dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Each per-suite template once for every suite's predictions asset, partitioned by its days.

    The template reads the suite's predictions (`predictions`) and what its metadata names
    (champion_monitoring); only the predictions are its upstream, so lineage runs champion →
    predictions → report, and each predicted day renders its own report.
    """
    predictions = {
        key: asset
        for key, asset in upstream.items()
        if PREDICTIONS_TAG in (asset.specs_by_key[dg.AssetKey(key)].tags or {})
    }
    if not predictions:
        return []
    loaded = load_templates(PER_SUITE_DIR, set(upstream) | set(dataset_writers().values()), dataset_writers())
    if loaded.problems:  # shipped with the package: a broken one is the project's bug
        raise TemplateError("\n".join(loaded.problem_lines()))
    reports = []
    for table, asset in sorted(predictions.items()):
        partitions_def = asset.specs_by_key[dg.AssetKey(table)].partitions_def
        suite = asset.specs_by_key[dg.AssetKey(table)].tags[PREDICTIONS_TAG]
        for spec in loaded.specs.values():
            per_suite = dataclasses.replace(
                spec,
                asset=f"{table.removesuffix('_predictions')}_{spec.asset}",
                description=f"Suite {suite!r}: {spec.description}",
                datasets={**spec.datasets, "predictions": table},
                deps=(table,),
                tags={**spec.tags, PREDICTIONS_TAG: suite},
            )
            reports.append(build_report_asset(per_suite, partitions_def, {table: partitions_def}))
    return reports


def build_defs(
    folder: Path | Sequence[Path] = TEMPLATES_DIR, upstream_defs: Sequence[dg.Definitions] | None = None
) -> dg.Definitions:
    loaded, assets = load_project_templates(folder, upstream_defs)
    # Without the caller's definitions there are no predictions to report on.
    for report in per_suite_reports(upstream_assets(upstream_defs)) if upstream_defs is not None else ():
        assets[report.key.to_user_string()] = report
    specs: dict[str, TemplateSpec] = loaded.specs
    # Reports follow their upstream (assets.follow_upstream). Dagster's implicit sensor for
    # that starts stopped; this one runs from the start, so a fresh deployment renders the newest
    # day and each evaluated commit on its own.
    automation = dg.AutomationConditionSensorDefinition(
        "reports_automation_sensor",
        target=dg.AssetSelection.assets(*assets.values()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Renders a report when its upstream day or commit is newly materialized.",
        # A report that failed (a broken template, missing inputs) fails again on the same data.
        # Rendering is background work: a person's backfill or launch (priority 0) and the
        # exports, evaluations and predictions the reports read go first in the run queue,
        # instead of waiting behind a fresh deployment's days of reports.
        run_tags={**NO_RETRY_OF_STEP_FAILURES, PRIORITY_TAG: BACKGROUND_PRIORITY},
    )
    return dg.Definitions(
        assets=[*assets.values(), build_diagnostic_asset(specs, loaded.problem_lines())],
        jobs=[diagnose_report_job],
        sensors=[automation] if assets else [],
    )
