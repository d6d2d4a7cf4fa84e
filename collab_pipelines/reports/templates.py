"""Report templates: the notebooks in `templates/`, read and checked without Dagster.

A template is a notebook with a cell tagged `parameters`. What it reads and how it is
partitioned is declared in the notebook's own metadata under `collab_report`, or in a
sidecar `<name>.report.json` beside it (the sidecar wins, so a template can be re-targeted
without opening Jupyter). Problems are collected per file, so one bad template never hides
the others.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from collab_pipelines.config import ConfigError, StrictModel, parse

TEMPLATES_DIR = Path(__file__).with_name("templates")
METADATA_KEY = "collab_report"
SIDECAR_SUFFIX = ".report.json"
PARAMETERS_TAG = "parameters"
# How a template is partitioned: by the daily export partitions, by the evaluation commits
# of continuous evaluation, or not at all (one report of the latest data).
PARTITIONINGS = ("daily", "evaluation_commits", "none")
_NAME = r"^[a-z_][a-z0-9_]{0,62}$"


class TemplateError(ConfigError):
    """A template cannot become a report; the message names the file and the problem."""


@dataclass(frozen=True)
class TemplateSpec:
    path: Path
    asset: str
    description: str
    datasets: Mapping[str, str]
    """Role in the notebook (`inputs[role]`) to the warehouse dataset it reads by default."""
    deps: tuple[str, ...]
    """Asset keys upstream of the report: the writers of its datasets plus any extra deps."""
    partitions: str
    owners: tuple[str, ...]
    tags: Mapping[str, str]
    defaults: Mapping[str, str] = field(default_factory=dict)
    """Parameter name to the source text of its default, as written in the parameters cell."""

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class LoadedTemplates:
    specs: dict[str, TemplateSpec]
    """By template name (the file's stem)."""
    problems: dict[str, str]
    """File path to what is wrong with it."""

    def problem_lines(self) -> list[str]:
        return [f"{path}: {problem}" for path, problem in sorted(self.problems.items())]


def read_notebook_json(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise TemplateError(f"{path}: not UTF-8 text: {error}") from error
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"{path}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from error
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise TemplateError(f"{path}: not a Jupyter notebook (no list of cells)")
    return document


def cell_source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parameters_cell_index(document: Mapping[str, Any]) -> int | None:
    for index, cell in enumerate(document.get("cells", [])):
        if PARAMETERS_TAG in (cell.get("metadata", {}).get("tags") or []):
            return index
    return None


def parameter_defaults(source: str, where: str) -> dict[str, str]:
    """The names a parameters cell assigns, with the source text of each default."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise TemplateError(
            f"{where}: the parameters cell is not valid Python (line {error.lineno}): {error.msg}"
        ) from error
    defaults = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    defaults[target.id] = ast.get_source_segment(source, node.value) or ""
    return defaults


class TemplateMetadata(StrictModel):
    """What a report template reads and how it is partitioned: the notebook's `collab_report`
    metadata, or its sidecar `<name>.report.json` (docs/reports.md)."""

    asset: Annotated[str, Field(pattern=_NAME)] | None = Field(
        default=None, description="The asset name; defaults to the notebook's file name."
    )
    description: str | None = Field(
        default=None, description="Shown in the catalog; defaults to the notebook's first heading."
    )
    datasets: dict[str, str] = Field(
        default_factory=dict,
        description="Role in the notebook (`inputs[role]`) to the warehouse dataset it reads.",
    )
    deps: tuple[str, ...] = Field(default=(), description="Further upstream assets, by name.")
    partitions: Literal[PARTITIONINGS] = Field(
        default="none",
        description="daily: the upstream export's days; evaluation_commits: one report per evaluated "
        "commit; none: one report of the latest data.",
    )
    owners: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)


def declaration(path: Path, document: Mapping[str, Any]) -> tuple[TemplateMetadata, str]:
    """The template's metadata, and where it is written (the sidecar, or the notebook's metadata)."""
    sidecar = path.with_name(path.stem + SIDECAR_SUFFIX)
    if sidecar.exists():
        try:
            declared = json.loads(sidecar.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise TemplateError(
                f"{sidecar}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from error
        where = str(sidecar)
    else:
        declared = document.get("metadata", {}).get(METADATA_KEY)
        where = f"{path} (notebook metadata {METADATA_KEY!r})"
        if declared is None:
            raise TemplateError(
                f"{path}: says nothing of what it reads; add notebook metadata {METADATA_KEY!r} "
                f"or a sidecar {sidecar.name} (see docs/reports.md)"
            )
    return parse(TemplateMetadata, declared, where, entry_depth=0, error=TemplateError), where


def parse_template(
    path: Path, known_assets: Iterable[str], dataset_writers: Mapping[str, str]
) -> TemplateSpec:
    """Read one template. `dataset_writers` maps each warehouse dataset to its asset."""
    path = Path(path)
    document = read_notebook_json(path)
    index = parameters_cell_index(document)
    if index is None:
        raise TemplateError(
            f"{path}: no cell tagged {PARAMETERS_TAG!r}; tag the cell holding the defaults "
            "(Jupyter: View > Cell Toolbar > Tags)"
        )
    defaults = parameter_defaults(cell_source(document["cells"][index]), str(path))
    declared, _where = declaration(path, document)
    unknown_datasets = sorted(set(declared.datasets.values()) - set(dataset_writers))
    if unknown_datasets:
        raise TemplateError(
            f"{path}: reads unknown datasets {unknown_datasets}; known: {sorted(dataset_writers)}"
        )
    deps = list(dict.fromkeys([dataset_writers[d] for d in declared.datasets.values()] + list(declared.deps)))
    unknown_deps = [d for d in deps if d not in set(known_assets)]
    if unknown_deps:
        raise TemplateError(f"{path}: depends on unknown assets {unknown_deps}")
    return TemplateSpec(
        path=path.resolve(),
        asset=declared.asset or path.stem,
        description=declared.description or _first_heading(document) or f"Report {path.stem}.",
        datasets=dict(declared.datasets),
        deps=tuple(deps),
        partitions=declared.partitions,
        owners=declared.owners,
        tags=dict(declared.tags),
        defaults=defaults,
    )


def _first_heading(document: Mapping[str, Any]) -> str | None:
    for cell in document.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in cell_source(cell).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None


def load_templates(
    folder: Path | Sequence[Path], known_assets: Iterable[str], dataset_writers: Mapping[str, str]
) -> LoadedTemplates:
    """Every `*.ipynb` in `folder` (checkpoints excluded), good ones and problems apart."""
    known = set(known_assets)
    specs: dict[str, TemplateSpec] = {}
    problems: dict[str, str] = {}
    assets_seen: dict[str, Path] = {}
    # The shipped templates and a team's own folder load together; a missing folder has none.
    folders = [folder] if isinstance(folder, str | Path) else list(folder)
    for path in sorted(path for each in folders for path in Path(each).glob("*.ipynb")):
        try:
            spec = parse_template(path, known, dataset_writers)
            if spec.asset in assets_seen or spec.asset in known:
                raise TemplateError(
                    f"{path}: asset name {spec.asset!r} is already taken"
                    + (f" by {assets_seen[spec.asset]}" if spec.asset in assets_seen else "")
                )
        except TemplateError as error:
            problems[str(path)] = str(error).removeprefix(f"{path}: ")
            continue
        specs[spec.name] = spec
        assets_seen[spec.asset] = path
    return LoadedTemplates(specs=specs, problems=problems)
