"""`collab-report preview TEMPLATE.ipynb`: a report template run as Dagster will run it, from
anywhere, with only the data API's address and a token.

    export COLLAB_API_URL=https://collab.example.com COLLAB_API_TOKEN=...
    collab-report preview my_report.ipynb --partition 2013-01-05 --param lookback_weeks=2

Before any kernel starts, the template's metadata (`collab_report`, or the sidecar
`<name>.report.json`) is checked against the server's catalog: every dataset must exist there,
and a `daily` template must read a daily dataset. Then the notebook is built as Dagster builds it
(the parameters cell kept, one injected cell after it, injection.py), run in a real Jupyter
kernel, and published as Dagster publishes it (scrubbed, code-hidden HTML, publishing.py). The
only difference is where `report_inputs` reads: through the data API (sources.py), the same
partitions, filtered the same way; and there is no dagstermill `context`.

`--partition` is a day (2013-01-05), a range of days (2013-01-01..2013-01-07, one report over
the range, as the diagnose job renders one), or an evaluation key; without it, the newest
partition. Exit codes: 0 rendered, 1 the template failed (its cell and error are printed),
2 the template, its metadata, the partition or a parameter is wrong (nothing ran), 3 the data
for the partition is missing (nothing ran), 4 the data API refused or could not be reached.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from collab_pipelines.data_api.client import TOKEN_ENV, URL_ENV

RENDERED, FAILED, INVALID, MISSING, API_ERROR = 0, 1, 2, 3, 4
RANGE = ".."
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# What the client distribution adds with its `reports` extra (client/setup.py).
_KERNEL_MODULES = ("papermill", "nbconvert", "ipykernel", "sqlalchemy")


class PreviewError(ValueError):
    """The preview cannot start; the message names the file and field, or the argument."""

    def __init__(self, message: str, code: int = INVALID):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Template:
    path: Path
    where: str
    """Where its metadata is written: the sidecar, or the notebook's metadata."""
    datasets: dict[str, str]
    partitions: str
    defaults: dict[str, str]


def read_template(path: Path) -> Template:
    """The template's parameters cell and metadata, checked as the code location checks them."""
    from collab_pipelines.reports.templates import (
        PARAMETERS_TAG,
        TemplateError,
        cell_source,
        declaration,
        parameter_defaults,
        parameters_cell_index,
        read_notebook_json,
    )

    if not path.is_file():
        raise PreviewError(f"{path}: no such template")
    try:
        document = read_notebook_json(path)
        index = parameters_cell_index(document)
        if index is None:
            raise PreviewError(
                f"{path}: no cell tagged {PARAMETERS_TAG!r}; tag the cell holding the defaults"
            )
        defaults = parameter_defaults(cell_source(document["cells"][index]), str(path))
        declared, where = declaration(path, document)
    except TemplateError as error:
        raise PreviewError(str(error)) from None
    return Template(path, where, dict(declared.datasets), declared.partitions, defaults)


def check_catalog(template: Template, catalog: Mapping[str, Mapping[str, Any]], server: str) -> None:
    """Every dataset the metadata names exists on the server, and a daily template reads a daily one."""
    problems = [
        f"{template.where}: field 'datasets.{role}': unknown dataset {name!r}; the data API at {server} "
        f"offers this token {sorted(catalog)}"
        for role, name in template.datasets.items()
        if name not in catalog
    ]
    if problems:
        raise PreviewError("\n".join(problems))
    kinds = {(catalog[name].get("partitioning") or {}).get("kind") for name in template.datasets.values()}
    if template.partitions == "daily" and "daily" not in kinds:
        raise PreviewError(
            f"{template.where}: field 'partitions': 'daily' but none of its datasets "
            f"{sorted(template.datasets.values())} has daily partitions on the server"
        )


def partition_keys(template: Template, partition: str | None) -> tuple[str | None, list[str] | None]:
    """`partition_key` and `partition_keys` as Dagster injects them for this template."""
    from collab_pipelines.reports.notebook import ReportInputError, days_in_range

    if partition is None:
        return None, None
    if template.partitions == "none":
        raise PreviewError(
            f"--partition {partition}: {template.where} says 'partitions': 'none', and Dagster renders it "
            "without a partition; drop --partition"
        )
    if RANGE in partition:
        first, _, last = partition.partition(RANGE)
        if template.partitions != "daily" or not (_DAY.match(first) and _DAY.match(last)):
            raise PreviewError(f"--partition {partition}: a range is two days of a 'daily' template")
        try:
            keys = days_in_range(first, last)
        except (ValueError, ReportInputError) as error:
            raise PreviewError(f"--partition {partition}: {error}") from None
        return keys[-1], keys
    if template.partitions == "daily":
        try:
            datetime.strptime(partition, "%Y-%m-%d")
        except ValueError:
            raise PreviewError(
                f"--partition {partition}: not a day (YYYY-MM-DD) of a 'daily' template"
            ) from None
    return partition, [partition]


def parameters(template: Template, pairs: Sequence[str]) -> dict[str, Any]:
    """`name=value` pairs, each value read as YAML (8, 0.02, true, text), as papermill's -y reads."""
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.isidentifier():
            raise PreviewError(f"--param {pair!r}: write name=value")
        values[name] = yaml.safe_load(text)
    unknown = sorted(set(values) - set(template.defaults))
    if unknown:
        raise PreviewError(
            f"template {template.path.name}: unknown parameters {unknown}; its parameters cell declares "
            f"{sorted(template.defaults)}"
        )
    return values


@contextlib.contextmanager
def kernel_environment(values: Mapping[str, str]) -> Iterator[None]:
    """The kernel inherits this process's environment: it reads through the same API, as the same token."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def require_kernel_modules() -> None:
    import importlib.util

    absent = [name for name in _KERNEL_MODULES if importlib.util.find_spec(name) is None]
    if absent:
        raise PreviewError(
            f"collab-report preview needs {', '.join(absent)}: pip install 'collab-pipelines-client[reports]'"
        )


def preview(args: argparse.Namespace) -> int:
    require_kernel_modules()
    from collab_pipelines.reports.sources import API, SOURCE_ENV

    template = read_template(Path(args.template))
    values = parameters(template, args.param)
    out = Path(args.out or f"{template.path.stem}-preview.html").resolve()
    if out.suffix != ".html":
        raise PreviewError(f"--out {args.out}: the rendering is HTML; name it *.html")
    if out.with_suffix(".ipynb") == template.path.resolve():
        raise PreviewError(f"--out {args.out}: the executed notebook would overwrite the template")
    token = args.token or os.environ.get(TOKEN_ENV)
    url, key, keys = _check_with_server(template, args.url, token, args.partition)
    return _render(template, key, keys, values, out, {SOURCE_ENV: API, URL_ENV: url, TOKEN_ENV: token})


def _check_with_server(template: Template, url: str | None, token: str | None, partition: str | None):
    """Everything asked of the server before a kernel starts: the catalog, the partition, its rows."""
    import httpx

    from collab_pipelines.data_api.client import Client, DataApiError
    from collab_pipelines.reports.sources import ApiSource

    try:
        with Client(url, token) as client:
            source = ApiSource(client)
            check_catalog(template, source.catalog(), client.url)
            key, keys = partition_keys(template, partition)
            if key is None and template.partitions != "none":
                key = newest(template, source)
                keys = [key]
                print(f"collab-report: no --partition: the newest, {key}", file=sys.stderr)
            missing = _missing(template, keys, source)
            if missing:
                raise PreviewError("missing inputs: " + "; ".join(missing) + ". Nothing was run", MISSING)
            return client.url, key, keys
    except (DataApiError, OSError, httpx.HTTPError) as error:
        where = url or os.environ.get(URL_ENV) or "$" + URL_ENV
        raise PreviewError(
            f"the data API at {where} refused or cannot be reached: {error}", API_ERROR
        ) from None


def newest(template: Template, source) -> str:
    from collab_pipelines.reports.notebook import ReportInputs

    key = ReportInputs(template.datasets, source=source).partition_key
    if key is None:
        raise PreviewError(f"{template.path.name}: its datasets have no partitions yet", MISSING)
    return key


def _missing(template: Template, keys: list[str] | None, source) -> list[str]:
    from collab_pipelines.reports.notebook import missing_inputs

    return missing_inputs(template.datasets, keys, source=source)


def _render(template: Template, key, keys, values, out: Path, environment: Mapping[str, str]) -> int:
    from collab_pipelines.reports.injection import report_assignments
    from collab_pipelines.reports.rendering import FreshKernel, ReportExecutionError, render

    assignments = report_assignments(template.datasets, key, keys, values, warehouse_url_code="None")
    label = f"{keys[0]}..{keys[-1]}" if keys and len(keys) > 1 else key
    notebook = out.with_suffix(".ipynb")
    # render() names its two files by suffix; a temporary stem keeps a dotted --out name whole.
    with tempfile.TemporaryDirectory(prefix="collab-report-") as work, kernel_environment(environment):
        stem = Path(work) / "preview"
        try:
            render(
                FreshKernel(),
                template.path,
                stem,
                assignments,
                note="Parameters supplied by collab-report preview",
                title=f"{template.path.stem} {label or ''}".strip(),
            )
            error = None
        except ReportExecutionError as failure:
            error = failure
        out.parent.mkdir(parents=True, exist_ok=True)
        if stem.with_suffix(".html").exists():
            shutil.move(stem.with_suffix(".html"), out)
            shutil.move(stem.with_suffix(".ipynb"), notebook)
    if error is not None:
        print(
            f"collab-report: {str(error).replace(str(stem.with_suffix('.ipynb')), str(notebook))}",
            file=sys.stderr,
        )
        return FAILED
    print(f"collab-report: rendered {template.path.name} for {label or 'the latest data'}: {out}")
    return RENDERED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collab-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    previewing = commands.add_parser("preview", help="run a template as Dagster will, through the data API")
    previewing.add_argument("template", help="the template notebook (.ipynb)")
    previewing.add_argument(
        "--partition", help="a day, a range of days FIRST..LAST, or an evaluation key (default: the newest)"
    )
    previewing.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a parameter's value (repeatable)"
    )
    previewing.add_argument(
        "--out",
        help="the HTML to write; the executed notebook goes beside it (default <template>-preview.html)",
    )
    previewing.add_argument("--url", help=f"the data API's address (default ${URL_ENV})")
    previewing.add_argument("--token", help=f"a data API token (default ${TOKEN_ENV})")
    args = parser.parse_args(argv)
    try:
        return preview(args)
    except PreviewError as error:
        print(f"collab-report: {error}", file=sys.stderr)
        return error.code


if __name__ == "__main__":
    sys.exit(main())
